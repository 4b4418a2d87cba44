"""Where the tiles of a scene go: staging GeoTIFFs, Cloud-Optimized GeoTIFFs, previews, arrays.

:class:`SceneWriter` receives the :class:`~dsen2cr.scene.pipeline.TileResult` of every tile (in
the pipeline's writer thread) and writes the cores into tiled staging GeoTIFFs beside the final
outputs, one block per tile core, with fast temporary compression. :meth:`SceneWriter.to_cog`
then sets band descriptions and metadata and translates them into Cloud-Optimized GeoTIFFs
(overviews from :mod:`dsen2cr.scene.cog`); the caller renames those into place, so a failed or
interrupted run leaves no output file. The prediction is 13 bands of uint16 DN (prediction x
2000, rounded, nodata 0); the mask is int8 (1 cloud, -1 shadow, 0 clear, -128 nodata).
:class:`ArraySink` collects the same results in memory (``predict_array``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from dsen2cr.errors import DataError
from dsen2cr.figures import mask_composite, new_figure, rgb_composite, sar_composite, save_figure
from dsen2cr.io import atomic_output, bounded_gdal, staging_path
from dsen2cr.scaling import S2_BANDS, scaled_to_s2
from dsen2cr.scene.cog import temporary_compression, write_cog
from dsen2cr.scene.inputs import SceneInputs
from dsen2cr.scene.pipeline import TileComputer, TileResult, run_tiles

OUTPUT_NODATA = 0
"""Nodata value of the predicted uint16 raster (valid predictions are clipped to >= 1 DN)."""
MASK_NODATA = -128
"""Nodata value of the int8 cloud/shadow mask raster."""
MASK_DESCRIPTION = "cloud (1) / shadow (-1) / clear (0)"
MASK_VALUES = "1 cloud, -1 shadow, 0 clear, -128 nodata"
PREVIEW_SIZE = 1024
"""Longest side (pixels) of the arrays a preview is drawn from."""


def prediction_to_dn(pred: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scaled prediction -> uint16 DN: x 2000, rounded, clipped to [1, 65535]; nodata 0.

    Args:
        pred: (13, h, w) float prediction in the scaled domain.
        valid: (h, w) bool, False where the output is nodata.

    Returns:
        (13, h, w) uint16 DN.
    """
    dn = np.clip(np.rint(scaled_to_s2(pred.astype(np.float32))), 1, 65535).astype(np.uint16)
    dn[:, ~valid] = OUTPUT_NODATA
    return dn


def mask_with_nodata(result: TileResult) -> np.ndarray:
    """The int8 mask of a tile core with :data:`MASK_NODATA` where S2 is nodata."""
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
        """Count one core: ``ok`` valid output pixels, ``s2ok`` valid S2 pixels, the mask."""
        self.nodata += int(ok.size - ok.sum())
        self.s2_valid += int(s2ok.sum())
        if mask is not None:
            self.cloud += int(np.count_nonzero((mask == 1) & s2ok))
            self.shadow += int(np.count_nonzero((mask == -1) & s2ok))


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
        """Keep the decimated pixels of one core (``out`` in DN, ``mask`` with nodata)."""
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
        """Input RGB | SAR | mask | prediction RGB side by side, as a PNG (atomically)."""
        panels: list[tuple[str, np.ndarray]] = [("cloudy input (S2 RGB)", rgb_composite(self.s2))]
        if self.s1 is not None:
            panels.append(("SAR (S1: R=0, G=VH, B=VV)", sar_composite(self.s1)))
        if self.mask is not None:
            m = self.mask.astype(np.float32)
            pic = mask_composite(np.where(self.mask == MASK_NODATA, 0, m))
            pic[self.mask == MASK_NODATA] = (0.5, 0.0, 0.0)
            panels.append(("cloud (white) / shadow (blue) / nodata (red)", pic))
        out_rgb = rgb_composite(self.out)
        out_rgb[(self.out == 0).all(axis=0)] = 0.0
        panels.append(("DSen2-CR prediction (RGB)", out_rgb))
        h, w = self.s2.shape[1:]
        fig, axes = new_figure(1, len(panels))
        panel_w = 4.0
        fig.set_size_inches(panel_w * len(panels), panel_w * h / max(w, 1) + 0.7)
        for ax, (name, img) in zip(axes[0], panels, strict=True):
            ax.imshow(img, interpolation="antialiased")
            ax.set_title(name, fontsize=9)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        save_figure(fig, path)


def stage_block(tile: int) -> int | None:
    """A GeoTIFF block size that divides the core tile (so each block is written once)."""
    for b in (512, 256, 128, 64, 32, 16):
        if tile % b == 0:
            return b
    return None


def gtiff_profile(grid: Any, dtype: str, count: int, nodata: float, block: int | None) -> dict[str, Any]:
    """Profile of a tiled staging GeoTIFF on ``grid`` (``height``, ``width``, ``crs``,
    ``transform``)."""
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "dtype": dtype,
        "count": count,
        "width": grid.width,
        "height": grid.height,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": block or 256,
        "blockysize": block or 256,
        "BIGTIFF": "IF_SAFER",
    }
    if block:  # each block is written exactly once: compress cheaply
        profile.update(temporary_compression())
    if grid.crs is not None:
        profile["crs"] = grid.crs
        profile["transform"] = grid.transform
    return profile


class SceneWriter:
    """Staging GeoTIFFs of a scene's prediction and/or mask, turned into COGs at the end.

    Args:
        grid: the S2 grid (``height``, ``width``, ``crs``, ``transform``).
        prediction: the final prediction file (its staging file is named after it), or None.
        mask: the final mask file, or None.
        tile: the core tile size (the staging block divides it when it can).
        preview: keep decimated copies for :meth:`Preview.write`.
        with_sar: the preview shows SAR.
        with_mask: the tiles carry masks (for counts and the preview), even without ``mask``.
    """

    def __init__(
        self,
        grid: Any,
        *,
        prediction: Path | None,
        mask: Path | None,
        tile: int,
        preview: bool = False,
        with_sar: bool = False,
        with_mask: bool = False,
    ) -> None:
        self.grid = grid
        self.stage_prediction = staging_path(prediction, "stage") if prediction is not None else None
        self.stage_mask = staging_path(mask, "stage") if mask is not None else None
        self.block = stage_block(tile)
        self.counters = Counters()
        self.preview = Preview(grid.height, grid.width, with_sar, with_mask) if preview else None

    @contextlib.contextmanager
    def sink(self) -> Iterator[Callable[[TileResult], None]]:
        """Open the staging files; yields ``write(result)`` (called by the writer thread)."""
        with contextlib.ExitStack() as stack:
            dst = mdst = None
            if self.stage_prediction is not None:
                profile = gtiff_profile(self.grid, "uint16", 13, OUTPUT_NODATA, self.block)
                dst = stack.enter_context(rasterio.open(self.stage_prediction, "w", **profile))
            if self.stage_mask is not None:
                profile = gtiff_profile(self.grid, "int8", 1, MASK_NODATA, self.block)
                mdst = stack.enter_context(rasterio.open(self.stage_mask, "w", **profile))

            def write(r: TileResult) -> None:
                win = r.tile.rio_core()
                ok = r.ok
                dn = None
                if r.prediction is not None:
                    dn = prediction_to_dn(r.prediction, ok)
                    if dst is not None:
                        dst.write(dn, window=win)
                mm = mask_with_nodata(r) if r.mask is not None else None
                if mdst is not None and mm is not None:
                    mdst.write(mm[None], window=win)
                self.counters.add(ok, r.valid, mm)
                if self.preview is not None:
                    self.preview.add(r, dn, mm)

            yield write

    def to_cog(
        self,
        prediction: Path | None,
        mask: Path | None,
        *,
        compress: str,
        tags: dict[str, str],
        mask_tags: dict[str, str],
    ) -> None:
        """Describe the staging files and translate them into COGs at ``prediction``/``mask``."""
        if self.stage_prediction is not None and prediction is not None:
            with rasterio.open(self.stage_prediction, "r+") as dst:
                for i, b in enumerate(S2_BANDS, start=1):
                    dst.set_band_description(i, b)
                dst.update_tags(**tags)
            write_cog(self.stage_prediction, prediction, compress=compress, predictor=True,
                      overviews="average", nodata=OUTPUT_NODATA)  # fmt: skip
        if self.stage_mask is not None and mask is not None:
            with rasterio.open(self.stage_mask, "r+") as mdst:
                mdst.set_band_description(1, MASK_DESCRIPTION)
                mdst.update_tags(**mask_tags)
            write_cog(self.stage_mask, mask, compress=compress, overviews="mode",
                      nodata=MASK_NODATA)  # fmt: skip

    def remove_staging(self) -> None:
        """Delete the staging files (after :meth:`to_cog`, or after a failure)."""
        for p in (self.stage_prediction, self.stage_mask):
            if p is not None:
                p.unlink(missing_ok=True)


class ArraySink:
    """Collects a scene's results in memory: the prediction (scaled), its validity, the mask."""

    def __init__(self, height: int, width: int, with_mask: bool) -> None:
        self.prediction = np.zeros((13, height, width), np.float32)
        self.valid = np.zeros((height, width), bool)
        self.mask = np.full((height, width), MASK_NODATA, np.int8) if with_mask else None

    @contextlib.contextmanager
    def sink(self) -> Iterator[Callable[[TileResult], None]]:
        """Yields ``write(result)``."""

        def write(r: TileResult) -> None:
            rr, cc, hh, ww = r.tile.core
            ok = r.ok
            if r.prediction is not None:
                self.prediction[:, rr : rr + hh, cc : cc + ww] = np.where(ok[None], r.prediction, np.float32(0))
            self.valid[rr : rr + hh, cc : cc + ww] = ok
            if self.mask is not None and r.mask is not None:
                self.mask[rr : rr + hh, cc : cc + ww] = mask_with_nodata(r)

        yield write


def check_valid(counters: Counters, grid: Any, inputs: Any) -> None:
    """A result without a single valid pixel is an error (and its files are not kept).

    Raises:
        DataError: every S2 pixel is nodata, or no valid S2 pixel has valid S1 under it.
    """
    n = grid.height * grid.width
    if counters.s2_valid == 0:
        raise DataError(
            f"S2 image {grid.path} has no valid pixel (every pixel is nodata: all bands 0, the "
            "file's nodata value, or not finite); nothing to write"
        )
    if counters.nodata == n:
        s1 = getattr(getattr(inputs, "s1", None), "path", None)
        raise DataError(
            f"no valid S2 pixel of {grid.path} has valid S1 data from {s1} (S1 is nodata or NaN "
            "wherever the scenes overlap); nothing to write"
        )


def write_scene(
    grid: Any,
    inputs: SceneInputs,
    computer: TileComputer,
    *,
    out: Path | None,
    mask_out: Path | None,
    preview: Path | None,
    tile: int,
    batch: int,
    readers: int | None,
    compress: str,
    tags: dict[str, str],
    mask_tags: dict[str, str],
    title: str,
    progress: bool,
) -> tuple[dict[str, Any], Counters]:
    """Run a scene through the tiled pipeline into its output files (the one file path).

    The prediction (``out``), the mask (``mask_out``) and the ``preview`` PNG each appear only
    when complete; on any failure or interrupt none of them (and no staging file) is left.

    Args:
        grid: the S2 grid (``height``, ``width``, ``crs``, ``transform``).
        inputs: the scene's inputs.
        computer: the network and/or the mask.
        out: the prediction COG, or None.
        mask_out: the mask COG, or None.
        preview: the preview PNG, or None.
        tile: core tile size.
        batch: tiles per batch.
        readers: reader threads (None: the pipeline's default).
        compress: COG compression.
        tags: metadata of the prediction.
        mask_tags: metadata of the mask.
        title: the preview's title.
        progress: show a progress bar.

    Returns:
        ``(timing, counters)``: :func:`~dsen2cr.scene.pipeline.run_tiles`'s timing plus
        ``cog_seconds``, and the pixel counts.
    """
    writer = SceneWriter(grid, prediction=out, mask=mask_out, tile=tile,
                         preview=preview is not None, with_sar=getattr(inputs, "s1", None) is not None,
                         with_mask=computer.mask is not None)  # fmt: skip
    with contextlib.ExitStack() as stack:
        stack.enter_context(bounded_gdal())
        tmp_out = stack.enter_context(atomic_output(out)) if out is not None else None
        tmp_mask = stack.enter_context(atomic_output(mask_out)) if mask_out is not None else None
        try:
            timing = run_tiles(inputs, computer, writer.sink, tile=tile, batch=batch,
                               readers=readers, progress=progress, desc=title)  # fmt: skip
            check_valid(writer.counters, grid, inputs)
            t_cog = time.perf_counter()
            writer.to_cog(tmp_out, tmp_mask, compress=compress, tags=tags, mask_tags=mask_tags)
            timing["cog_seconds"] = time.perf_counter() - t_cog
        finally:
            writer.remove_staging()
    if preview is not None and writer.preview is not None:
        writer.preview.write(preview, title)
    return timing, writer.counters
