"""What every evaluation report shares: the baseline's name, units, and how values are written.

* :data:`IDENTITY` - the baseline that returns the cloudy input unchanged;
* :data:`UNITS` - the unit of every metric, recorded in each ``metrics.json``;
* :func:`json_value` - NaN (undefined) as ``null``; an infinite value stays a float, written
  as ``Infinity`` as Python's ``json`` does (the ``uncrtaints`` PSNR of a perfect image);
* :func:`csv_value` - undefined as an empty cell, numbers with six significant digits.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["IDENTITY", "UNITS", "csv_value", "json_value"]

IDENTITY = "identity"
"""Name of the baseline that returns the cloudy input unchanged."""

UNITS: dict[str, str] = {
    "mae": "TOA reflectance",
    "rmse": "TOA reflectance",
    "psnr": "dB",
    "sam": "degrees",
    "ssim": "unitless",
    "band_nrmse": "percent of each band's value range",
    "spectrum": "TOA reflectance",
}
"""Units of the metrics in ``metrics.json`` and ``metrics.csv``."""


def json_value(v: Any) -> Any:
    """A metric value for JSON: NaN (and numpy floats that are NaN) as None, lists element-wise."""
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (list, dict)):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def csv_value(v: Any) -> Any:
    """A metric value for a CSV cell: None or NaN as ``""``, floats as ``%.6g`` (``inf`` too)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v
