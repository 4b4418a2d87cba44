"""SEN12MS-CR data: layout, index, splits, the dataset, Lightning DataModules and synthetic data.

* :mod:`dsen2cr.data.layout` - seasons, ROI splits, folder layouts and file names;
* :mod:`dsen2cr.data.index` - one cached folder walk of a dataset root;
* :mod:`dsen2cr.data.splits` - the default ROI split, split files, the triplets of a split;
* :mod:`dsen2cr.data.dataset` - :class:`SEN12MSCR` samples (reading, scaling, crops,
  augmentation), batching;
* :mod:`dsen2cr.data.datamodule` - ``SEN12MSCRDataModule`` and ``TensorDataModule`` for
  Lightning (imported from there: it is the one data module that imports Lightning);
* :mod:`dsen2cr.data.synthetic` - a synthetic SEN12MS-CR in the published layout.
"""

from dsen2cr.data.dataset import (
    SEN12MSCR,
    EpochRandomSampler,
    augment_array,
    collate,
    is_empty_batch,
)
from dsen2cr.data.index import Index, build_index
from dsen2cr.data.layout import SEASONS, TEST_ROIS, VAL_ROIS, Triplet, default_split
from dsen2cr.data.splits import index_summary, read_split_file, select_triplets

__all__ = [
    "SEASONS",
    "SEN12MSCR",
    "TEST_ROIS",
    "VAL_ROIS",
    "EpochRandomSampler",
    "Index",
    "Triplet",
    "augment_array",
    "build_index",
    "collate",
    "default_split",
    "index_summary",
    "is_empty_batch",
    "read_split_file",
    "select_triplets",
]
