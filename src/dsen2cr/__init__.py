"""dsen2cr: cloud removal in Sentinel-2 imagery with SAR-optical data fusion.

A PyTorch implementation of DSen2-CR (Meraner, Ebel, Zhu, Schmitt, 2020, ISPRS J. Photogramm.
Remote Sens. 166, 333-346): the residual network, the cloud-adaptive regularized loss (CARL), the
cloud/shadow detector it relies on, the evaluation metrics, SEN12MS-CR data loading, training,
and georeferenced prediction on whole Sentinel-2 scenes.

The package is organised by what it does (see the README's layout):

* :mod:`dsen2cr.models` - DSen2-CR, the pix2pix baseline, the one loader of every weight format;
* :mod:`dsen2cr.data` - SEN12MS-CR: layout, index, splits, dataset, DataModules, synthetic data;
* :mod:`dsen2cr.training` - typed configs and Lightning training;
* :mod:`dsen2cr.scene` - whole scenes: Sentinel readers, exact tiling, pipeline, COG output;
* beside them :mod:`~dsen2cr.scaling` (units), :mod:`~dsen2cr.cloudmask`, :mod:`~dsen2cr.losses`,
  :mod:`~dsen2cr.metrics`, :mod:`~dsen2cr.evaluation`, :mod:`~dsen2cr.figures`,
  :mod:`~dsen2cr.performance` (speed options, devices), :mod:`~dsen2cr.benchmark`,
  :mod:`~dsen2cr.demo`, :mod:`~dsen2cr.io`, :mod:`~dsen2cr.errors` and :mod:`~dsen2cr.cli`.

The names below are imported on first use, so ``import dsen2cr`` and ``dsen2cr --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers see; at run time the names are imported on first use
    from dsen2cr.cloudmask import cloud_shadow_mask
    from dsen2cr.errors import DSen2CRError
    from dsen2cr.losses import carl_loss, l1_loss
    from dsen2cr.metrics import image_metrics
    from dsen2cr.models import DSen2CR, load_weights
    from dsen2cr.scene.predict import PredictOptions, predict

__version__ = "0.2.0"

_LAZY = {
    "DSen2CR": "dsen2cr.models",
    "load_weights": "dsen2cr.models",
    "cloud_shadow_mask": "dsen2cr.cloudmask",
    "carl_loss": "dsen2cr.losses",
    "l1_loss": "dsen2cr.losses",
    "image_metrics": "dsen2cr.metrics",
    "predict": "dsen2cr.scene.predict",
    "PredictOptions": "dsen2cr.scene.predict",
    "DSen2CRError": "dsen2cr.errors",
}

__all__ = [
    "DSen2CR",
    "DSen2CRError",
    "PredictOptions",
    "__version__",
    "carl_loss",
    "cloud_shadow_mask",
    "image_metrics",
    "l1_loss",
    "load_weights",
    "predict",
]


def __getattr__(name: str) -> object:
    """Import a public name of :data:`_LAZY` from its module on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dsen2cr' has no attribute {name!r}")
