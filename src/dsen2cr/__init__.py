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
from typing import Any

__version__ = "0.2.0"

_LAZY = {
    "DSen2CR": "dsen2cr.models",
    "load_weights": "dsen2cr.models",
    "cloud_shadow_mask": "dsen2cr.cloudmask",
    "carl_loss": "dsen2cr.losses",
    "l1_loss": "dsen2cr.losses",
    "image_metrics": "dsen2cr.metrics",
    "predict": "dsen2cr.scene",
    "PredictOptions": "dsen2cr.scene",
    "DSen2CRError": "dsen2cr.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dsen2cr' has no attribute {name!r}")
