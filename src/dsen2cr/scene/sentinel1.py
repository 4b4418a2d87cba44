"""Reading Sentinel-1 VV/VH window by window on a Sentinel-2 scene's 10 m grid.

:class:`S1Source` (made by :func:`open_s1`): a 2-band VV, VH GeoTIFF of sigma0 in dB (or linear
power with ``linear=True``: converted with 10 log10, non-positive values become nodata), in any CRS
and resolution. It is reprojected onto the S2 grid with bilinear resampling through a GDAL
``WarpedVRT``, window by window. The coordinate transformation is evaluated exactly
(``tolerance=1e-6`` pixel instead of GDAL's default 0.125 pixel linear approximation, which
changes values by up to about 1 dB on speckled SAR and makes them depend on the window). Pixels
the S1 footprint does not cover are NaN. As for Sentinel-2, each thread opens its own reader.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from dsen2cr.errors import DataError, Text
from dsen2cr.grid import Grid
from dsen2cr.io import check_band_count, check_readable, gdal_reason, no_georef_warning, open_raster
from dsen2cr.scaling import S1_BANDS
from dsen2cr.scene.sentinel2 import S2Scene, sample_windows

WARP_TOLERANCE = 1e-6
"""Maximum error (source pixels) of GDAL's approximate transformer used for S1 reprojection."""


@dataclass(frozen=True)
class S1Source:
    """A Sentinel-1 VV/VH raster to be read on a Sentinel-2 grid.

    Create it with :func:`open_s1`, which checks bands and footprint overlap.

    Attributes:
        path: the S1 GeoTIFF.
        linear: values are linear power (converted to dB), not dB.
        aligned: the file is already on the S2 grid (same CRS, transform and size, or both
            without georeferencing and of the same size): windows are read directly.
        grid: the destination grid (the S2 scene's 10 m grid).
        src_nodata: nodata value of the source used by the warper (None: the file's own).
        coverage: fraction of the S2 grid's bounding box covered by the S1 footprint's bounding
            box (1.0 for aligned inputs).
    """

    path: Path
    linear: bool
    aligned: bool
    grid: Grid
    src_nodata: float | None = None
    coverage: float = 1.0

    def open(self, threads: int = 1) -> S1Reader:
        """A reader with its own GDAL handles (one per thread).

        Args:
            threads: GDAL warper threads.
        """
        return S1Reader(self, threads)


class S1Reader:
    """Reads S1 windows on the S2 grid (use as a context manager).

    Args:
        source: the S1 source.
        threads: threads of GDAL's warper (each warps part of a window; the values do not
            depend on it).
    """

    def __init__(self, source: S1Source, threads: int = 1) -> None:
        self.source = source
        with no_georef_warning():
            self._src = rasterio.open(source.path)
        self._vrt: WarpedVRT | None = None
        if not source.aligned:
            kw: dict[str, float] = {}
            if source.src_nodata is not None:
                kw["src_nodata"] = source.src_nodata
            grid = source.grid
            try:
                self._vrt = WarpedVRT(
                    self._src,
                    crs=grid.crs,
                    transform=grid.transform,
                    width=grid.width,
                    height=grid.height,
                    resampling=Resampling.bilinear,
                    nodata=float("nan"),
                    dtype="float32",
                    tolerance=WARP_TOLERANCE,
                    NUM_THREADS=str(max(1, threads)),
                    **kw,
                )
            except Exception as exc:
                self._src.close()
                raise DataError(f"cannot reproject S1 image {source.path}: {exc}") from None

    def __enter__(self) -> S1Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the GDAL handles."""
        if self._vrt is not None:
            self._vrt.close()
            self._vrt = None
        self._src.close()

    def read(self, window: Window) -> np.ndarray:
        """One window of the S2 grid.

        Args:
            window: integer offsets and size on the S2 grid.

        Returns:
            float32 (2, h, w) backscatter in dB (VV, VH); NaN where the S1 footprint does not
            cover the pixel or the source is nodata.

        Raises:
            DataError: the data does not decode (corrupt or truncated file).
        """
        try:
            if self._vrt is not None:
                data = self._vrt.read(window=window).astype(np.float32, copy=False)
            else:
                data = self._src.read(window=window).astype(np.float32)
                nd = self._src.nodata
                if nd is not None and not np.isnan(nd):
                    data[data == nd] = np.nan
        except RasterioError as exc:
            raise DataError(
                f"cannot read S1 image {self.source.path}: corrupt or truncated ({gdal_reason(exc)})"
            ) from None
        if self.source.linear:
            with np.errstate(divide="ignore", invalid="ignore"):
                data = np.where(data > 0, 10.0 * np.log10(data), np.nan).astype(np.float32)
        return data


def implausible_s1(source: S1Source) -> list[Text]:
    """What looks wrong with the units of an S1 file, from a sample of it.

    Args:
        source: the S1 input.

    Returns:
        One sentence per finding: values that look like linear power given as dB (most values
        > 0 and small), or dB given as linear power (negative values).
    """
    with no_georef_warning(), rasterio.open(source.path) as ds:
        try:
            parts = [ds.read(window=w).astype(np.float64).reshape(ds.count, -1)
                     for w in sample_windows(ds.height, ds.width)]  # fmt: skip
        except RasterioError:
            return []
        nodata = ds.nodata
    values = np.concatenate(parts, axis=1)
    values = values[np.isfinite(values)]
    if nodata is not None and np.isfinite(nodata):
        values = values[values != nodata]
    if not values.size:
        return []
    if not source.linear and np.median(values) > 0 and values.max() <= 10:
        return [Text(f"S1 image {source.path}: values look like linear power (median "
                     f"{np.median(values):.3g} > 0), not dB; linear input needs {{s1_linear}}",
                     s1_linear=True)]  # fmt: skip
    if source.linear and values.min() < 0:
        return [Text(f"S1 image {source.path} was given as linear power ({{s1_linear}}) but has "
                     f"negative values (down to {values.min():.3g}): it looks like dB",
                     s1_linear=True)]  # fmt: skip
    return []


def open_s1(
    path: str | os.PathLike[str],
    scene: S2Scene,
    linear: bool = False,
) -> S1Source:
    """Check a Sentinel-1 input and prepare reading it on a Sentinel-2 scene's grid.

    Args:
        path: 2-band GeoTIFF, VV and VH, sigma0 in dB (or linear power with ``linear=True``).
        scene: the S2 scene whose grid the S1 is reprojected onto.
        linear: the file holds linear backscatter; it is converted with 10 log10 after bilinear
            resampling (in the power domain), non-positive values become nodata.

    Returns:
        The :class:`S1Source`.

    Raises:
        DataError: missing/corrupt file, wrong band count, no georeferencing where it is
            needed, or no overlap between the S1 and S2 footprints.
    """
    p = Path(path)
    grid = scene.grid
    with open_raster(p, "S1 image") as src:
        check_band_count(src.count, len(S1_BANDS), p, "S1 image")
        check_readable(src, p, "S1 image")
        same_size = (src.width, src.height) == (grid.width, grid.height)
        if grid.crs is None or src.crs is None:
            if grid.crs is None and src.crs is None and same_size:
                return S1Source(p, linear, True, grid)
            raise DataError(
                f"S1 image {p} cannot be placed on the S2 grid of {scene.path}: "
                + ("the S2 image" if grid.crs is None else "the S1 image")
                + " has no coordinate reference system (without georeferencing both must have "
                "the same size)"
            )
        if Grid.of(src).same_as(grid):
            return S1Source(p, linear, True, grid)
        coverage = _coverage(src, p, scene)
        src_nodata = src.nodata
        if linear and src_nodata is None:
            src_nodata = 0.0
        return S1Source(p, linear, False, grid, src_nodata=src_nodata, coverage=coverage)


def _bounding_box(grid: Grid) -> tuple[float, float, float, float]:
    """``(xmin, ymin, xmax, ymax)`` of a grid's four corners, in its CRS units."""
    h, w = grid.height, grid.width
    t = grid.transform
    xs = [t.c, t.c + t.a * w, t.c + t.b * h, t.c + t.a * w + t.b * h]
    ys = [t.f, t.f + t.d * w, t.f + t.e * h, t.f + t.d * w + t.e * h]
    return min(xs), min(ys), max(xs), max(ys)


def _coverage(src: DatasetReader, p: Path, scene: S2Scene) -> float:
    """Fraction of the S2 grid's bounding box that the S1 footprint's bounding box covers.

    Raises:
        DataError: the footprint cannot be transformed into the S2 CRS, or does not overlap.
    """
    grid = scene.grid
    assert src.crs is not None and grid.crs is not None
    s2_box = _bounding_box(grid)
    try:
        s1_box = transform_bounds(src.crs, grid.crs, *src.bounds, densify_pts=21)
    except Exception as exc:
        raise DataError(f"cannot transform the footprint of S1 image {p}: {exc}") from None
    ix = min(s2_box[2], s1_box[2]) - max(s2_box[0], s1_box[0])
    iy = min(s2_box[3], s1_box[3]) - max(s2_box[1], s1_box[1])
    if not (ix > 0 and iy > 0 and all(math.isfinite(v) for v in s1_box)):
        raise DataError(
            f"S1 image {p} does not overlap the S2 scene {scene.path} "
            f"(S1 footprint {tuple(round(v, 3) for v in s1_box)} vs S2 "
            f"{tuple(round(v, 3) for v in s2_box)} in {grid.crs})"
        )
    area = (s2_box[2] - s2_box[0]) * (s2_box[3] - s2_box[1])
    return float(min(1.0, ix * iy / area)) if area > 0 else 0.0
