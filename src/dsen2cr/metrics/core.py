"""Evaluation metrics of the paper (Section 4, Table 1, Figs. 10-11), under a declared protocol.

All metrics are computed on top-of-atmosphere **reflectance** (DN / 10000; use
:func:`dsen2cr.scaling.scaled_to_reflectance` or :func:`dsen2cr.scaling.dn_to_reflectance`),
per image, in float64, and then averaged over images (:class:`~dsen2cr.metrics.MetricAccumulator`).
Every convention that changes a value (crop, clipping, PSNR of a perfect image, SSIM kernel and
padding, zero-norm spectra in SAM, averaging) comes from a :class:`~dsen2cr.metrics.Protocol`;
the default is ``"dsen2cr"``, described here.

Regions and keys:

* ``target_*`` - prediction vs. cloud-free target over all pixels: ``target_mae``,
  ``target_rmse``, ``target_psnr`` (dB, ``20 log10(1 / RMSE)``, data range 1), ``target_sam``
  (degrees) and ``target_ssim``.
* ``reprod_*`` - prediction vs. cloudy input on clear pixels (mask == 0): MAE, RMSE, SAM.
* ``recon_*`` - prediction vs. target on cloud/shadow pixels (mask != 0): MAE, RMSE, SAM.
* :func:`band_nrmse` - per-band RMSE / (max - min of the target band) x 100 (percent).

Definitions (``dsen2cr`` protocol):

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
  The ``"zeros"`` padding of other protocols pads the image by 5 zeros first (an H x W map).

Undefined values are ``NaN`` for that image, never an error and never 0: an empty reprod or
recon region, a region where every spectrum has zero norm (SAM), ``RMSE == 0`` (PSNR would be
+inf, which cannot be averaged; it is reported as undefined), an image smaller than 11 x 11
(SSIM), a constant target band (nRMSE), or non-finite inputs.

The mask is the binary cloud-or-shadow mask (1 = cloud or shadow). Any non-zero value counts as
cloud or shadow, so the tri-state mask of :func:`dsen2cr.cloudmask.cloud_shadow_mask`
({-1 shadow, 0 clear, 1 cloud}) can be passed directly as well.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dsen2cr.metrics.protocols import Protocol, get_protocol

__all__ = [
    "DATA_RANGE",
    "METRIC_KEYS",
    "RECON_KEYS",
    "REPROD_KEYS",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "TARGET_KEYS",
    "band_nrmse",
    "batch_band_nrmse",
    "batch_metrics",
    "crop_box",
    "image_metrics",
    "protocol_view",
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
"""Side of the Gaussian SSIM window of the default protocol (pixels)."""
SSIM_SIGMA = 1.5
"""Standard deviation of the Gaussian SSIM window of the default protocol (pixels)."""
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 1.0
"""Data range of reflectance used by PSNR and SSIM."""


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _as_float64(x: np.ndarray | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        t = torch.from_numpy(np.asarray(x))
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.to(device=device if device is not None else t.device, dtype=torch.float64)


def _batched_images(
    x: np.ndarray | torch.Tensor, name: str, device: torch.device | None = None
) -> torch.Tensor:
    t = _as_float64(x, device)
    if t.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(t.shape)}")
    return t


def _batched_mask(mask: np.ndarray | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
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


def crop_box(height: int, width: int, protocol: str | Protocol | None = None) -> tuple[int, ...]:
    """The region a protocol scores in an image of ``height`` x ``width`` pixels.

    Returns:
        ``(row0, col0, rows, cols)``: the whole image, or the centre ``crop`` x ``crop`` window
        starting at ``((height - crop) // 2, (width - crop) // 2)`` (GLF-CR's test crop). An
        axis not longer than the crop is kept whole.
    """
    p = get_protocol(protocol)
    if p.crop is None:
        return 0, 0, height, width
    rows, cols = min(p.crop, height), min(p.crop, width)
    return (height - rows) // 2, (width - cols) // 2, rows, cols


def protocol_view(x: torch.Tensor, protocol: str | Protocol | None = None) -> torch.Tensor:
    """The protocol's crop of a ``(..., H, W)`` tensor (a view; the tensor itself when whole)."""
    r0, c0, rows, cols = crop_box(x.shape[-2], x.shape[-1], protocol)
    if (rows, cols) == tuple(x.shape[-2:]):
        return x
    return x[..., r0 : r0 + rows, c0 : c0 + cols]


def _clip(x: torch.Tensor, p: Protocol) -> torch.Tensor:
    return x if p.clip is None else x.clamp(p.clip[0], p.clip[1])


# --------------------------------------------------------------------------------------------
# Pixel errors and spectral angle
# --------------------------------------------------------------------------------------------


def spectral_angle(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel spectral angle in degrees and its validity, both (B, H, W).

    Args:
        a, b: (B, C, H, W) float64 spectra along the band axis.

    Returns:
        ``(angle, valid)``: the angle (0 where it is undefined) and where both spectra have a
        non-zero norm.
    """
    dot = (a * b).sum(1)
    norms = (a * a).sum(1) * (b * b).sum(1)
    valid = norms > 0
    cos = dot / torch.where(valid, norms, torch.ones_like(norms)).sqrt()
    angle = torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))
    return torch.where(valid, angle, torch.zeros_like(angle)), valid


def _region_errors(
    a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None, p: Protocol
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE, RMSE and SAM of ``a`` vs. ``b`` over the pixels where ``weight`` is 1, each (B,).

    Args:
        a, b: (B, C, H, W) float64.
        weight: (B, 1, H, W) float64 {0, 1} region, or None for all pixels.
        p: the protocol (its zero-norm rule for SAM).
    """
    d = a - b
    angle, valid_b = spectral_angle(a, b)
    valid = valid_b.to(torch.float64)
    if weight is None:
        mae = d.abs().mean((1, 2, 3))
        mse = (d * d).mean((1, 2, 3))
        region = torch.ones_like(valid)
    else:
        region = weight[:, 0]
        n = region.sum((1, 2)) * a.shape[1]  # 0 -> 0/0 = NaN
        mae = (d.abs() * weight).sum((1, 2, 3)) / n
        mse = (d * d * weight).sum((1, 2, 3)) / n
    valid = valid * region
    if p.sam_zero_norm == "skip_pixel":
        sam = (angle * valid).sum((1, 2)) / valid.sum((1, 2))  # no valid pixel -> NaN
    else:
        sam = (angle * region).sum((1, 2)) / region.sum((1, 2))  # empty region -> NaN
        broken = (region - valid).sum((1, 2)) > 0  # a zero-norm spectrum in the region: 0/0
        sam = torch.where(broken, torch.full_like(sam, math.nan), sam)
    return mae, mse.sqrt(), sam


def psnr_from_rmse(rmse: torch.Tensor, p: Protocol) -> torch.Tensor:
    """PSNR in dB from RMSE (reflectance) under a protocol: ``20 log10(data_range / RMSE)``,
    the protocol's ``psnr_perfect`` where RMSE is 0, NaN where RMSE is NaN."""
    perfect = torch.full_like(rmse, p.psnr_perfect)
    safe = torch.where(rmse > 0, rmse, torch.ones_like(rmse))
    value = 20.0 * torch.log10(p.data_range / safe)
    return torch.where(rmse > 0, value, torch.where(rmse == 0, perfect, rmse))


# --------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------


def ssim_kernel(p: Protocol, device: torch.device | None = None) -> torch.Tensor:
    """The protocol's 1-D SSIM window (its outer product is the 2-D window), summing to 1.

    ``g[x] = exp(-(x - center)^2 / (2 sigma^2))`` for ``x = 0 .. window - 1``, normalised.
    """
    x = torch.arange(p.ssim_window, dtype=torch.float64, device=device)
    g = torch.exp(-((x - p.ssim_center) ** 2) / (2.0 * p.ssim_sigma**2))
    return g / g.sum()


def _window_matrix(n_out: int, g: torch.Tensor) -> torch.Tensor:
    """(n_out, n_out + k - 1) banded matrix whose row i holds the window at columns i..i+k-1.

    ``M @ x`` is the 'valid' correlation of ``x`` with the window along its first axis; a dense
    matmul is far faster than a float64 convolution on CPU and just as exact.
    """
    k = g.numel()
    idx = torch.arange(n_out, device=g.device)[:, None] + torch.arange(k, device=g.device)
    m = torch.zeros(n_out, n_out + k - 1, dtype=g.dtype, device=g.device)
    return m.scatter_(1, idx, g.expand(n_out, k).contiguous())


def ssim_sums(
    a: torch.Tensor,
    b: torch.Tensor,
    p: Protocol,
    positions: torch.Tensor | None = None,
    tile: int = 256,
    max_elements: int = 1 << 24,
) -> torch.Tensor:
    """Sum of the SSIM map over window positions, per image and band, with 'valid' windows.

    The caller pads (or not) beforehand; this evaluates every position where the window fits,
    ``(H - k + 1) x (W - k + 1)`` of them, in tiles of at most ``tile`` x ``tile`` positions and
    chunks of band images, so memory stays bounded for any image size.

    Args:
        a, b: (N, C, H, W) float64 images (reflectance) with ``H, W >= window``.
        p: the protocol (kernel and constants).
        positions: optional (N, H - k + 1, W - k + 1) float64 weights of the positions summed
            (1 = counted), e.g. where the whole window lies on covered pixels of a mosaic.

    Returns:
        (N, C) float64 sums of the SSIM values at the counted positions.
    """
    n, c, h, w = a.shape
    k = p.ssim_window
    g = ssim_kernel(p, a.device)
    c1 = (p.ssim_k1 * p.data_range) ** 2
    c2 = (p.ssim_k2 * p.data_range) ** 2
    ho, wo = h - k + 1, w - k + 1
    x_all, y_all = a.reshape(n * c, h, w), b.reshape(n * c, h, w)
    chunk = max(1, max_elements // (5 * (min(tile, ho) + k - 1) * (min(tile, wo) + k - 1)))
    total = torch.zeros(n * c, dtype=torch.float64, device=a.device)
    pos = None if positions is None else positions.repeat_interleave(c, 0)
    mats: dict[int, torch.Tensor] = {}
    for i0 in range(0, ho, tile):
        th = min(tile, ho - i0)
        mv = mats.setdefault(th, _window_matrix(th, g))
        for j0 in range(0, wo, tile):
            tw = min(tile, wo - j0)
            mh = mats.setdefault(tw, _window_matrix(tw, g))
            rows, cols = slice(i0, i0 + th + k - 1), slice(j0, j0 + tw + k - 1)
            for s0 in range(0, n * c, chunk):
                x = x_all[s0 : s0 + chunk, rows, cols]
                y = y_all[s0 : s0 + chunk, rows, cols]
                stack = torch.stack((x, y, x * x, y * y, x * y), 1)
                mx, my, sxx, syy, sxy = (mv @ stack @ mh.T).unbind(1)
                vx = sxx - mx * mx
                vy = syy - my * my
                vxy = sxy - mx * my
                num = (2 * mx * my + c1) * (2 * vxy + c2)
                s = num / ((mx * mx + my * my + c1) * (vx + vy + c2))
                if pos is not None:
                    s = s * pos[s0 : s0 + chunk, i0 : i0 + th, j0 : j0 + tw]
                total[s0 : s0 + chunk] += s.sum((1, 2))
    return total.reshape(n, c)


def _ssim(a: torch.Tensor, b: torch.Tensor, p: Protocol) -> torch.Tensor:
    """Mean SSIM per image (B,), averaged over bands and the positions of the protocol."""
    bsz, _, h, w = a.shape
    k = p.ssim_window
    if p.ssim_padding == "zeros":
        pad = k // 2
        a = torch.nn.functional.pad(a, (pad, k - 1 - pad, pad, k - 1 - pad))
        b = torch.nn.functional.pad(b, (pad, k - 1 - pad, pad, k - 1 - pad))
    elif h < k or w < k:
        return torch.full((bsz,), math.nan, dtype=torch.float64, device=a.device)
    ho, wo = a.shape[2] - k + 1, a.shape[3] - k + 1
    return (ssim_sums(a, b, p) / (ho * wo)).mean(1)


# --------------------------------------------------------------------------------------------
# Public metrics
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def batch_metrics(
    prediction: torch.Tensor,
    target: torch.Tensor,
    cloudy: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    *,
    protocol: str | Protocol | None = None,
) -> dict[str, torch.Tensor]:
    """Per-image metrics of a batch, on the inputs' device, in float64.

    Args:
        prediction: (B, 13, H, W) predicted reflectance.
        target: (B, 13, H, W) cloud-free target reflectance.
        cloudy: (B, 13, H, W) cloudy input reflectance, for the reprod metrics.
        mask: (B, H, W) or (B, 1, H, W) cloud-or-shadow mask (bool or numeric, non-zero = cloud
            or shadow), for the reprod and recon metrics.
        protocol: a :class:`~dsen2cr.metrics.Protocol` or its name (default ``"dsen2cr"``); its
            crop and clipping are applied here.

    Returns:
        ``{key: (B,) float64 tensor}`` for :data:`TARGET_KEYS`, plus :data:`REPROD_KEYS` and
        :data:`RECON_KEYS` when both ``cloudy`` and ``mask`` are given. Undefined values are NaN.
        No host-device synchronisation happens, so it is cheap inside a validation step.
    """
    proto = get_protocol(protocol)
    p = _batched_images(prediction, "prediction")
    t = _batched_images(target, "target", p.device)
    if t.shape != p.shape:
        raise ValueError(f"target shape {tuple(t.shape)} != prediction shape {tuple(p.shape)}")
    if (cloudy is None) != (mask is None):
        raise ValueError("reprod/recon metrics need both cloudy and mask (or neither)")
    ci = m = None
    if cloudy is not None and mask is not None:
        ci = _batched_images(cloudy, "cloudy", p.device)
        if ci.shape != p.shape:
            raise ValueError(f"cloudy shape {tuple(ci.shape)} != prediction shape {tuple(p.shape)}")
        m = protocol_view(_batched_mask(mask, p), proto)
        ci = _clip(protocol_view(ci, proto), proto)
    p = protocol_view(p, proto)
    p = _clip(p, proto) if proto.clip_prediction else p
    t = _clip(protocol_view(t, proto), proto)
    mae, rmse, sam = _region_errors(p, t, None, proto)
    out = {
        "target_mae": mae,
        "target_rmse": rmse,
        "target_psnr": psnr_from_rmse(rmse, proto),
        "target_sam": sam,
        "target_ssim": _ssim(p, t, proto),
    }
    if ci is not None and m is not None:
        out["reprod_mae"], out["reprod_rmse"], out["reprod_sam"] = _region_errors(
            p, ci, 1.0 - m, proto
        )
        out["recon_mae"], out["recon_rmse"], out["recon_sam"] = _region_errors(p, t, m, proto)
    return out


def _single(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = _as_float64(x)
    if t.ndim != 3:
        raise ValueError(f"{name} must have shape (C, H, W), got {tuple(t.shape)}")
    return t.unsqueeze(0)


def image_metrics(
    prediction: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    cloudy: np.ndarray | torch.Tensor | None = None,
    mask: np.ndarray | torch.Tensor | None = None,
    *,
    protocol: str | Protocol | None = None,
) -> dict[str, float]:
    """Metrics of one image (paper Table 1), on reflectance.

    Args:
        prediction: (13, H, W) predicted reflectance, numpy or torch (any device, any float dtype).
        target: (13, H, W) cloud-free target reflectance.
        cloudy: (13, H, W) cloudy input reflectance, for the reprod metrics.
        mask: (H, W) or (1, H, W) cloud-or-shadow mask (bool or numeric; non-zero = cloud or
            shadow), for the reprod and recon metrics.
        protocol: a :class:`~dsen2cr.metrics.Protocol` or its name: ``"dsen2cr"`` (default),
            ``"uncrtaints"``, ``"glf-cr"`` (see :data:`~dsen2cr.metrics.PROTOCOLS`).

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
    values = batch_metrics(p, t, c, m, protocol=protocol)
    return {k: float(v[0]) for k, v in values.items()}


@torch.no_grad()
def batch_band_nrmse(
    prediction: torch.Tensor,
    target: torch.Tensor,
    *,
    protocol: str | Protocol | None = None,
) -> torch.Tensor:
    """Per-band normalised RMSE in percent (paper Figs. 10-11), batched, on the input's device.

    ``nRMSE_b = 100 * RMSE(P_b, T_b) / (max(T_b) - min(T_b))`` over all pixels of band b (of the
    protocol's crop, after its clipping).

    Args:
        prediction: (B, 13, H, W) predicted reflectance.
        target: (B, 13, H, W) cloud-free target reflectance.
        protocol: a protocol or its name (default ``"dsen2cr"``).

    Returns:
        (B, 13) float64 tensor; NaN for a band whose target is constant (zero range).
    """
    proto = get_protocol(protocol)
    p = _batched_images(prediction, "prediction")
    t = _batched_images(target, "target", p.device)
    if t.shape != p.shape:
        raise ValueError(f"target shape {tuple(t.shape)} != prediction shape {tuple(p.shape)}")
    p = protocol_view(p, proto)
    p = _clip(p, proto) if proto.clip_prediction else p
    t = _clip(protocol_view(t, proto), proto)
    rmse = ((p - t) ** 2).mean((2, 3)).sqrt()
    flat = t.flatten(2)
    rng = flat.amax(2) - flat.amin(2)
    return torch.where(rng > 0, 100.0 * rmse / rng, torch.full_like(rmse, math.nan))


def band_nrmse(
    prediction: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    *,
    protocol: str | Protocol | None = None,
) -> np.ndarray:
    """Per-band normalised RMSE in percent, as a numpy array.

    Args:
        prediction: (13, H, W) or (B, 13, H, W) predicted reflectance (numpy or torch).
        target: the cloud-free target reflectance, same shape.
        protocol: a protocol or its name (default ``"dsen2cr"``).

    Returns:
        float64 array of shape (13,) or (B, 13); NaN where the target band is constant.
    """
    p, t = _as_float64(prediction), _as_float64(target)
    single = p.ndim == 3
    if single:
        p, t = p.unsqueeze(0), t.unsqueeze(0)
    out = batch_band_nrmse(p, t.to(p.device), protocol=protocol).cpu().numpy()
    return out[0] if single else out


def ssim(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    *,
    protocol: str | Protocol | None = None,
) -> float:
    """Mean SSIM of two (C, H, W) reflectance images under a protocol (no crop, no clipping).

    With the default protocol it is NaN below 11 x 11 (see the module docs).
    """
    x = _single(a, "a")
    return float(_ssim(x, _single(b, "b").to(x.device), get_protocol(protocol))[0])
