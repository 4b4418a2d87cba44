"""Evaluation metrics of the paper (Section 4, Table 1, Figs. 10-11).

All metrics are computed on top-of-atmosphere **reflectance** (DN / 10000; use
:func:`dsen2cr.scaling.scaled_to_reflectance` or :func:`dsen2cr.scaling.dn_to_reflectance`),
per image, in float64, and then averaged over images (:class:`MetricAccumulator`).

Regions and keys:

* ``target_*`` - prediction vs. cloud-free target over all pixels: ``target_mae``,
  ``target_rmse``, ``target_psnr`` (dB, ``20 log10(1 / RMSE)``, data range 1), ``target_sam``
  (degrees) and ``target_ssim``.
* ``reprod_*`` - prediction vs. cloudy input on clear pixels (mask == 0): MAE, RMSE, SAM.
* ``recon_*`` - prediction vs. target on cloud/shadow pixels (mask != 0): MAE, RMSE, SAM.
* :func:`band_nrmse` - per-band RMSE / (max - min of the target band) x 100 (percent).

Definitions:

* MAE / RMSE: mean of ``|P - T|`` / root of the mean of ``(P - T)^2`` over all bands and the
  region's pixels.
* SAM: per pixel, the angle ``arccos(clip(<p, t> / sqrt(|p|^2 |t|^2), -1, 1))`` between the
  spectra (all bands) in degrees, averaged over the region's pixels. A pixel where either
  spectrum has zero norm has no angle and is left out of the average.
* SSIM: Wang et al. (2004) with an 11 x 11 Gaussian window (sigma 1.5, normalised to sum 1),
  K1 = 0.01, K2 = 0.03, data range 1 and population (co)variances, evaluated only where the
  window fits entirely inside the image (no padding: ``(H - 10) x (W - 10)`` positions), averaged
  over those positions and over the bands. This is ``tf.image.ssim`` and
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=0)`` (scikit-image filters with
  reflected borders and then crops the 5-pixel border, which leaves exactly these positions).

Undefined values are ``NaN`` for that image, never an error and never 0: an empty reprod or
recon region, a region where every spectrum has zero norm (SAM), ``RMSE == 0`` (PSNR would be
+inf, which cannot be averaged; it is reported as undefined), an image smaller than 11 x 11
(SSIM), a constant target band (nRMSE), or non-finite inputs. :class:`MetricAccumulator` leaves
non-finite values out of its means and counts them as ``"<key>_undefined"``.

The mask is the binary cloud-or-shadow mask (1 = cloud or shadow). Any non-zero value counts as
cloud or shadow, so the tri-state mask of :func:`dsen2cr.cloudmask.cloud_shadow_mask`
({-1 shadow, 0 clear, 1 cloud}) can be passed directly as well.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "METRIC_KEYS",
    "PAPER_TABLE1",
    "RECON_KEYS",
    "REPROD_KEYS",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "TABLE1_COLUMNS",
    "TARGET_KEYS",
    "MetricAccumulator",
    "TableColumn",
    "band_nrmse",
    "batch_band_nrmse",
    "batch_metrics",
    "format_table1",
    "image_metrics",
    "ssim",
]

TARGET_KEYS: tuple[str, ...] = (
    "target_mae",
    "target_rmse",
    "target_psnr",
    "target_sam",
    "target_ssim",
)
"""Prediction vs. cloud-free target, all pixels."""
REPROD_KEYS: tuple[str, ...] = ("reprod_mae", "reprod_rmse", "reprod_sam")
"""Prediction vs. cloudy input on clear pixels (mask == 0)."""
RECON_KEYS: tuple[str, ...] = ("recon_mae", "recon_rmse", "recon_sam")
"""Prediction vs. target on cloud/shadow pixels (mask != 0)."""
METRIC_KEYS: tuple[str, ...] = TARGET_KEYS + REPROD_KEYS + RECON_KEYS
"""Every key :func:`image_metrics` can return, in this order."""

SSIM_WINDOW = 11
"""Side of the Gaussian SSIM window (pixels)."""
SSIM_SIGMA = 1.5
"""Standard deviation of the Gaussian SSIM window (pixels)."""
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 1.0
"""Data range of reflectance used by PSNR and SSIM."""


@dataclass(frozen=True)
class TableColumn:
    """One column of the paper's Table 1.

    Attributes:
        part: ``"a"`` (pixel-wise metrics) or ``"b"`` (spectral and structural fidelity).
        metric: metric name as printed, e.g. ``"MAE"``.
        region: ``"Target"``, ``"Reprod"`` or ``"Recon"``.
        key: the metric key in :func:`image_metrics` / :meth:`MetricAccumulator.compute`.
        unit: unit as printed (``"TOA"`` reflectance, ``"dB"``, ``"°"`` or ``""``).
        fmt: format spec of the paper's precision, e.g. ``".4f"``.
        higher_is_better: direction of improvement.
    """

    part: str
    metric: str
    region: str
    key: str
    unit: str
    fmt: str
    higher_is_better: bool


TABLE1_COLUMNS: tuple[TableColumn, ...] = (
    TableColumn("a", "MAE", "Target", "target_mae", "TOA", ".4f", False),
    TableColumn("a", "MAE", "Reprod", "reprod_mae", "TOA", ".4f", False),
    TableColumn("a", "MAE", "Recon", "recon_mae", "TOA", ".4f", False),
    TableColumn("a", "RMSE", "Target", "target_rmse", "TOA", ".4f", False),
    TableColumn("a", "PSNR", "Target", "target_psnr", "dB", ".1f", True),
    TableColumn("b", "SAM", "Target", "target_sam", "°", ".2f", False),
    TableColumn("b", "SAM", "Reprod", "reprod_sam", "°", ".2f", False),
    TableColumn("b", "SAM", "Recon", "recon_sam", "°", ".2f", False),
    TableColumn("b", "SSIM", "Target", "target_ssim", "", ".3f", True),
)
"""Layout of the paper's Table 1 (parts a and b, in the paper's column order)."""


def _paper_row(values: Sequence[float]) -> dict[str, float]:
    return {col.key: v for col, v in zip(TABLE1_COLUMNS, values, strict=True)}


PAPER_TABLE1: dict[str, dict[str, float]] = {
    "DSen2-CR on CARL": _paper_row((0.0290, 0.0204, 0.0266, 0.0366, 28.7, 8.15, 3.94, 8.04, 0.875)),
    "DSen2-CR on T": _paper_row((0.0270, 0.0398, 0.0266, 0.0343, 29.3, 8.07, 6.33, 8.13, 0.878)),
    "DSen2-CR on CARL w/o SAR": _paper_row(
        (0.0306, 0.0188, 0.0282, 0.0387, 27.6, 8.98, 3.86, 8.97, 0.870)
    ),
    "DSen2-CR on T w/o SAR": _paper_row(
        (0.0284, 0.0389, 0.0281, 0.0361, 28.8, 8.97, 6.17, 9.05, 0.873)
    ),
    "pix2pix": _paper_row((0.0292, 0.0210, 0.0274, 0.0424, 28.2, 13.68, 13.93, 12.67, 0.844)),
}
"""The paper's Table 1 results on the SEN12MS-CR test split, keyed by method then metric key."""


def format_table1(rows: Mapping[str, Mapping[str, float]]) -> str:
    """Lay out results like the paper's Table 1 as one Markdown table.

    Args:
        rows: method name -> metric dict (e.g. :meth:`MetricAccumulator.compute` output or a
            row of :data:`PAPER_TABLE1`). Missing or non-finite values print as ``n/a``.

    Returns:
        Markdown text: a header row ``Method | MAE Target (TOA) | ...`` and one row per method.
    """
    header = ["Method"]
    for col in TABLE1_COLUMNS:
        unit = f" ({col.unit})" if col.unit else ""
        header.append(f"{col.metric} {col.region}{unit}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, values in rows.items():
        cells = [str(name)]
        for col in TABLE1_COLUMNS:
            v = values.get(col.key)
            ok = v is not None and math.isfinite(float(v))
            cells.append(format(float(v), col.fmt) if ok else "n/a")  # type: ignore[arg-type]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Core (batched torch, float64)
# --------------------------------------------------------------------------------------------


def _as_float64(x: Any, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        t = torch.from_numpy(np.asarray(x))
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.to(device=device if device is not None else t.device, dtype=torch.float64)


def _batched_images(x: Any, name: str, device: torch.device | None = None) -> torch.Tensor:
    t = _as_float64(x, device)
    if t.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(t.shape)}")
    return t


def _batched_mask(mask: Any, like: torch.Tensor) -> torch.Tensor:
    """Cloud-or-shadow mask as float64 (B, 1, H, W) with values {0, 1} (1 where mask != 0)."""
    m = mask.detach() if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask))
    m = m.to(like.device)
    b, _, h, w = like.shape
    if m.ndim == 3:
        m = m.unsqueeze(1)
    if m.ndim != 4 or m.shape[1] != 1 or tuple(m.shape[2:]) != (h, w) or m.shape[0] != b:
        raise ValueError(
            f"mask must have shape ({b}, {h}, {w}) or ({b}, 1, {h}, {w}), got {tuple(mask.shape)}"
        )
    return (m != 0).to(torch.float64)


def _spectral_angle(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel spectral angle in degrees and its validity, both (B, H, W).

    Args:
        a, b: (B, C, H, W) float64 spectra along the band axis.
    """
    dot = (a * b).sum(1)
    norms = (a * a).sum(1) * (b * b).sum(1)
    valid = norms > 0
    cos = dot / torch.where(valid, norms, torch.ones_like(norms)).sqrt()
    angle = torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))
    return angle, valid


def _region_errors(
    a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE, RMSE and SAM of ``a`` vs. ``b`` over the pixels where ``weight`` is 1, each (B,).

    Args:
        a, b: (B, C, H, W) float64.
        weight: (B, 1, H, W) float64 {0, 1} region, or None for all pixels.
    """
    d = a - b
    angle, valid = _spectral_angle(a, b)
    valid = valid.to(torch.float64)
    angle = torch.where(valid > 0, angle, torch.zeros_like(angle))
    if weight is None:
        mae = d.abs().mean((1, 2, 3))
        mse = (d * d).mean((1, 2, 3))
    else:
        n = weight.sum((1, 2, 3)) * a.shape[1]  # 0 -> 0/0 = NaN
        mae = (d.abs() * weight).sum((1, 2, 3)) / n
        mse = (d * d * weight).sum((1, 2, 3)) / n
        valid = valid * weight[:, 0]
    sam = (angle * valid).sum((1, 2)) / valid.sum((1, 2))  # no valid pixel -> NaN
    return mae, mse.sqrt(), sam


def _gaussian_window(device: torch.device) -> torch.Tensor:
    radius = SSIM_WINDOW // 2
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    g = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return g / g.sum()


def _window_matrix(n_out: int, g: torch.Tensor) -> torch.Tensor:
    """(n_out, n_out + 10) banded matrix whose row i holds the window at columns i..i+10.

    ``M @ x`` is the 'valid' correlation of ``x`` with the window along its first axis; a dense
    matmul is far faster than a float64 convolution on CPU and just as exact.
    """
    k = g.numel()
    idx = torch.arange(n_out, device=g.device)[:, None] + torch.arange(k, device=g.device)
    m = torch.zeros(n_out, n_out + k - 1, dtype=g.dtype, device=g.device)
    return m.scatter_(1, idx, g.expand(n_out, k).contiguous())


def _ssim(
    a: torch.Tensor, b: torch.Tensor, tile: int = 256, max_elements: int = 1 << 24
) -> torch.Tensor:
    """Mean SSIM per image (B,), averaged over bands and valid window positions.

    The (H - 10) x (W - 10) valid positions are processed in tiles of at most ``tile`` x
    ``tile`` positions and chunks of band images, so memory stays bounded for any image size.

    Args:
        a, b: (B, C, H, W) float64 images with data range 1.
    """
    bsz, c, h, w = a.shape
    k = SSIM_WINDOW
    if h < k or w < k:
        return torch.full((bsz,), math.nan, dtype=torch.float64, device=a.device)
    g = _gaussian_window(a.device)
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    ho, wo = h - k + 1, w - k + 1
    x_all, y_all = a.reshape(bsz * c, h, w), b.reshape(bsz * c, h, w)
    chunk = max(1, max_elements // (5 * (min(tile, ho) + k - 1) * (min(tile, wo) + k - 1)))
    total = torch.zeros(bsz * c, dtype=torch.float64, device=a.device)
    mats: dict[int, torch.Tensor] = {}
    for i0 in range(0, ho, tile):
        th = min(tile, ho - i0)
        mv = mats.setdefault(th, _window_matrix(th, g))
        for j0 in range(0, wo, tile):
            tw = min(tile, wo - j0)
            mh = mats.setdefault(tw, _window_matrix(tw, g))
            rows, cols = slice(i0, i0 + th + k - 1), slice(j0, j0 + tw + k - 1)
            for s0 in range(0, bsz * c, chunk):
                x = x_all[s0 : s0 + chunk, rows, cols]
                y = y_all[s0 : s0 + chunk, rows, cols]
                stack = torch.stack((x, y, x * x, y * y, x * y), 1)
                mx, my, sxx, syy, sxy = (mv @ stack @ mh.T).unbind(1)
                vx = sxx - mx * mx
                vy = syy - my * my
                vxy = sxy - mx * my
                num = (2 * mx * my + c1) * (2 * vxy + c2)
                s = num / ((mx * mx + my * my + c1) * (vx + vy + c2))
                total[s0 : s0 + chunk] += s.sum((1, 2))
    return (total / (ho * wo)).reshape(bsz, c).mean(1)


@torch.no_grad()
def batch_metrics(
    prediction: torch.Tensor,
    target: torch.Tensor,
    cloudy: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-image metrics of a batch, on the inputs' device, in float64.

    Args:
        prediction: (B, 13, H, W) predicted reflectance.
        target: (B, 13, H, W) cloud-free target reflectance.
        cloudy: (B, 13, H, W) cloudy input reflectance, for the reprod metrics.
        mask: (B, H, W) or (B, 1, H, W) cloud-or-shadow mask (bool or numeric, non-zero = cloud
            or shadow), for the reprod and recon metrics.

    Returns:
        ``{key: (B,) float64 tensor}`` for :data:`TARGET_KEYS`, plus :data:`REPROD_KEYS` and
        :data:`RECON_KEYS` when both ``cloudy`` and ``mask`` are given. Undefined values are NaN.
        No host-device synchronisation happens, so it is cheap inside a validation step.
    """
    p = _batched_images(prediction, "prediction")
    t = _batched_images(target, "target", p.device)
    if t.shape != p.shape:
        raise ValueError(f"target shape {tuple(t.shape)} != prediction shape {tuple(p.shape)}")
    mae, rmse, sam = _region_errors(p, t, None)
    psnr = torch.where(rmse > 0, -20.0 * torch.log10(rmse), torch.full_like(rmse, math.nan))
    out = {
        "target_mae": mae,
        "target_rmse": rmse,
        "target_psnr": psnr,
        "target_sam": sam,
        "target_ssim": _ssim(p, t),
    }
    if (cloudy is None) != (mask is None):
        raise ValueError("reprod/recon metrics need both cloudy and mask (or neither)")
    if cloudy is not None and mask is not None:
        ci = _batched_images(cloudy, "cloudy", p.device)
        if ci.shape != p.shape:
            raise ValueError(f"cloudy shape {tuple(ci.shape)} != prediction shape {tuple(p.shape)}")
        m = _batched_mask(mask, p)
        out["reprod_mae"], out["reprod_rmse"], out["reprod_sam"] = _region_errors(p, ci, 1.0 - m)
        out["recon_mae"], out["recon_rmse"], out["recon_sam"] = _region_errors(p, t, m)
    return out


def _single(x: Any, name: str) -> torch.Tensor:
    t = _as_float64(x)
    if t.ndim != 3:
        raise ValueError(f"{name} must have shape (C, H, W), got {tuple(t.shape)}")
    return t.unsqueeze(0)


def image_metrics(
    prediction: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    cloudy: np.ndarray | torch.Tensor | None = None,
    mask: np.ndarray | torch.Tensor | None = None,
) -> dict[str, float]:
    """Metrics of one image (paper Table 1), on reflectance.

    Args:
        prediction: (13, H, W) predicted reflectance, numpy or torch (any device, any float dtype).
        target: (13, H, W) cloud-free target reflectance.
        cloudy: (13, H, W) cloudy input reflectance, for the reprod metrics.
        mask: (H, W) or (1, H, W) cloud-or-shadow mask (bool or numeric; non-zero = cloud or
            shadow), for the reprod and recon metrics.

    Returns:
        ``{key: float}`` for :data:`TARGET_KEYS`, plus :data:`REPROD_KEYS` and :data:`RECON_KEYS`
        when ``cloudy`` and ``mask`` are given. Undefined values (see the module docs) are NaN.
    """
    p = _single(prediction, "prediction")
    t = _single(target, "target").to(p.device)
    c = None if cloudy is None else _single(cloudy, "cloudy").to(p.device)
    m = None
    if mask is not None:
        m = mask.detach() if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask))
        if m.ndim == 3 and m.shape[0] == 1:
            m = m[0]
        if m.ndim != 2:
            raise ValueError(f"mask must have shape (H, W) or (1, H, W), got {tuple(m.shape)}")
        m = m.unsqueeze(0)
    values = batch_metrics(p, t, c, m)
    return {k: float(v[0]) for k, v in values.items()}


@torch.no_grad()
def batch_band_nrmse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-band normalised RMSE in percent (paper Figs. 10-11), batched, on the input's device.

    ``nRMSE_b = 100 * RMSE(P_b, T_b) / (max(T_b) - min(T_b))`` over all pixels of band b.

    Args:
        prediction: (B, 13, H, W) predicted reflectance.
        target: (B, 13, H, W) cloud-free target reflectance.

    Returns:
        (B, 13) float64 tensor; NaN for a band whose target is constant (zero range).
    """
    p = _batched_images(prediction, "prediction")
    t = _batched_images(target, "target", p.device)
    if t.shape != p.shape:
        raise ValueError(f"target shape {tuple(t.shape)} != prediction shape {tuple(p.shape)}")
    rmse = ((p - t) ** 2).mean((2, 3)).sqrt()
    flat = t.flatten(2)
    rng = flat.amax(2) - flat.amin(2)
    return torch.where(rng > 0, 100.0 * rmse / rng, torch.full_like(rmse, math.nan))


def band_nrmse(
    prediction: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor
) -> np.ndarray:
    """Per-band normalised RMSE in percent, as a numpy array.

    Args:
        prediction: (13, H, W) or (B, 13, H, W) predicted reflectance (numpy or torch).
        target: the cloud-free target reflectance, same shape.

    Returns:
        float64 array of shape (13,) or (B, 13); NaN where the target band is constant.
    """
    p, t = _as_float64(prediction), _as_float64(target)
    single = p.ndim == 3
    if single:
        p, t = p.unsqueeze(0), t.unsqueeze(0)
    out = batch_band_nrmse(p, t.to(p.device)).cpu().numpy()
    return out[0] if single else out


def ssim(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """Mean SSIM of two (C, H, W) reflectance images (see the module docs); NaN below 11 x 11."""
    return float(_ssim(_single(a, "a"), _single(b, "b").to(_as_float64(a).device))[0])


# --------------------------------------------------------------------------------------------
# Accumulator
# --------------------------------------------------------------------------------------------


class MetricAccumulator:
    """Averages per-image metrics over a data set, ignoring undefined (non-finite) values.

    For each key it keeps, as float64 tensors, the sum of finite values, the number of finite
    values and the number of non-finite (undefined) values. Scalar metrics are given per image
    (a float, a 0-d tensor/array = one image, or a 1-D ``(B,)`` tensor/array = B images);
    vector metrics such as ``"band_nrmse"`` are given as 2-D ``(B, K)`` and averaged per
    component. The state lives on the device of the first tensor seen (CPU for plain numbers);
    updates cause no host-device synchronisation.

    Example (Lightning)::

        acc.update(batch_metrics(pred, target, cloudy, mask))   # every validation step
        acc.sync(); results = acc.compute(); acc.reset()        # at epoch end, on every rank
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        """Create an empty accumulator.

        Args:
            device: device of the state tensors; default: that of the first tensor updated.
        """
        self._device = None if device is None else torch.device(device)
        self._state: dict[str, torch.Tensor] = {}  # key -> (3, *shape): sum, count, undefined
        self._synced = False

    @property
    def keys(self) -> list[str]:
        """Metric keys seen so far, sorted."""
        return sorted(self._state)

    def reset(self) -> None:
        """Forget everything (keys included)."""
        self._state.clear()
        self._synced = False

    def _slot(self, key: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        if self._device is None:
            self._device = device
        if key not in self._state:
            self._state[key] = torch.zeros((3, *shape), dtype=torch.float64, device=self._device)
        slot = self._state[key]
        if tuple(slot.shape[1:]) != shape:
            raise ValueError(
                f"metric {key!r} has per-image shape {shape}, before {tuple(slot.shape[1:])}"
            )
        return slot

    def update(self, values: Mapping[str, Any]) -> None:
        """Add per-image values.

        Args:
            values: ``{key: value}`` where a value is a float, a 0-d tensor/array (one image),
                a 1-D ``(B,)`` tensor/array (B images of a scalar metric) or a 2-D ``(B, K)``
                tensor/array (B images of a K-vector metric, e.g. ``band_nrmse``).
        """
        if self._synced:
            raise RuntimeError(
                "this accumulator already holds synced global totals; reset() it before updating"
            )
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                v = value.detach()
            else:
                v = torch.as_tensor(np.asarray(value, dtype=np.float64))
            if v.ndim == 0:
                v = v.reshape(1)
            if v.ndim > 2:
                raise ValueError(f"metric {key!r}: expected (B,) or (B, K), got {tuple(v.shape)}")
            slot = self._slot(key, tuple(v.shape[1:]), v.device)
            v = v.to(device=slot.device, dtype=torch.float64)
            finite = torch.isfinite(v)
            slot[0] += torch.where(finite, v, torch.zeros_like(v)).sum(0)
            slot[1] += finite.sum(0)
            slot[2] += (~finite).sum(0)

    def merge(self, other: MetricAccumulator) -> MetricAccumulator:
        """Add another accumulator's totals into this one (keys are united); returns self."""
        for key in other.keys:
            src = other._state[key]
            dst = self._slot(key, tuple(src.shape[1:]), src.device)
            dst += src.to(dst.device)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """State as tensors: ``{key: (3, *shape) float64}`` rows = sum, count, undefined."""
        return {k: self._state[k].clone() for k in self.keys}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Replace the state by one from :meth:`state_dict`."""
        self.reset()
        for key, value in state.items():
            v = value.detach().to(torch.float64)
            self._state[key] = v.to(self._device) if self._device is not None else v.clone()
            if self._device is None:
                self._device = v.device

    def sync(self) -> MetricAccumulator:
        """Sum the totals of every process of the default ``torch.distributed`` group.

        A no-op when ``torch.distributed`` is not initialised or has a single process. Every
        rank must call it (it is a collective). Ranks may have seen different keys (e.g. a rank
        whose images had no mask): the key lists are gathered first and united. Afterwards every
        rank holds the global totals, further :meth:`update` calls are refused until
        :meth:`reset`, and calling :meth:`sync` again does nothing. Returns self.
        """
        import torch.distributed as dist

        if self._synced or not (dist.is_available() and dist.is_initialized()):
            return self
        if dist.get_world_size() == 1:
            self._synced = True
            return self
        local = {k: tuple(self._state[k].shape[1:]) for k in self.keys}
        gathered: list[dict[str, tuple[int, ...]] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, local)
        shapes: dict[str, tuple[int, ...]] = {}
        for part in gathered:
            for key, shape in (part or {}).items():
                if shapes.setdefault(key, shape) != shape:
                    raise ValueError(f"metric {key!r} has different shapes across ranks")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        else:
            device = torch.device("cpu")
        keys = sorted(shapes)
        if not keys:
            self._synced = True
            return self
        flat = torch.cat(
            [
                (
                    self._state[k].to(device)
                    if k in self._state
                    else torch.zeros((3, *shapes[k]), dtype=torch.float64, device=device)
                ).reshape(-1)
                for k in keys
            ]
        )
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        home = self._device if self._device is not None else device
        offset = 0
        for k in keys:
            n = 3 * math.prod(shapes[k])
            self._state[k] = flat[offset : offset + n].reshape(3, *shapes[k]).to(home)
            offset += n
        self._device = home
        self._synced = True
        return self

    def compute(self) -> dict[str, Any]:
        """Means over images.

        Returns:
            For every key: ``key`` -> mean of its finite values (NaN if there is none),
            ``key_count`` -> number of images averaged, ``key_undefined`` -> number of images
            whose value was undefined (NaN/inf). Scalar metrics give Python floats/ints; vector
            metrics (e.g. ``band_nrmse``) give numpy arrays per component.
        """
        out: dict[str, Any] = {}
        for key in self.keys:
            s, n, u = self._state[key].cpu().unbind(0)
            mean = torch.where(n > 0, s / n.clamp(min=1), torch.full_like(s, math.nan))
            if mean.ndim == 0:
                out[key] = float(mean)
                out[f"{key}_count"] = int(n)
                out[f"{key}_undefined"] = int(u)
            else:
                out[key] = mean.numpy()
                out[f"{key}_count"] = n.numpy().astype(np.int64)
                out[f"{key}_undefined"] = u.numpy().astype(np.int64)
        return out
