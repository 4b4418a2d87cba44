"""dsen2cr: cloud removal in Sentinel-2 imagery with SAR-optical data fusion.

A PyTorch implementation of DSen2-CR (Meraner, Ebel, Zhu, Schmitt, 2020, ISPRS J. Photogramm.
Remote Sens. 166, 333-346): the residual network, the cloud-adaptive regularized loss (CARL), the
cloud/shadow detector it relies on, the evaluation metrics, SEN12MS-CR data loading, training,
and georeferenced prediction on whole Sentinel-2 scenes.

Heavy submodules are imported lazily, so ``import dsen2cr`` and ``dsen2cr --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "DSen2CR": "dsen2cr.models",
    "cloud_shadow_mask": "dsen2cr.cloudmask",
    "carl_loss": "dsen2cr.losses",
    "l1_loss": "dsen2cr.losses",
    "image_metrics": "dsen2cr.metrics",
    "DSen2CRError": "dsen2cr.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dsen2cr' has no attribute {name!r}")
