"""Where the tiles of a scene go: Cloud-Optimized GeoTIFFs, previews, arrays. Sinks only write;
:mod:`dsen2cr.scene.run` runs the scene.

:class:`SceneSink` receives the :class:`~dsen2cr.scene.pipeline.TileResult` of every tile (in
the pipeline's writer threads) and writes its core into streaming COG writers
(:mod:`dsen2cr.cog`), which compress blocks as they complete; the caller lays the files
out at the end and renames them into place, so a failed or interrupted run leaves no output
file. The prediction is 13 bands of uint16 DN (prediction x 2000, rounded, nodata 0); the mask
is int8 (1 cloud, -1 shadow, 0 clear, -128 nodata). :class:`ArraySink` collects the same results
in memory (``predict_array``); :class:`Preview` draws the PNG preview.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from dsen2cr.cog import CogProfile, CogWriter
from dsen2cr.errors import DataError
from dsen2cr.figures import (
    image_panel,
    mask_caption,
    mask_composite,
    new_figure,
    rgb_caption,
    rgb_composite,
    rgb_stretch,
    sar_caption,
    sar_composite,
    save_figure,
)
from dsen2cr.grid import Grid
from dsen2cr.scaling import S2_BANDS, scaled_to_dn
from dsen2cr.scene.pipeline import TileResult
from dsen2cr.scene.sentinel1 import S1Source
from dsen2cr.scene.sentinel2 import S2Scene
from dsen2cr.scene.stages import StageClock
from dsen2cr.validity import s2_valid

OUTPUT_NODATA = 0
"""Nodata value of the predicted uint16 raster (valid predictions are clipped to >= 1 DN)."""
MASK_NODATA = -128
"""Nodata value of the int8 cloud/shadow mask raster."""
MASK_DESCRIPTION = "cloud (1) / shadow (-1) / clear (0)"
MASK_VALUES = "1 cloud, -1 shadow, 0 clear, -128 nodata"
PROVENANCE = {"nodata": 0, "input": 1, "cloud": 2, "shadow": 3}
"""Values of the provenance band of a ``keep_clear`` prediction (its 14th band)."""
PROVENANCE_DESCRIPTION = ("provenance: 0 nodata, 1 input kept (clear), 2 reconstructed under "
                          "cloud, 3 reconstructed under shadow")  # fmt: skip
PREVIEW_SIZE = 1024
"""Longest side (pixels) of the arrays a preview is drawn from."""


def prediction_to_dn(pred: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scaled prediction -> the uint16 DN of the output files (:func:`~dsen2cr.scaling.scaled_to_dn`)
    with nodata 0 where not ``valid``.

    Args:
        pred: (13, h, w) float prediction in the scaled domain.
        valid: (h, w) bool, False where the output is nodata.

    Returns:
        (13, h, w) uint16 DN.
    """
    dn = scaled_to_dn(pred)
    dn *= valid  # OUTPUT_NODATA (0) where not valid
    return dn


def keep_clear(r: TileResult, dn: np.ndarray, ok: np.ndarray, margin: int) -> np.ndarray:
    """The ``keep_clear`` output of one tile core: the input's DN where the cloud/shadow mask,
    dilated by ``margin`` pixels, says clear, the prediction ``dn`` under clouds and shadows, and
    the provenance band (:data:`PROVENANCE`).

    Args:
        r: the tile's result (with its window mask).
        dn: (13, h, w) uint16 prediction of the core, 0 where it is nodata.
        ok: (h, w) bool, where ``dn`` holds a prediction (:attr:`TileResult.ok`).
        margin: pixels by which clouds and shadows grow before the input is kept (the mask
            misses the thin edges of clouds; 0 keeps the mask as it is).

    Returns:
        (14, h, w) uint16: 13 bands of DN (the input's own values where kept, bit for bit for
        integer inputs, including a band that is 0 there) and the provenance.
    """
    assert r.mask_window is not None
    cloud, shadow = r.mask_window == 1, r.mask_window == -1
    if margin:
        square = np.ones((2 * margin + 1, 2 * margin + 1), bool)
        cloud = ndimage.binary_dilation(cloud, square)
        shadow = ndimage.binary_dilation(shadow, square)
    cloud, shadow = r.tile.core_of(cloud), r.tile.core_of(shadow)
    out = np.empty((14, *dn.shape[1:]), np.uint16)
    prov = out[13]
    prov[:] = PROVENANCE["input"]
    prov[shadow] = PROVENANCE["shadow"]
    prov[cloud] = PROVENANCE["cloud"]
    prov[(prov != PROVENANCE["input"]) & ~ok] = PROVENANCE["nodata"]  # S1 missing under SAR
    prov[~r.valid] = PROVENANCE["nodata"]
    kept = prov == PROVENANCE["input"]
    out[:13] = dn
    if kept.any():  # the input, exactly for integer inputs
        source = r.s2 if r.s2.dtype == np.uint16 else np.clip(np.rint(r.s2), 0, 65535)
        np.copyto(out[:13], source, where=kept[None], casting="unsafe")
    return out


def mask_with_nodata(result: TileResult) -> np.ndarray:
    """The mask of a tile core as the mask file holds it.

    Args:
        result: the tile's result, with its mask.

    Returns:
        (ch, cw) int8: 1 cloud, -1 shadow, 0 clear, :data:`MASK_NODATA` where S2 is nodata.
    """
    assert result.mask is not None
    return np.where(result.valid, result.mask, np.int8(MASK_NODATA)).astype(np.int8)


@dataclass
class Counters:
    """Pixel counts of a scene: nodata of the output, valid S2 pixels, and cloud and shadow
    among them."""

    nodata: int = 0
    s2_valid: int = 0
    cloud: int = 0
    shadow: int = 0

    def add(self, ok: np.ndarray, s2ok: np.ndarray, mask: np.ndarray | None) -> None:
        """Count one core.

        Args:
            ok: (h, w) bool, valid output pixels.
            s2ok: (h, w) bool, valid S2 pixels.
            mask: (h, w) int8 mask (1 cloud, -1 shadow), or None; counted where ``s2ok``.
        """
        self.nodata += int(ok.size - ok.sum())
        self.s2_valid += int(s2ok.sum())
        if mask is not None:
            self.cloud += int(np.count_nonzero((mask == 1) & s2ok))
            self.shadow += int(np.count_nonzero((mask == -1) & s2ok))

    def merge(self, other: Counters) -> None:
        """Add another core's counts.

        Args:
            other: the counts to add.
        """
        self.nodata += other.nodata
        self.s2_valid += other.s2_valid
        self.cloud += other.cloud
        self.shadow += other.shadow


class Preview:
    """Decimated (every ``step``-th pixel) copies of input, output, SAR and mask for a preview."""

    def __init__(self, height: int, width: int, with_sar: bool, with_mask: bool) -> None:
        self.step = max(1, math.ceil(max(height, width) / PREVIEW_SIZE))
        h, w = math.ceil(height / self.step), math.ceil(width / self.step)
        # bands B1..B4 suffice for true-colour composites (B4, B3, B2)
        self.s2 = np.zeros((4, h, w), np.float32)
        self.out = np.zeros((4, h, w), np.float32)
        self.s1 = np.full((2, h, w), np.nan, np.float32) if with_sar else None
        self.mask = np.full((h, w), MASK_NODATA, np.int8) if with_mask else None

    def add(self, r: TileResult, out: np.ndarray | None, mask: np.ndarray | None) -> None:
        """Keep the decimated pixels of one core.

        Args:
            r: the tile's result (its S2 DN and S1 dB).
            out: (13, ch, cw) prediction in DN (0 nodata), or None.
            mask: (ch, cw) int8 mask with :data:`MASK_NODATA`, or None.
        """
        r0, c0, h, w = r.tile.core
        s = self.step
        ir, ic = (-r0) % s, (-c0) % s
        if ir >= h or ic >= w:
            return
        dr = slice((r0 + ir) // s, (r0 + ir) // s + len(range(ir, h, s)))
        dc = slice((c0 + ic) // s, (c0 + ic) // s + len(range(ic, w, s)))
        self.s2[:, dr, dc] = r.s2[:4, ir::s, ic::s]
        if out is not None:
            self.out[:, dr, dc] = out[:4, ir::s, ic::s]
        if self.s1 is not None and r.s1 is not None:
            self.s1[:, dr, dc] = r.s1[:, ir::s, ic::s]
        if self.mask is not None and mask is not None:
            self.mask[dr, dc] = mask[ir::s, ic::s]

    def write(self, path: Path, title: str) -> None:
        """Input RGB | SAR | mask | prediction RGB side by side, as a PNG (atomically), every
        panel with its stretch and units.

        Args:
            path: the PNG to write.
            title: the figure's title.
        """
        stretch = rgb_stretch(self.s2)  # one stretch for input and prediction: comparable
        panels: list[tuple[str, np.ndarray, str]] = [
            ("cloudy input (S2)", rgb_composite(self.s2, stretch), rgb_caption(stretch))]
        if self.s1 is not None:
            panels.append(("SAR (S1)", sar_composite(self.s1), sar_caption("\n")))
        if self.mask is not None:
            m = self.mask.astype(np.float32)
            pic = mask_composite(np.where(self.mask == MASK_NODATA, 0, m))
            pic[self.mask == MASK_NODATA] = (0.5, 0.0, 0.0)
            panels.append(("cloud / shadow mask", pic, mask_caption() + ", red nodata"))
        out_rgb = rgb_composite(self.out, stretch)
        out_rgb[~s2_valid(self.out)] = 0.0  # the prediction's nodata (0 in every band)
        panels.append(("DSen2-CR prediction", out_rgb, rgb_caption(stretch) + ", black nodata"))
        h, w = self.s2.shape[1:]
        fig, axes = new_figure(1, len(panels))
        panel_w = 4.0
        fig.set_size_inches(panel_w * len(panels), panel_w * h / max(w, 1) + 1.1)
        for ax, (name, img, caption) in zip(axes[0], panels, strict=True):
            image_panel(ax, img, name, caption, interpolation="antialiased")
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        save_figure(fig, path)


class SceneSink:
    """Where the tiles of a scene go when it is written to files (thread-safe: the pipeline's
    writer threads call it).

    Each tile's prediction becomes uint16 DN with nodata where the output is not valid, its mask
    int8 with nodata; both go to streaming COG writers (:class:`~dsen2cr.cog.CogWriter`),
    whose blocks are compressed in the calling thread as they complete. Pixel counts and the
    decimated preview copies are kept on the way.

    Args:
        grid: the S2 grid, the outputs' grid.
        prediction: the file to write the prediction COG to (a staging path), or None.
        mask: the file to write the mask COG to (a staging path), or None.
        finals: the final names of ``prediction`` and ``mask``, named by a failed write.
        compress: COG compression.
        tags: metadata of the prediction.
        mask_tags: metadata of the mask.
        preview: keep decimated copies for :meth:`Preview.write`.
        with_sar: the preview shows SAR.
        with_mask: the tiles carry masks (for counts and the preview), even without ``mask``.
        clock: counts ``convert``, ``encode``, ``overviews`` and ``layout`` seconds.
        keep_clear: keep the input where clear (:func:`keep_clear`), with this margin in
            pixels; the prediction then has a 14th band, the provenance. None: predict
            everywhere.
    """

    def __init__(
        self,
        grid: Grid,
        *,
        prediction: Path | None,
        mask: Path | None,
        finals: tuple[Path | None, Path | None] = (None, None),
        compress: str,
        tags: dict[str, str],
        mask_tags: dict[str, str],
        preview: bool = False,
        with_sar: bool = False,
        with_mask: bool = False,
        clock: StageClock | None = None,
        keep_clear: int | None = None,
    ) -> None:
        self.grid = grid
        self.keep_clear = keep_clear
        self.clock = clock or StageClock()
        self.counters = Counters()
        self._lock = threading.Lock()
        self.preview = Preview(grid.height, grid.width, with_sar, with_mask) if preview else None
        self.cogs: list[CogWriter] = []
        self.prediction = self.mask = None
        if prediction is not None:
            extra = keep_clear is not None  # the provenance band, reduced by its mode
            self.prediction = CogWriter(prediction, grid.height, grid.width, CogProfile(
                count=14 if extra else 13, dtype="uint16", nodata=OUTPUT_NODATA,
                compress=compress, predictor=True, overviews="average", tags=tags,
                descriptions=(*S2_BANDS, *([PROVENANCE_DESCRIPTION] if extra else [])),
                mode_bands=(13,) if extra else (), mode_priority=(2, 3, 1), crs=grid.crs,
                transform=grid.transform), final=finals[0])  # fmt: skip
            self.cogs.append(self.prediction)
        if mask is not None:
            self.mask = CogWriter(mask, grid.height, grid.width, CogProfile(
                count=1, dtype="int8", nodata=MASK_NODATA, compress=compress, overviews="mode",
                tags=mask_tags, descriptions=(MASK_DESCRIPTION,), crs=grid.crs,
                transform=grid.transform), final=finals[1])  # fmt: skip
            self.cogs.append(self.mask)

    def __call__(self, r: TileResult) -> None:
        """Write one tile's core (see the class docs)."""
        t0 = time.perf_counter()
        ok = r.ok
        dn = None
        if r.prediction is not None or r.dn is not None:
            dn = r.prediction_dn()
            if not ok.all():  # nodata is 0: multiplying is what a boolean index costs 10x
                dn *= ok  # a fresh array, or the batch's own host copy
        mm = mask_with_nodata(r) if r.mask is not None else None
        written = dn
        if self.keep_clear is not None and dn is not None:
            written = keep_clear(r, dn, ok, self.keep_clear)
            dn = written[:13]  # what the preview shows
        counts = Counters()
        counts.add(ok, r.valid, mm)
        with self._lock:
            self.counters.merge(counts)
        if self.preview is not None:
            self.preview.add(r, dn, mm)  # disjoint pixels per tile: no lock
        self.clock.add("convert", time.perf_counter() - t0)
        row, col = r.tile.core[:2]
        if self.prediction is not None and written is not None:
            self.prediction.write(written, row, col)
        if self.mask is not None and mm is not None:
            self.mask.write(mm[None], row, col)

    def close(self) -> None:
        """Lay out the COG files from their compressed blocks."""
        for cog in self.cogs:
            cog.close()
        self._count_cog_seconds()

    def abort(self) -> None:
        """Remove the COG files and their staging files (after a failure)."""
        for cog in self.cogs:
            cog.abort()
        self._count_cog_seconds()

    def _count_cog_seconds(self) -> None:
        for cog in self.cogs:
            for stage, seconds in cog.seconds.items():
                self.clock.add(stage, seconds)
            cog.seconds = dict.fromkeys(cog.seconds, 0.0)


class ArraySink:
    """Collects a scene's results in memory: the prediction (scaled), its validity, the mask
    (thread-safe: every tile writes its own pixels)."""

    def __init__(self, height: int, width: int, with_mask: bool) -> None:
        self.prediction = np.zeros((13, height, width), np.float32)
        self.valid = np.zeros((height, width), bool)
        self.mask = np.full((height, width), MASK_NODATA, np.int8) if with_mask else None

    def __call__(self, r: TileResult) -> None:
        """Keep one tile's core."""
        rr, cc, hh, ww = r.tile.core
        ok = r.ok
        if r.prediction is not None:
            self.prediction[:, rr : rr + hh, cc : cc + ww] = np.where(ok[None], r.prediction, np.float32(0))
        self.valid[rr : rr + hh, cc : cc + ww] = ok
        if self.mask is not None and r.mask is not None:
            self.mask[rr : rr + hh, cc : cc + ww] = mask_with_nodata(r)


def check_valid(counters: Counters, scene: S2Scene, s1: S1Source | None) -> None:
    """A result without a single valid pixel is an error (and its files are not kept).

    Args:
        counters: the pixel counts of the whole scene.
        scene: the S2 input.
        s1: the S1 input on its grid, or None.

    Raises:
        DataError: every S2 pixel is nodata, or no valid S2 pixel has valid S1 under it.
    """
    n = scene.height * scene.width
    if counters.s2_valid == 0:
        raise DataError(
            f"S2 image {scene.path} has no valid pixel (every pixel is nodata: all bands 0, the "
            "file's nodata value, or not finite); nothing to write"
        )
    if counters.nodata == n:
        s1_path = s1.path if s1 is not None else None
        raise DataError(
            f"no valid S2 pixel of {scene.path} has valid S1 data from {s1_path} (S1 is nodata or "
            "NaN wherever the scenes overlap); nothing to write"
        )
