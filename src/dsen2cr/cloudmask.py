"""Cloud and cloud-shadow detector of DSen2-CR (paper Section 3.4, Fig. 5).

The mask that CARL and the reproduction/reconstruction metrics need: the cloud detector of
Schmitt et al. (2019) and the shadow detector of Zhai et al. (2018), as in the reference
implementation used for the paper. Input is a 13-band Sentinel-2 L1C image in DN (band index
0..12 = B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, B11, B12); all arithmetic is done on
reflectance ``r = DN / 10000`` in float64.

Cloud score::

    rescale(x, lo, hi) = (x - lo) / (hi - lo)          (not clipped)
    nd(a, b)           = (a - b) / (a + b)             (a zero denominator becomes 0.001)
    s = min(1, rescale(r1, .1, .5), rescale(r0, .1, .3), rescale(r0 + r10, .15, .2),
            rescale(r3 + r2 + r1, .2, .8), rescale(nd(r2, r11), .8, .6))

then a grey closing with a flat 5x5 window (dilation, then erosion; borders mirrored
"d c b a | a b c d"), a 7x7 mean with zero padding (output the size of the input), a clip to
[1e-5, 1]; cloud where ``s >= threshold`` (0.2).

Shadow: ``CSI = (r7 + r11) / 2``, ``T3 = min(CSI) + 3/4 (mean(CSI) - min(CSI))``,
``T4 = min(r1) + 5/6 (mean(r1) - min(r1))`` over the whole image; candidate (-1) where
``CSI < T3`` and ``r1 < T4``, then a 5x5 median filter with zero padding.

Combined mask: 1 cloud, else -1 shadow, else 0 clear.

Two implementations give bit-identical masks:

* numpy/scipy (``scipy.ndimage.grey_closing`` and ``median_filter``) for numpy input;
* batched torch (max-pool dilation/erosion on mirror-indexed padding, the median of the
  two-valued candidate map as a majority count) for torch input, on CPU or GPU.

Every step is either exact (min, max, counting) or done with the same sequence of IEEE float64
operations in both paths: the 7x7 mean is a fixed-order separable sum of shifted copies divided
by 49, the image means are a fixed-order pairwise (tree) sum, and divisions are true divisions
(on CUDA by a device tensor, never by a CPU scalar, which PyTorch would turn into a multiplication
by the reciprocal). Hence torch and numpy masks agree exactly, not only up to round-off.

Tiling: the mask at a pixel depends only on the input within :data:`MASK_RADIUS` pixels plus the
image-wide shadow statistics. Compute :func:`shadow_statistics` on the whole scene (or, block by
block, with :class:`ShadowStatsAccumulator`) and pass it as ``shadow_stats=`` to every tile (with
a halo of ``MASK_RADIUS`` pixels) to reproduce the whole-scene mask exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from dsen2cr.scaling import REFLECTANCE_SCALE, as_numpy

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)
"""A numpy array or a torch tensor: the detector runs on either and answers in kind."""
StatValue = float | np.ndarray | torch.Tensor
"""A shadow statistic: a float (one image), (B,) float64 values (a batch), or a float64 tensor."""

MASK_RADIUS = 7
"""Pixels of context one mask pixel depends on (closing 2 + 2, mean 3; the median's 2 is inside),
besides the image-wide shadow statistics."""
DEFAULT_THRESHOLD = 0.2
"""Cloud threshold on the smoothed cloud score."""
CLOSING_SIZE = 5
MEAN_SIZE = 7
MEDIAN_SIZE = 5
SCORE_CLIP = (1e-5, 1.0)
SHADOW_CSI_FACTOR = 3 / 4
SHADOW_B2_FACTOR = 5 / 6
ND_ZERO_DENOMINATOR = 0.001

# Reflectance bands the detector uses, as indices into the 13 S2 bands, and their positions in
# the 7-band subset the computation works on.
_USED_BANDS = (0, 1, 2, 3, 7, 10, 11)
_B1, _B2, _B3, _B4, _B8, _B10, _B11 = range(7)

__all__ = [
    "MASK_RADIUS",
    "ShadowStats",
    "ShadowStatsAccumulator",
    "binary_mask",
    "cloud_score",
    "cloud_shadow_mask",
    "shadow_statistics",
]


@dataclass(frozen=True)
class ShadowStats:
    """Image-wide statistics of the shadow test, in reflectance.

    For a single numpy image the fields are floats; for a batch of numpy images (B,) arrays; for
    torch input tensors of shape () (one image) or (B,) (batch), float64 on the input's device.

    Attributes:
        csi_min: minimum of CSI = (B8 + B11) / 2.
        csi_mean: mean of CSI.
        b2_min: minimum of B2 reflectance.
        b2_mean: mean of B2 reflectance.
    """

    csi_min: StatValue
    csi_mean: StatValue
    b2_min: StatValue
    b2_mean: StatValue


# --------------------------------------------------------------------------- shared helpers
def _check_shape(shape: tuple[int, ...], kind: str) -> None:
    if len(shape) not in (3, 4):
        raise ValueError(
            f"cloud mask input must be a {kind} of shape (13, H, W) or (B, 13, H, W), "
            f"got shape {shape}"
        )
    if shape[-3] != 13:
        raise ValueError(
            f"cloud mask input must have 13 Sentinel-2 bands on axis -3, got shape {shape}"
        )
    if shape[-2] < 1 or shape[-1] < 1 or (len(shape) == 4 and shape[0] < 1):
        raise ValueError(f"cloud mask input is empty: shape {shape}")


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not math.isfinite(t):
        raise ValueError(f"cloud threshold must be a finite number, got {threshold!r}")
    return t


def _raw_score(
    r: list[ArrayT],
    div: Callable[[ArrayT, float], ArrayT],
    minimum: Callable[[ArrayT, ArrayT | float], ArrayT],
    where: Callable[[ArrayT, float, ArrayT], ArrayT],
) -> ArrayT:
    """The pointwise cloud score before smoothing; same operations for numpy and torch."""

    def rescale(x: ArrayT, lo: float, hi: float) -> ArrayT:
        return div(x - lo, hi - lo)

    b1, b2, b3, b4, b11 = r[_B1], r[_B2], r[_B3], r[_B4], r[_B11]
    s = minimum(rescale(b2, 0.1, 0.5), 1.0)
    s = minimum(s, rescale(b1, 0.1, 0.3))
    s = minimum(s, rescale(b1 + r[_B10], 0.15, 0.2))
    s = minimum(s, rescale(b4 + b3 + b2, 0.2, 0.8))
    # Normalised difference snow index: snow is not cloud. (The reference's moisture test on
    # nd(B8, B11) is switched off there and therefore absent here.)
    total = b3 + b11
    total = where(total == 0, ND_ZERO_DENOMINATOR, total)
    ndsi = (b3 - b11) / total
    return minimum(s, rescale(ndsi, 0.8, 0.6))


def _thresholds(
    csi_min: ArrayT, csi_mean: ArrayT, b2_min: ArrayT, b2_mean: ArrayT
) -> tuple[ArrayT, ArrayT]:
    """The shadow test's CSI and B2 thresholds (reflectance) from the statistics, per image."""
    t3 = csi_min + SHADOW_CSI_FACTOR * (csi_mean - csi_min)
    t4 = b2_min + SHADOW_B2_FACTOR * (b2_mean - b2_min)
    return t3, t4


def _mean_of(
    flat: ArrayT,
    minimum: ArrayT,
    tree_sum: Callable[[ArrayT], ArrayT],
    div: Callable[[ArrayT, float], ArrayT],
) -> ArrayT:
    """Per-row mean of (B, N) values with per-row minima (B,), as ``min + sum(x - min) / N``.

    The sum is a fixed-order pairwise sum.

    Summing the non-negative deviations makes a constant image's mean exactly its minimum
    (a plain sum of n copies of a value need not be n times it), and the fixed order makes the
    result bit-identical in numpy and torch.
    """
    mean: ArrayT = minimum + div(tree_sum(flat - minimum[:, None]), float(flat.shape[1]))
    return mean


# --------------------------------------------------------------------------- numpy path
def _np_batch(image: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(image)
    if not (
        np.issubdtype(arr.dtype, np.integer)
        or np.issubdtype(arr.dtype, np.floating)
        or arr.dtype == np.bool_
    ):
        raise ValueError(f"cloud mask input must be a real numeric array, got dtype {arr.dtype}")
    _check_shape(arr.shape, "numpy array")
    batched = arr.ndim == 4
    return (arr if batched else arr[None]), batched


def _np_reflectance(batch: np.ndarray) -> list[np.ndarray]:
    return [batch[:, b].astype(np.float64) / REFLECTANCE_SCALE for b in _USED_BANDS]


def _np_tree_sum(x: np.ndarray) -> np.ndarray:
    """Per-row sum of a (B, N) array in a fixed pairwise order (bit-identical to the torch one)."""
    n = x.shape[1]
    size = 1 << max(n - 1, 0).bit_length()
    if size > n:
        x = np.concatenate([x, np.zeros((x.shape[0], size - n), x.dtype)], axis=1)
    while size > 1:
        size //= 2
        x = x[:, :size] + x[:, size:]
    return x[:, 0]


def _np_stats(csi: np.ndarray, b2: np.ndarray) -> ShadowStats:
    flat_csi = csi.reshape(csi.shape[0], -1)
    flat_b2 = b2.reshape(b2.shape[0], -1)
    csi_min = flat_csi.min(axis=1)
    b2_min = flat_b2.min(axis=1)
    div = np.true_divide
    return ShadowStats(
        csi_min=csi_min,
        csi_mean=_mean_of(flat_csi, csi_min, _np_tree_sum, div),
        b2_min=b2_min,
        b2_mean=_mean_of(flat_b2, b2_min, _np_tree_sum, div),
    )


def _np_stats_fields(stats: ShadowStats, batch: int) -> list[np.ndarray]:
    """The four statistics as (batch,) float64 arrays (numbers are repeated per image)."""

    def conv(v: StatValue, name: str) -> np.ndarray:
        a = np.asarray(as_numpy(v), dtype=np.float64).reshape(-1)
        if a.size == 1:
            a = np.repeat(a, batch)
        if a.shape != (batch,):
            raise ValueError(f"shadow_stats.{name} must be a number or have {batch} values")
        return a

    return [conv(getattr(stats, f), f) for f in _FIELDS]


_FIELDS = ("csi_min", "csi_mean", "b2_min", "b2_mean")


def _np_smooth(score: np.ndarray) -> np.ndarray:
    """Closing 5x5 (mirror borders), 7x7 zero-padded mean, clip; (B, H, W) float64."""
    closed = ndimage.grey_closing(score, size=(1, CLOSING_SIZE, CLOSING_SIZE), mode="reflect")
    smooth: np.ndarray = np.clip(_np_box_mean(closed, MEAN_SIZE), *SCORE_CLIP)
    return smooth


def _np_box_mean(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-padded size x size mean of (B, H, W), same size; fixed summation order."""
    h, w = x.shape[-2:]
    p = size // 2
    padded = np.pad(x, ((0, 0), (p, p), (p, p)))
    rows = padded[:, :, 0:w]
    for k in range(1, size):
        rows = rows + padded[:, :, k : k + w]
    acc = rows[:, 0:h, :]
    for k in range(1, size):
        acc = acc + rows[:, k : k + h, :]
    return acc / float(size * size)


def _np_shadow(csi: np.ndarray, b2: np.ndarray, stats: list[np.ndarray]) -> np.ndarray:
    t3, t4 = _thresholds(*stats)
    candidate = np.where((csi < t3[:, None, None]) & (b2 < t4[:, None, None]), -1.0, 0.0)
    med = ndimage.median_filter(
        candidate, size=(1, MEDIAN_SIZE, MEDIAN_SIZE), mode="constant", cval=0.0
    )
    shadow: np.ndarray = med < 0
    return shadow


def _np_score_and_shadow(
    image: np.ndarray, stats: ShadowStats | None, want_shadow: bool = True
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    batch, batched = _np_batch(image)
    r = _np_reflectance(batch)
    score = _np_smooth(_raw_score(r, np.true_divide, np.minimum, np.where))
    if not want_shadow:
        return score, None, batched
    csi = (r[_B8] + r[_B11]) / 2.0
    fields = _np_stats_fields(_np_stats(csi, r[_B2]) if stats is None else stats, len(batch))
    return score, _np_shadow(csi, r[_B2], fields), batched


# --------------------------------------------------------------------------- torch path
def _torch_batch(image: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if image.is_complex():
        raise ValueError(f"cloud mask input must be real, got dtype {image.dtype}")
    _check_shape(tuple(image.shape), "torch tensor")
    batched = image.ndim == 4
    return (image if batched else image.unsqueeze(0)), batched


def _torch_ops(
    device: torch.device,
) -> tuple[
    Callable[[torch.Tensor, float], torch.Tensor],
    Callable[[torch.Tensor, float, torch.Tensor], torch.Tensor],
]:
    """IEEE true division by a float and ``where`` with a float, on ``device``."""
    on_cpu = torch.device(device).type == "cpu"

    def div(x: torch.Tensor, c: float) -> torch.Tensor:
        # On CUDA a CPU-scalar divisor is turned into a multiplication by its reciprocal (off by
        # one ulp at times); a 0-dim tensor on the device keeps IEEE true division, as numpy
        # does. The CPU kernel divides truly for float64 either way (and faster by a scalar).
        if on_cpu:
            return x / c
        # torch.full fills on the device: no host-to-device copy (and no stream sync) per call
        return x / torch.full((), c, dtype=torch.float64, device=device)

    def where(cond: torch.Tensor, a: float, b: torch.Tensor) -> torch.Tensor:
        return torch.where(cond, torch.full((), a, dtype=b.dtype, device=device), b)

    return div, where


def _torch_minimum(a: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    if not isinstance(b, torch.Tensor):
        return torch.clamp(a, max=b)
    return torch.minimum(a, b)


def _torch_reflectance(batch: torch.Tensor) -> list[torch.Tensor]:
    sub = torch.stack([batch[:, b] for b in _USED_BANDS], 1).to(torch.float64)
    div, _ = _torch_ops(batch.device)
    sub = div(sub, REFLECTANCE_SCALE)
    return list(sub.unbind(1))


def _torch_tree_sum(x: torch.Tensor) -> torch.Tensor:
    """Per-row sum of a (B, N) tensor in the same fixed pairwise order as :func:`_np_tree_sum`."""
    n = x.shape[1]
    size = 1 << max(n - 1, 0).bit_length()
    if size > n:
        x = torch.cat([x, x.new_zeros((x.shape[0], size - n))], dim=1)
    while size > 1:
        size //= 2
        x = x[:, :size] + x[:, size:]
    return x[:, 0]


def _torch_stats(csi: torch.Tensor, b2: torch.Tensor) -> ShadowStats:
    flat_csi = csi.reshape(csi.shape[0], -1)
    flat_b2 = b2.reshape(b2.shape[0], -1)
    csi_min = flat_csi.amin(dim=1)
    b2_min = flat_b2.amin(dim=1)
    div, _ = _torch_ops(csi.device)
    return ShadowStats(
        csi_min=csi_min,
        csi_mean=_mean_of(flat_csi, csi_min, _torch_tree_sum, div),
        b2_min=b2_min,
        b2_mean=_mean_of(flat_b2, b2_min, _torch_tree_sum, div),
    )


def _torch_stats_fields(
    stats: ShadowStats, batch: int, device: torch.device
) -> list[torch.Tensor]:
    """The four statistics as (batch,) float64 tensors on ``device`` (numbers repeated)."""

    def conv(v: StatValue, name: str) -> torch.Tensor:
        t = torch.as_tensor(v, dtype=torch.float64).to(device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
        if tuple(t.shape) != (batch,):
            raise ValueError(f"shadow_stats.{name} must be a number or have {batch} values")
        return t

    return [conv(getattr(stats, f), f) for f in _FIELDS]


def _mirror_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of a "d c b a | a b c d | d c b a" mirror padding (scipy mode 'reflect')."""
    i = torch.arange(-pad, n + pad, device=device) % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _torch_mirror_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    x = x.index_select(-2, _mirror_index(h, pad, x.device))
    return x.index_select(-1, _mirror_index(w, pad, x.device))


def _torch_smooth(score: torch.Tensor) -> torch.Tensor:
    """(B, H, W) float64 -> closing 5x5 (mirror borders), 7x7 zero-padded mean, clip."""
    p, k = CLOSING_SIZE // 2, CLOSING_SIZE

    def max5x5(t: torch.Tensor) -> torch.Tensor:  # separable flat 5x5 maximum, no padding (exact)
        return F.max_pool2d(F.max_pool2d(t, (1, k), stride=1), (k, 1), stride=1)

    x = score.unsqueeze(1)
    dilated = max5x5(_torch_mirror_pad(x, p))
    closed = -max5x5(-_torch_mirror_pad(dilated, p))
    mean = _torch_box_mean(closed[:, 0], MEAN_SIZE)
    return torch.clamp(mean, *SCORE_CLIP)


def _torch_box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-padded size x size mean of (B, H, W); same summation order as :func:`_np_box_mean`."""

    h, w = x.shape[-2:]
    p = size // 2
    padded = F.pad(x, (p, p, p, p))
    rows = padded[:, :, 0:w]
    for k in range(1, size):
        rows = rows + padded[:, :, k : k + w]
    acc = rows[:, 0:h, :]
    for k in range(1, size):
        acc = acc + rows[:, k : k + h, :]
    div, _ = _torch_ops(x.device)
    return div(acc, float(size * size))


def _torch_shadow(csi: torch.Tensor, b2: torch.Tensor, stats: list[torch.Tensor]) -> torch.Tensor:
    t3, t4 = _thresholds(*stats)
    candidate = (csi < t3[:, None, None]) & (b2 < t4[:, None, None])
    # The median of 25 values from {-1, 0} is -1 exactly when at least 13 of them are -1;
    # zero padding contributes 0s. Counting is exact in float64.
    count = F.avg_pool2d(
        candidate.to(csi.dtype).unsqueeze(1),
        MEDIAN_SIZE,
        stride=1,
        padding=MEDIAN_SIZE // 2,
        count_include_pad=True,
        divisor_override=1,
    )[:, 0]
    return count >= (MEDIAN_SIZE * MEDIAN_SIZE) // 2 + 1


def _torch_score_and_shadow(
    image: torch.Tensor, stats: ShadowStats | None, want_shadow: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    batch, batched = _torch_batch(image)
    with torch.no_grad():
        r = _torch_reflectance(batch)
        div, where = _torch_ops(batch.device)
        score = _torch_smooth(_raw_score(r, div, _torch_minimum, where))
        if not want_shadow:
            return score, None, batched
        csi = div(r[_B8] + r[_B11], 2.0)
        own = _torch_stats(csi, r[_B2]) if stats is None else stats
        fields = _torch_stats_fields(own, batch.shape[0], batch.device)
        return score, _torch_shadow(csi, r[_B2], fields), batched


# --------------------------------------------------------------------------- public API
def cloud_score(image: ArrayT) -> ArrayT:
    """The smoothed continuous cloud score (before thresholding).

    Args:
        image: Sentinel-2 L1C DN, numpy (13, H, W) / (B, 13, H, W) or torch (13, H, W) /
            (B, 13, H, W), any real dtype, bands B1..B12 in SEN12MS-CR order.

    Returns:
        float64 score in [1e-5, 1] of shape (H, W) or (B, H, W), numpy or torch like the input
        (torch on the input's device).
    """
    if isinstance(image, torch.Tensor):
        score_t, _, batched = _torch_score_and_shadow(image, None, want_shadow=False)
        return score_t if batched else score_t[0]
    score, _, batched = _np_score_and_shadow(image, None, want_shadow=False)
    return score if batched else score[0]


def shadow_statistics(image: np.ndarray | torch.Tensor) -> ShadowStats:
    """Image-wide statistics of the shadow test (min and mean of CSI and of B2 reflectance).

    Args:
        image: DN image(s) as for :func:`cloud_shadow_mask`; statistics are per image.

    Returns:
        :class:`ShadowStats`; fields are floats for one numpy image, (B,) float64 arrays for a
        numpy batch, float64 tensors of shape () or (B,) on the input's device for torch input.
    """
    if isinstance(image, torch.Tensor):
        batch_t, _ = _torch_batch(image)
        with torch.no_grad():
            rt = _torch_reflectance(batch_t)
            div, _ = _torch_ops(batch_t.device)
            stats = _torch_stats(div(rt[_B8] + rt[_B11], 2.0), rt[_B2])
        if image.ndim == 3:
            stats = ShadowStats(*(getattr(stats, f)[0] for f in _FIELDS))
        return stats
    batch, batched = _np_batch(image)
    r = _np_reflectance(batch)
    stats = _np_stats((r[_B8] + r[_B11]) / 2.0, r[_B2])
    if not batched:
        stats = ShadowStats(*(float(getattr(stats, f)[0]) for f in _FIELDS))
    return stats


def cloud_shadow_mask(
    image: ArrayT, threshold: float = DEFAULT_THRESHOLD, shadow_stats: ShadowStats | None = None
) -> ArrayT:
    """Cloud (1) / shadow (-1) / clear (0) mask of Sentinel-2 L1C images.

    Args:
        image: DN, numpy (13, H, W) or (B, 13, H, W), or torch (13, H, W) or (B, 13, H, W) on any
            device; any real dtype. The torch path is batched and runs where the tensor is.
        threshold: cloud where the smoothed cloud score is >= threshold.
        shadow_stats: image-wide shadow statistics to use instead of the image's own (e.g. those
            of a whole scene when masking it tile by tile); numbers, or (B,) values per image.
            Non-finite DN (NaN) make the result unspecified: fill them first
            (:func:`dsen2cr.scaling.fill_nan`).

    Returns:
        int8 mask of shape (H, W) or (B, H, W), numpy or torch (same device) like the input.

    Raises:
        ValueError: if the input is not (B,) 13 x H x W real numbers or the threshold is not
            finite.
    """
    thr = _check_threshold(threshold)
    if isinstance(image, torch.Tensor):
        score_t, shadow, batched = _torch_score_and_shadow(image, shadow_stats)
        assert shadow is not None
        one = torch.ones((), dtype=torch.int8, device=score_t.device)
        mask_t = torch.where(score_t >= thr, one, torch.where(shadow, -one, 0 * one))
        return mask_t if batched else mask_t[0]
    score, shadow_np, batched = _np_score_and_shadow(image, shadow_stats)
    assert shadow_np is not None
    mask = np.where(score >= thr, 1, np.where(shadow_np, -1, 0)).astype(np.int8)
    return mask if batched else mask[0]


def binary_mask(
    image: ArrayT, threshold: float = DEFAULT_THRESHOLD, shadow_stats: ShadowStats | None = None
) -> ArrayT:
    """Cloud-or-shadow mask for CARL and the metrics (1 = cloud or shadow).

    Args:
        image: DN image(s) as for :func:`cloud_shadow_mask`.
        threshold: cloud threshold on the smoothed score.
        shadow_stats: optional image-wide shadow statistics, see :func:`cloud_shadow_mask`.

    Returns:
        (H, W) or (B, H, W): numpy uint8 {0, 1} for numpy input, torch bool for torch input.
    """
    mask = cloud_shadow_mask(image, threshold, shadow_stats)
    if isinstance(mask, torch.Tensor):
        return mask != 0
    return np.asarray(mask != 0).astype(np.uint8)


# --------------------------------------------------------------------------- scenes
class _MinMean:
    """Exact min and (two-level, order-independent up to round-off) mean of float64 values."""

    def __init__(self) -> None:
        self.parts: list[tuple[float, float, int]] = []

    def add(self, x: np.ndarray) -> None:
        if x.size:
            m = float(x.min())
            self.parts.append((m, float(np.sum(x - m)), int(x.size)))

    def result(self) -> tuple[float, float]:
        if not self.parts:
            return 0.0, 0.0
        m = min(p[0] for p in self.parts)
        n = sum(p[2] for p in self.parts)
        total = math.fsum(p[1] + p[2] * (p[0] - m) for p in self.parts)
        return m, m + total / n


class ShadowStatsAccumulator:
    """The shadow test's image-wide statistics of a scene too large to hold, block by block.

    Feed it the pixels of the scene in any blocks (valid pixels only, to leave nodata out);
    :meth:`result` equals :func:`shadow_statistics` of all of them, the minima exactly and the
    means up to float round-off (the same float64 reflectance operations as the detector).
    """

    def __init__(self) -> None:
        self._csi = _MinMean()
        self._b2 = _MinMean()

    def add(self, dn: np.ndarray) -> None:
        """Add pixels: DN with the 13 bands on axis 0, any shape after it, e.g. (13, N)."""
        r = {b: dn[b].astype(np.float64) / REFLECTANCE_SCALE for b in (1, 7, 11)}
        self._csi.add((r[7] + r[11]) / 2.0)
        self._b2.add(r[1])

    def result(self) -> ShadowStats:
        """The statistics of all pixels added (zeros when none was)."""
        csi_min, csi_mean = self._csi.result()
        b2_min, b2_mean = self._b2.result()
        return ShadowStats(csi_min=csi_min, csi_mean=csi_mean, b2_min=b2_min, b2_mean=b2_mean)
