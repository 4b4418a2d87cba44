"""The metrics of one large scene over its covered pixels, accumulated strip by strip.

A mosaic of SEN12MS-CR patches (:mod:`dsen2cr.data.mosaic`) is a scene with nodata where no
patch lies, and too large to score in one piece. :class:`SceneScore` takes the scene in strips
of rows and gives, at the end, the same metrics as :func:`dsen2cr.metrics.image_metrics` would
give on the scene's covered pixels:

* MAE, RMSE and PSNR pooled over all bands and covered pixels; SAM the mean angle over covered
  pixels; reprod on covered clear pixels (vs. the cloudy input), recon on covered cloud or shadow
  pixels (vs. the target); per-band nRMSE with each band's range over the covered target pixels;
* SSIM at every window position whose whole window lies on covered pixels (inside a mosaic
  there is no border to pad, so the protocol's padding does not apply), averaged over those
  positions and the bands;
* the protocol's clipping, PSNR of a perfect scene, SSIM kernel and zero-norm rule apply; its
  crop does not (a scene is scored whole).

A strip may carry halo rows above and below the rows it counts (``owned``): they are used only
by the SSIM windows of the counted rows, so strips with a halo of ``window // 2`` rows give
exactly the SSIM of the whole scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from dsen2cr.metrics.core import METRIC_KEYS, psnr_from_rmse, spectral_angle, ssim_sums
from dsen2cr.metrics.protocols import Protocol, get_protocol

__all__ = ["SceneScore"]


@dataclass
class _Region:
    """Running sums of one region's errors."""

    pixels: int = 0
    abs_sum: float = 0.0
    sq_sum: float = 0.0
    angle_sum: float = 0.0
    angles: int = 0
    zero_norm: int = 0

    def add(self, diff: torch.Tensor, angle: torch.Tensor, valid: torch.Tensor,
            region: torch.Tensor) -> None:  # fmt: skip
        """Add the pixels of ``region`` ((h, w) bool).

        Args:
            diff: (C, h, w) float64 differences of the two images.
            angle, valid: (h, w) spectral angle (degrees) and where it is defined
                (:func:`~dsen2cr.metrics.core.spectral_angle`).
            region: (h, w) bool, the pixels added.
        """
        n = int(region.sum())
        if n == 0:
            return
        d = diff[:, region]
        self.pixels += n
        self.abs_sum += float(d.abs().sum())
        self.sq_sum += float((d * d).sum())
        ok = valid & region
        self.angle_sum += float(angle[ok].sum())
        self.angles += int(ok.sum())
        self.zero_norm += n - int(ok.sum())

    def values(self, bands: int, p: Protocol) -> tuple[float, float, float]:
        """MAE, RMSE and SAM of the region (NaN when empty or undefined)."""
        if self.pixels == 0:
            return math.nan, math.nan, math.nan
        mae = self.abs_sum / (self.pixels * bands)
        rmse = math.sqrt(self.sq_sum / (self.pixels * bands))
        if p.sam_zero_norm == "undefined_image" and self.zero_norm:
            sam = math.nan
        else:
            sam = self.angle_sum / self.angles if self.angles else math.nan
        return mae, rmse, sam


@dataclass
class SceneScore:
    """Metrics of one scene over its covered pixels (see the module docs).

    Attributes:
        protocol: the metric protocol (name or :class:`Protocol`), default ``"dsen2cr"``.
        bands: number of bands (13 for Sentinel-2).
    """

    protocol: str | Protocol | None = None
    bands: int = 13
    _target: _Region = field(default_factory=_Region, init=False)
    _reprod: _Region = field(default_factory=_Region, init=False)
    _recon: _Region = field(default_factory=_Region, init=False)
    _band_sq: np.ndarray = field(init=False)
    _band_min: np.ndarray = field(init=False)
    _band_max: np.ndarray = field(init=False)
    _ssim_sum: np.ndarray = field(init=False)
    _ssim_positions: int = field(default=0, init=False)
    _cloud: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.protocol = get_protocol(self.protocol)
        self._band_sq = np.zeros(self.bands)
        self._band_min = np.full(self.bands, math.inf)
        self._band_max = np.full(self.bands, -math.inf)
        self._ssim_sum = np.zeros(self.bands)

    @property
    def _p(self) -> Protocol:
        assert isinstance(self.protocol, Protocol)
        return self.protocol

    @torch.no_grad()
    def update(
        self,
        prediction: np.ndarray | torch.Tensor,
        target: np.ndarray | torch.Tensor,
        cloudy: np.ndarray | torch.Tensor,
        mask: np.ndarray | torch.Tensor,
        covered: np.ndarray | torch.Tensor,
        owned: tuple[int, int] | None = None,
    ) -> None:
        """Add one strip of rows.

        Args:
            prediction: (C, h, W) predicted reflectance of the strip.
            target: (C, h, W) cloud-free target reflectance.
            cloudy: (C, h, W) cloudy input reflectance.
            mask: (h, W) cloud-or-shadow mask (non-zero = cloud or shadow).
            covered: (h, W) bool, the pixels scored (False where any input is nodata).
            owned: ``(start, stop)`` rows of the strip that this call counts; the other rows
                are halo for SSIM only (default: every row).
        """
        p = self._p
        pred, tgt, cld = (torch.as_tensor(np.asarray(x), dtype=torch.float64)
                          for x in (prediction, target, cloudy))  # fmt: skip
        if pred.shape != tgt.shape or pred.shape != cld.shape or pred.shape[0] != self.bands:
            raise ValueError(f"strips must be ({self.bands}, h, W) and equal, got "
                             f"{tuple(pred.shape)}, {tuple(tgt.shape)}, {tuple(cld.shape)}")  # fmt: skip
        cov = torch.as_tensor(np.asarray(covered)).bool()
        cloud = torch.as_tensor(np.asarray(mask)) != 0
        if cov.shape != pred.shape[1:] or cloud.shape != pred.shape[1:]:
            raise ValueError(f"mask and covered must be {tuple(pred.shape[1:])}")
        if p.clip is not None:
            tgt, cld = tgt.clamp(*p.clip), cld.clamp(*p.clip)
            if p.clip_prediction:
                pred = pred.clamp(*p.clip)
        h = pred.shape[1]
        r0, r1 = owned if owned is not None else (0, h)
        if not 0 <= r0 <= r1 <= h:
            raise ValueError(f"owned rows {owned} outside the strip of {h} rows")
        rows = torch.zeros(h, dtype=torch.bool)
        rows[r0:r1] = True
        counted = cov & rows[:, None]
        # each comparison once: prediction vs target (target, recon, bands) and vs cloudy input
        d_t, d_c = pred - tgt, pred - cld
        (a_t, v_t), (a_c, v_c) = (tuple(x[0] for x in spectral_angle(pred[None], other[None]))
                                  for other in (tgt, cld))  # fmt: skip
        self._target.add(d_t, a_t, v_t, counted)
        self._reprod.add(d_c, a_c, v_c, counted & ~cloud)
        self._recon.add(d_t, a_t, v_t, counted & cloud)
        self._cloud += int((counted & cloud).sum())
        if counted.any():
            d = d_t[:, counted]
            self._band_sq += (d * d).sum(1).numpy()
            t = tgt[:, counted]
            self._band_min = np.minimum(self._band_min, t.amin(1).numpy())
            self._band_max = np.maximum(self._band_max, t.amax(1).numpy())
        k = p.ssim_window
        if h < k or pred.shape[2] < k:
            return
        full = F.avg_pool2d(cov.to(torch.float64)[None, None], k, stride=1)[0, 0] >= 1.0 - 1e-12
        centre = torch.arange(full.shape[0]) + k // 2
        positions = full & ((centre >= r0) & (centre < r1))[:, None]
        n = int(positions.sum())
        if n:
            sums = ssim_sums(pred[None], tgt[None], p, positions.to(torch.float64)[None])
            self._ssim_sum += sums[0].numpy()
            self._ssim_positions += n

    def compute(self) -> dict[str, object]:
        """The scene's metrics.

        Returns:
            Every key of :data:`~dsen2cr.metrics.METRIC_KEYS` (float, NaN when undefined),
            ``band_nrmse`` (list of ``bands`` floats, NaN for a constant band),
            ``covered_pixels``, ``cloud_fraction`` (of the covered pixels) and
            ``ssim_positions``.
        """
        p, c = self._p, self.bands
        out: dict[str, float] = {}
        for name, region in (("target", self._target), ("reprod", self._reprod),
                             ("recon", self._recon)):  # fmt: skip
            out[f"{name}_mae"], out[f"{name}_rmse"], out[f"{name}_sam"] = region.values(c, p)
        rmse = torch.tensor([out["target_rmse"]], dtype=torch.float64)
        out["target_psnr"] = float(psnr_from_rmse(rmse, p)[0])
        out["target_ssim"] = (float(self._ssim_sum.sum() / (self._ssim_positions * c))
                              if self._ssim_positions else math.nan)  # fmt: skip
        n = self._target.pixels
        rng = self._band_max - self._band_min
        with np.errstate(invalid="ignore", divide="ignore"):
            nrmse = np.where(rng > 0, 100.0 * np.sqrt(self._band_sq / max(n, 1)) / rng, math.nan)
        result: dict[str, object] = {k: out[k] for k in METRIC_KEYS}
        result["band_nrmse"] = [float(v) for v in nrmse]
        result["covered_pixels"] = n
        result["cloud_fraction"] = self._cloud / n if n else math.nan
        result["ssim_positions"] = self._ssim_positions
        return result
