"""Band definitions and the one place that maps raw values to network inputs and back.

Units used throughout dsen2cr:

* **DN** (digital numbers): Sentinel-2 L1C top-of-atmosphere reflectance x 10000, as stored in
  SEN12MS-CR GeoTIFFs and in L1C products (after removing the baseline >= 04.00 offset).
* **reflectance**: DN / 10000 (the unit of the paper's metrics).
* **scaled**: the DSen2-CR network domain. S2 DN clipped to [0, 10000] then / 2000, so [0, 5];
  S1 dB clipped to [-25, 0] (VV) and [-32.5, 0] (VH) then mapped linearly onto [0, 2]
  (paper Section 3.5).
* **pix2pix domain**: [-1, 1]. S2 DN clipped to [0, 10000], S1 dB clipped to [-25, 0]
  (both polarisations, paper Section 4.3).

All functions accept numpy arrays or torch tensors whose band axis is ``-3`` (``(C, H, W)`` or
``(B, C, H, W)``) and return the same kind (:func:`is_tensor` tells them apart without importing
torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:  # torch only for annotations: importing dsen2cr does not import torch
    import torch
    from typing_extensions import TypeIs

Array = TypeVar("Array", np.ndarray, "torch.Tensor")
"""A numpy array or a torch tensor; functions return the kind they are given."""

S2_BANDS: tuple[str, ...] = (
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12",
)  # fmt: skip
"""Sentinel-2 L1C band order of SEN12MS-CR (index 0..12)."""
S2_RESOLUTION_M: dict[str, int] = {
    "B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20,
    "B8": 10, "B8A": 20, "B9": 60, "B10": 60, "B11": 20, "B12": 20,
}  # fmt: skip
"""Native ground sampling distance of each band in metres."""
S1_BANDS: tuple[str, ...] = ("VV", "VH")
"""Sentinel-1 polarisation order (sigma0 in dB)."""
RGB_BANDS: tuple[int, int, int] = (3, 2, 1)
"""Indices of B4, B3, B2 (true-colour red, green, blue)."""

S2_MAX_DN = 10000.0
S2_SCALE = 2000.0
"""Divisor from DN to the scaled network domain."""
REFLECTANCE_SCALE = 10000.0
"""Divisor from DN to reflectance."""
S1_CLIP_DB: tuple[tuple[float, float], ...] = ((-25.0, 0.0), (-32.5, 0.0))
"""Clip range (dB) of VV and VH."""
S1_SCALED_MAX = 2.0
PIX2PIX_S1_CLIP_DB: tuple[float, float] = (-25.0, 0.0)

NORMALIZATION: dict[str, object] = {
    "s2": {"clip_dn": [0.0, S2_MAX_DN], "divide": S2_SCALE},
    "s1": {"clip_db": [list(r) for r in S1_CLIP_DB], "range": [0.0, S1_SCALED_MAX]},
}
"""Machine-readable description of the DSen2-CR input normalisation, stored with the weights."""
PIX2PIX_NORMALIZATION: dict[str, object] = {
    "s2": {"clip_dn": [0.0, S2_MAX_DN], "range": [-1.0, 1.0]},
    "s1": {"clip_db": list(PIX2PIX_S1_CLIP_DB), "range": [-1.0, 1.0]},
}
"""The same for the pix2pix baseline's domain."""


def is_tensor(x: object) -> TypeIs[torch.Tensor]:
    """Whether ``x`` is a torch tensor (checked by type, without importing torch)."""
    return type(x).__module__.startswith("torch")


def as_numpy(x: object) -> np.ndarray:
    """A numpy view or copy of a numpy array or a torch tensor (detached, on the CPU)."""
    if is_tensor(x):
        out: np.ndarray = x.detach().cpu().numpy()
        return out
    return np.asarray(x)


def _channel_shape(x: np.ndarray | torch.Tensor) -> tuple[int, ...]:
    ndim = x.ndim
    return (-1,) + (1,) * 2 if ndim >= 3 else (-1,)


def _per_channel(x: Array, values: tuple[float, ...]) -> Array:
    """Values broadcast along the band axis (-3) of ``x``."""
    shape = _channel_shape(x)
    if is_tensor(x):
        import torch

        return torch.tensor(values, dtype=x.dtype, device=x.device).reshape(shape)
    return np.asarray(values, dtype=x.dtype).reshape(shape)


def _float(x: Array) -> Array:
    if is_tensor(x):
        return x if x.is_floating_point() else x.float()
    a = np.asarray(x)
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float32)


def s2_to_scaled(dn: Array, channels_last: bool = False) -> Array:
    """Sentinel-2 DN -> network input: clip to [0, 10000], divide by 2000.

    Args:
        dn: (..., 13, H, W) digital numbers (any numeric dtype).
        channels_last: for a (B, 13, H, W) tensor, give the result in NHWC memory (written so
            by the clip itself: one pass over the batch less than converting afterwards).

    Returns:
        Float array of the same shape in the scaled domain [0, 5].
    """
    x = _float(dn)
    if channels_last and is_tensor(x) and x.ndim == 4:
        import torch

        out = torch.empty_like(x, memory_format=torch.channels_last)
        torch.clamp(x, 0.0, S2_MAX_DN, out=out)
    else:
        out = x.clip(0.0, S2_MAX_DN)
    out /= S2_SCALE  # in place: the clip made a new array (one pass over the tile less)
    return out


def scaled_to_s2(scaled: Array) -> Array:
    """Network output -> Sentinel-2 DN (prediction x 2000), not clipped, not rounded."""
    return scaled * S2_SCALE


DN_MIN, DN_MAX = 1, 65535
"""Range of valid predicted DN in the uint16 output files (0 is their nodata)."""


def scaled_to_dn(scaled: Array) -> Array:
    """Network output -> the uint16 DN of the prediction files: x 2000, rounded half to even,
    clipped to [1, 65535] (0 stays free for nodata).

    Args:
        scaled: (..., H, W) prediction in the scaled domain, numpy or torch (any device).

    Returns:
        uint16 array (numpy) or tensor (torch, same device); both paths give the same bits.
    """
    if is_tensor(scaled):
        import torch

        t = scaled.to(torch.float32) * S2_SCALE
        return torch.round(t).clamp_(DN_MIN, DN_MAX).to(torch.uint16)
    x = np.asarray(scaled).astype(np.float32, copy=False) * np.float32(S2_SCALE)
    dn: np.ndarray = np.clip(np.rint(x), DN_MIN, DN_MAX).astype(np.uint16)
    return dn


def scaled_to_reflectance(scaled: Array) -> Array:
    """Network domain -> TOA reflectance (DN / 10000), the unit of the paper's metrics."""
    return scaled * (S2_SCALE / REFLECTANCE_SCALE)


def dn_to_reflectance(dn: Array) -> Array:
    """Sentinel-2 DN -> TOA reflectance (DN / 10000), not clipped."""
    return _float(dn) / REFLECTANCE_SCALE


def s1_to_scaled(db: Array) -> Array:
    """Sentinel-1 dB -> network input: clip VV to [-25, 0], VH to [-32.5, 0], map onto [0, 2].

    ``v' = 2 (v - lo) / (0 - lo)``.

    Args:
        db: (..., 2, H, W) backscatter in dB, bands VV, VH.

    Returns:
        Float array of the same shape in [0, 2].
    """
    db = _float(db)
    lo = _per_channel(db, tuple(r[0] for r in S1_CLIP_DB))
    hi = _per_channel(db, tuple(r[1] for r in S1_CLIP_DB))
    clipped: Array
    if is_tensor(db):
        clipped = db.clamp(lo, hi)
    else:
        clipped = np.clip(db, lo, hi)
    out: Array = clipped - lo  # 2 (v - lo) / (hi - lo), in this order, in place on one new array
    out *= S1_SCALED_MAX
    out /= hi - lo
    return out


def scaled_to_s1(scaled: Array) -> Array:
    """Inverse of :func:`s1_to_scaled` on its range: [0, 2] -> dB."""
    scaled = _float(scaled)
    lo = _per_channel(scaled, tuple(r[0] for r in S1_CLIP_DB))
    hi = _per_channel(scaled, tuple(r[1] for r in S1_CLIP_DB))
    db: Array = lo + scaled / S1_SCALED_MAX * (hi - lo)
    return db


def fill_nan(x: np.ndarray) -> np.ndarray:
    """Replace NaNs by the mean of the image's finite values (0 if none is finite).

    Args:
        x: a (C, H, W) float image; modified copy is returned.
    """
    x = np.asarray(x)
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    x = x.copy()
    finite = x[~bad]
    x[bad] = finite.mean() if finite.size else 0.0
    return x


def s2_to_pix2pix(dn: Array) -> Array:
    """Sentinel-2 DN -> pix2pix domain: clip to [0, 10000], map onto [-1, 1]."""
    return _float(dn).clip(0.0, S2_MAX_DN) / (S2_MAX_DN / 2) - 1.0


def pix2pix_to_s2(x: Array) -> Array:
    """pix2pix domain [-1, 1] -> Sentinel-2 DN."""
    return (x + 1.0) * (S2_MAX_DN / 2)


def s1_to_pix2pix(db: Array) -> Array:
    """Sentinel-1 dB -> pix2pix domain: clip both bands to [-25, 0], map onto [-1, 1]."""
    lo, hi = PIX2PIX_S1_CLIP_DB
    return (_float(db).clip(lo, hi) - lo) / ((hi - lo) / 2) - 1.0


def scaled_to_pix2pix_s2(scaled: Array) -> Array:
    """DSen2-CR scaled S2 ([0, 5]) -> pix2pix domain ([-1, 1])."""
    return scaled_to_s2(scaled) / (S2_MAX_DN / 2) - 1.0


def scaled_to_pix2pix_s1(scaled: Array) -> Array:
    """DSen2-CR scaled S1 ([0, 2]) -> pix2pix domain ([-1, 1]) via dB."""
    return s1_to_pix2pix(scaled_to_s1(scaled))
