"""Training of DSen2-CR and the pix2pix baseline with PyTorch Lightning.

* :mod:`dsen2cr.training.config` - typed, validated configs (:func:`load_config`);
* :mod:`dsen2cr.training.base` - what both LightningModules share (validation, metrics,
  on-device cloud masks, checkpoint network record, export);
* :mod:`dsen2cr.training.dsen2cr` / :mod:`dsen2cr.training.pix2pix` - the two modules;
* :mod:`dsen2cr.training.train` - :func:`train`, the Python side of ``dsen2cr train``.

Importing this package imports Lightning (seconds); reading weights does not need it
(:func:`dsen2cr.models.load_weights`).
"""

from dsen2cr.training.base import CloudRemovalModule
from dsen2cr.training.config import FAMILIES, TrainConfig, load_config
from dsen2cr.training.dsen2cr import DSen2CRModule
from dsen2cr.training.pix2pix import Pix2PixModule
from dsen2cr.training.train import MODULES, TrainResult, build_module, describe, train

__all__ = [
    "FAMILIES",
    "MODULES",
    "CloudRemovalModule",
    "DSen2CRModule",
    "Pix2PixModule",
    "TrainConfig",
    "TrainResult",
    "build_module",
    "describe",
    "load_config",
    "train",
]
