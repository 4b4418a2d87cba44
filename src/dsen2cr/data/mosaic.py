"""Large scenes from SEN12MS-CR patches (paper Section 4.4): one mosaic per (season, ROI).

The patches of one ROI lie on a 128-pixel grid with 50 % overlap and come from one acquisition,
so an ROI can be put back together into the scene it was cut from. :func:`mosaic_patches` places
patches **by their georeferencing** (never by patch number) on their common CRS and pixel grid:

* every patch must have a CRS and a north-up transform with the same pixel size, and its origin
  must fall on the common grid (a whole number of pixels from the others); anything else is a
  :class:`~dsen2cr.errors.DataError` naming the file;
* a patch covers the pixels where it holds data (:mod:`dsen2cr.validity`: for integer patches,
  Sentinel-2, :func:`~dsen2cr.validity.s2_valid`; for float patches, Sentinel-1,
  :func:`~dsen2cr.validity.s1_valid`); pixels no patch covers are nodata: 0 for Sentinel-2
  (uint16 DN, all bands), NaN for Sentinel-1 (float32 dB, all bands);
* where overlapping patches disagree, the first patch in the order given wins (for
  :func:`mosaic_split`, the order of the patch numbers) and the disagreement is reported: how
  many pixels, between which patches;
* the scene is written in strips of 256 rows into a Cloud-Optimized GeoTIFF
  (:class:`dsen2cr.cog.CogWriter`: each block compressed once, overviews from the blocks),
  reading from each patch only the rows in the strip, so memory is bounded by one row of
  patches, not by the scene.

:func:`mosaic_split` (``dsen2cr mosaic``) writes ``<season folder>_<roi>_s2_cloudy.tif``,
``..._s2.tif`` and ``..._s1.tif`` for every ROI of a split (named by :func:`mosaic_name`), all
three on the same grid.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import RasterioError
from rasterio.windows import Window
from tqdm import tqdm

from dsen2cr.cog import CogProfile, CogWriter
from dsen2cr.data.layout import MODALITIES, SEASONS, Triplet
from dsen2cr.data.splits import select_triplets
from dsen2cr.errors import DataError, DSen2CRError
from dsen2cr.grid import Grid
from dsen2cr.io import atomic_output, bounded_gdal, gdal_reason, guard_outputs, open_raster
from dsen2cr.validity import s1_valid, s2_valid

log = logging.getLogger(__name__)

__all__ = [
    "MOSAIC_SUFFIX",
    "Disagreement",
    "MosaicResult",
    "PatchLayout",
    "mosaic_name",
    "mosaic_patches",
    "mosaic_split",
    "plan_grid",
    "plan_layout",
]

MOSAIC_SUFFIX = {"s2_cloudy": "_s2_cloudy.tif", "s2": "_s2.tif", "s1": "_s1.tif"}
"""File-name ending of each modality's mosaic, after the scene's :func:`mosaic_name`."""
GRID_TOLERANCE = 1e-3
"""How far (in pixels) a patch origin may be from the common grid."""


def mosaic_name(season: str, roi: int) -> str:
    """The name of one ROI's mosaics (the scene it was cut from).

    Args:
        season: ``spring``, ``summer``, ``fall`` or ``winter`` (or a season folder's name).
        roi: the ROI number.

    Returns:
        The season folder and the ROI, e.g. ``ROIs1970_fall_136`` for ``("fall", 136)``; the
        mosaic files add :data:`MOSAIC_SUFFIX`.
    """
    return f"{SEASONS.get(season, season)}_{roi}"


@dataclass(frozen=True)
class PatchLayout:
    """Where each of a set of patches lies on a scene grid.

    Attributes:
        grid: the scene grid (the common CRS, a north-up transform, the scene size in pixels).
        offsets: ``(row, col)`` of each patch's top-left pixel on the scene, in input order.
        sizes: ``(rows, cols)`` of each patch, pixels.
    """

    grid: Grid
    offsets: tuple[tuple[int, int], ...]
    sizes: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Disagreement:
    """Pixels where two overlapping patches hold different values (any band)."""

    first: str
    """The patch whose value was kept (file name)."""
    second: str
    """The patch that disagreed (file name)."""
    pixels: int


@dataclass
class MosaicResult:
    """What :func:`mosaic_patches` wrote."""

    out: Path
    width: int
    height: int
    patches: int
    covered_fraction: float
    """Fraction of the scene's pixels that some patch covers."""
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def disagreeing_pixels(self) -> int:
        """Pixels where overlapping patches disagreed (summed over patch pairs)."""
        return sum(d.pixels for d in self.disagreements)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "out": str(self.out),
            "width": self.width,
            "height": self.height,
            "patches": self.patches,
            "covered_fraction": self.covered_fraction,
            "disagreeing_pixels": self.disagreeing_pixels,
            "disagreements": [
                {"first": d.first, "second": d.second, "pixels": d.pixels}
                for d in self.disagreements
            ],
        }


def _patch_grid(path: Path) -> Grid:
    """The grid of a patch, checked to be georeferenced and north-up."""
    with open_raster(path, "patch") as src:
        crs, tr = src.crs, src.transform
        if crs is None or tr == Affine.identity():
            raise DataError(
                f"patch {path} has no georeferencing (CRS and transform); mosaics place "
                "patches by their georeferencing"
            )
        if tr.b != 0 or tr.d != 0 or tr.a <= 0 or tr.e >= 0:
            raise DataError(f"patch {path} is not north-up (transform {tuple(tr)[:6]})")
        return Grid.of(src)


def _pixel_offset(tr: Affine, ref: Affine) -> tuple[float, float]:
    """(columns, rows) from the origin of ``ref`` to the origin of ``tr``, in ``ref``'s pixels."""
    return (tr.c - ref.c) / ref.a, (ref.f - tr.f) / -ref.e


def _whole(fx: float, fy: float) -> bool:
    """Whether an offset is a whole number of pixels (within :data:`GRID_TOLERANCE`)."""
    return abs(fx - round(fx)) <= GRID_TOLERANCE and abs(fy - round(fy)) <= GRID_TOLERANCE


def plan_grid(paths: Sequence[str | os.PathLike[str]]) -> Grid:
    """The common grid of georeferenced patches (see the module docs).

    Args:
        paths: patch files (GeoTIFFs with CRS and north-up transform).

    Returns:
        The grid covering the union of the patches (their CRS and pixel size).

    Raises:
        DataError: no patch, a patch without georeferencing, different CRSs or pixel sizes, or
            an origin off the common grid.
    """
    return plan_layout(paths).grid


def plan_layout(paths: Sequence[str | os.PathLike[str]]) -> PatchLayout:
    """The common grid of georeferenced patches and where each lies on it.

    Args:
        paths: patch files (GeoTIFFs with CRS and north-up transform).

    Returns:
        The :class:`PatchLayout` on the grid of the union of the patches (:func:`plan_grid`).

    Raises:
        DataError: as :func:`plan_grid`.
    """
    if not paths:
        raise DataError("no patch to mosaic")
    infos = [(Path(p), _patch_grid(Path(p))) for p in paths]
    p0, crs0, tr0 = infos[0][0], infos[0][1].crs, infos[0][1].transform
    res_x, res_y = tr0.a, -tr0.e
    xs, ys = [], []
    for p, g in infos:
        crs, tr = g.crs, g.transform
        if crs != crs0:
            raise DataError(f"patch {p} is in {crs}, {p0} in {crs0}: not one scene")
        if not (math.isclose(tr.a, res_x, rel_tol=1e-9) and math.isclose(-tr.e, res_y, rel_tol=1e-9)):
            raise DataError(
                f"patch {p} has {tr.a:g} x {-tr.e:g} pixels, {p0} {res_x:g} x {res_y:g}: "
                "not one grid"
            )
        fx, fy = _pixel_offset(tr, tr0)
        if not _whole(fx, fy):
            raise DataError(
                f"patch {p} is {fx:.3f}, {fy:.3f} pixels from {p0}: not on a common grid"
            )
        xs.append(round(fx))
        ys.append(round(fy))
    col0, row0 = min(xs), min(ys)
    offsets = tuple((y - row0, x - col0) for x, y in zip(xs, ys, strict=True))
    sizes = tuple(g.shape for _p, g in infos)
    height = max(r + h for (r, _), (h, _) in zip(offsets, sizes, strict=True))
    width = max(c + w for (_, c), (_, w) in zip(offsets, sizes, strict=True))
    transform = tr0 @ Affine.translation(col0 - xs[0], row0 - ys[0])
    return PatchLayout(Grid(crs0, transform, height, width), offsets, sizes)


def _covered(block: np.ndarray, nodata: float | None) -> np.ndarray:
    """(h, w) bool: the pixels a (bands, h, w) patch block covers, where it holds data
    (:mod:`dsen2cr.validity`: float patches, Sentinel-1 in dB with NaN nodata, by
    :func:`~dsen2cr.validity.s1_valid`; integer patches, Sentinel-2 DN with 0 nodata, by
    :func:`~dsen2cr.validity.s2_valid` with the patch's declared ``nodata``)."""
    if np.issubdtype(block.dtype, np.floating):
        return s1_valid(block)
    return s2_valid(block, nodata)


def _differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(h, w) bool: some band differs (NaN equals NaN)."""
    differs: np.ndarray
    if np.issubdtype(a.dtype, np.floating):
        differs = ((a != b) & ~(np.isnan(a) & np.isnan(b))).any(0)
    else:
        differs = (a != b).any(0)
    return differs


def mosaic_patches(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    grid: Grid | None = None,
    overwrite: bool = False,
    compress: str = "DEFLATE",
    tags: dict[str, str] | None = None,
) -> MosaicResult:
    """Write the mosaic of georeferenced patches of one modality as one Cloud-Optimized GeoTIFF.

    Args:
        paths: the patches (same band count and dtype), in the order that decides which patch
            wins where they disagree (the first).
        out: output COG (512 x 512 blocks, ``compress``, overviews, nodata 0 for integer data
            and NaN for float data; band descriptions of the first patch).
        grid: the scene grid (default :func:`plan_grid` of ``paths``); pass one grid to put
            several modalities on the same pixels. Every patch must lie inside it, on its
            CRS and pixel size.
        overwrite: replace ``out`` if it exists.
        compress: compression (``DEFLATE``, ``ZSTD``, ``LZW``, ``NONE``).
        tags: extra metadata tags.

    Returns:
        The :class:`MosaicResult` (size, covered fraction, disagreements).

    Raises:
        DataError: unreadable or non-georeferenced patches, no common grid, different band
            counts or dtypes.
        OutputExistsError: ``out`` exists and ``overwrite`` is False.
        WriteError: the output cannot be written (nothing is left under its name).
    """
    files = [Path(p) for p in paths]
    target = guard_outputs({"out": out}, files, overwrite=overwrite)["out"]
    layout = _scene_layout(files, grid, target)
    with bounded_gdal(), atomic_output(target) as tmp:
        return _write_mosaic(files, layout, tmp, target, compress, tags or {})


def _scene_layout(files: list[Path], grid: Grid | None, target: Path) -> PatchLayout:
    """Where ``files`` lie on ``grid`` (checked), or on their own grid."""
    if grid is None:
        return plan_layout(files)
    own = plan_layout(files)
    og = own.grid
    if og.crs != grid.crs or (og.transform.a, og.transform.e) != (grid.transform.a,
                                                                   grid.transform.e):
        raise DataError(f"the patches of {target.name} are not on the given scene grid "
                        f"({og.crs}, {og.transform.a:g} m vs {grid.crs}, "
                        f"{grid.transform.a:g} m)")  # fmt: skip
    fx, fy = _pixel_offset(og.transform, grid.transform)
    if not _whole(fx, fy):
        raise DataError(f"the patches of {target.name} are off the given scene grid by "
                        f"{fx:.3f}, {fy:.3f} pixels")  # fmt: skip
    offsets = tuple((r + round(fy), c + round(fx)) for r, c in own.offsets)
    layout = PatchLayout(grid, offsets, own.sizes)
    for f, (r, c), (h, w) in zip(files, layout.offsets, layout.sizes, strict=True):
        if r < 0 or c < 0 or r + h > grid.height or c + w > grid.width:
            raise DataError(f"patch {f} lies outside the scene grid")
    return layout


def _write_mosaic(files: list[Path], layout: PatchLayout, tmp: Path, target: Path, compress: str,
                  tags: dict[str, str]) -> MosaicResult:  # fmt: skip
    """Place the patches strip by strip into a COG at ``tmp`` (the staging file of ``target``)."""
    g = layout.grid
    with open_raster(files[0], "patch") as src:
        count, dtype = src.count, src.dtypes[0]
        descriptions = tuple(d or "" for d in src.descriptions) if any(src.descriptions) else ()
        if src.tags().get("DSEN2CR_SYNTHETIC") == "1":  # a mosaic of synthetic patches is too
            tags = {**tags, "DSEN2CR_SYNTHETIC": "1"}
    floating = np.issubdtype(np.dtype(dtype), np.floating)
    nodata = math.nan if floating else 0
    profile = CogProfile(count=count, dtype=dtype, nodata=nodata, compress=compress.upper(),
                         predictor=True, crs=g.crs, transform=g.transform, descriptions=descriptions,
                         tags={"DSEN2CR_MOSAIC_PATCHES": str(len(files)), **tags})  # fmt: skip
    # strips one COG block high: each block is whole when written, compressed once, never buffered
    edges = [*range(0, g.height, profile.block), g.height]
    pairs: dict[tuple[int, int], int] = {}
    covered = 0
    with CogWriter(tmp, g.height, g.width, profile, final=target) as cog:
        for r0, r1 in itertools.pairwise(edges):
            strip, owner = _strip(files, layout, r0, r1, count, dtype, nodata, pairs)
            covered += int((owner >= 0).sum())
            cog.write(strip, r0, 0)
        result = MosaicResult(
            out=target, width=g.width, height=g.height, patches=len(files),
            covered_fraction=covered / (g.width * g.height),
            disagreements=[Disagreement(files[a].name, files[b].name, n)
                           for (a, b), n in sorted(pairs.items())],
        )  # fmt: skip
        cog.add_tags(DSEN2CR_MOSAIC=json.dumps({k: v for k, v in result.to_dict().items() if k != "out"}))
    if result.disagreements:
        worst = max(result.disagreements, key=lambda d: d.pixels)
        log.warning(
            "warning: %s: %d pixel(s) where overlapping patches disagree, in %d patch pair(s), "
            "e.g. %s vs %s (%d px); the first patch's values were kept",
            target.name, result.disagreeing_pixels, len(result.disagreements),
            worst.first, worst.second, worst.pixels,
        )  # fmt: skip
    return result


def _strip(files: list[Path], layout: PatchLayout, r0: int, r1: int, count: int, dtype: str,
           nodata: float, pairs: dict[tuple[int, int], int]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Rows ``[r0, r1)`` of the mosaic and, per pixel, the patch that gave it (-1: none);
    disagreements are counted into ``pairs``."""
    width = layout.grid.width
    strip = np.full((count, r1 - r0, width), nodata, dtype=dtype)
    owner = np.full((r1 - r0, width), -1, dtype=np.int32)
    for i, (f, (pr, pc), (ph, pw)) in enumerate(zip(files, layout.offsets, layout.sizes, strict=True)):
        if pr >= r1 or pr + ph <= r0:
            continue
        with open_raster(f, "patch") as src:
            if src.count != count or src.dtypes[0] != dtype:
                raise DataError(f"patch {f} has {src.count} {src.dtypes[0]} band(s), "
                                f"{files[0]} {count} {dtype}")  # fmt: skip
            top, bottom = max(r0, pr), min(r1, pr + ph)  # the patch rows in the strip
            declared = src.nodata
            try:
                block = src.read(window=Window(0, top - pr, pw, bottom - top))
            except RasterioError as exc:
                raise DataError(f"cannot read patch {f}: corrupt or truncated ({gdal_reason(exc)})") from None
        here = (slice(top - r0, bottom - r0), slice(pc, pc + pw))
        ok = _covered(block, declared)
        taken = owner[here] >= 0
        fill = ok & ~taken
        view = strip[(slice(None), *here)]
        view[:, fill] = block[:, fill]
        owner[here][fill] = i
        clash = ok & taken & _differs(view, block)
        if clash.any():
            firsts, counts = np.unique(owner[here][clash], return_counts=True)
            for j, n in zip(firsts.tolist(), counts.tolist(), strict=True):
                pairs[(j, i)] = pairs.get((j, i), 0) + n
    return strip, owner


def _sources(paths: dict[str, list[Path]]) -> str:
    """What a scene's mosaics are made from: a digest of its patches' names and sizes."""
    h = hashlib.sha256()
    for m in sorted(paths):
        for p in paths[m]:
            h.update(f"{m}:{p.name}:{p.stat().st_size};".encode() if p.exists() else f"{m}:{p.name};".encode())
    return h.hexdigest()[:32]


def _mosaic_scene(folder: Path, name: str, paths: dict[str, list[Path]]) -> dict[str, MosaicResult]:
    """The three mosaics of one scene, renamed into place together: a scene that fails leaves
    none of them (and the scenes before it stay, for a rerun to keep)."""
    grid = plan_grid([p for m in MODALITIES for p in paths[m]])
    tags = {"DSEN2CR_SCENE": name, "DSEN2CR_MOSAIC_SOURCES": _sources(paths)}
    with bounded_gdal(), contextlib.ExitStack() as stack:
        tmp = {m: stack.enter_context(atomic_output(folder / f"{name}{MOSAIC_SUFFIX[m]}"))
               for m in MODALITIES}  # fmt: skip
        return {
            m: _write_mosaic(paths[m], _scene_layout(paths[m], grid, folder / name), tmp[m],
                             folder / f"{name}{MOSAIC_SUFFIX[m]}", "DEFLATE",
                             {**tags, "DSEN2CR_MODALITY": m})
            for m in ("s2_cloudy", "s2", "s1")
        }  # fmt: skip


def _finished(folder: Path, name: str, paths: dict[str, list[Path]]) -> dict[str, MosaicResult] | None:
    """The results of a scene whose three mosaics an earlier run wrote from the same patches."""
    out: dict[str, MosaicResult] = {}
    sources = _sources(paths)
    for m in MODALITIES:
        f = folder / f"{name}{MOSAIC_SUFFIX[m]}"
        try:
            with rasterio.open(f) as src:
                tags = src.tags()
        except RasterioError:
            return None
        if tags.get("DSEN2CR_SCENE") != name or tags.get("DSEN2CR_MOSAIC_SOURCES") != sources:
            return None
        try:
            rec = json.loads(tags["DSEN2CR_MOSAIC"])
            out[m] = MosaicResult(f, rec["width"], rec["height"], rec["patches"], rec["covered_fraction"],
                                  [Disagreement(**d) for d in rec["disagreements"]])  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None
    return out


def _roi_groups(triplets: Sequence[Triplet]) -> dict[tuple[str, int], list[Triplet]]:
    groups: dict[tuple[str, int], list[Triplet]] = {}
    for t in triplets:
        if not t.season or t.roi < 0:
            raise DataError(
                f"{t.s2_cloudy}: file name without season and ROI; mosaics need SEN12MS-CR names"
            )
        groups.setdefault((t.season, t.roi), []).append(t)
    return {k: sorted(v, key=lambda t: t.patch) for k, v in sorted(groups.items())}


def mosaic_split(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    split: str = "test",
    season: str | None = None,
    roi: int | None = None,
    split_file: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_scene: Callable[[str, dict[str, MosaicResult]], None] | None = None,
) -> dict[str, dict[str, MosaicResult]]:
    """Mosaic every (season, ROI) of a split: the ``dsen2cr mosaic`` command.

    Args:
        root: SEN12MS-CR root folder.
        out: output folder; gets ``<scene>_s2_cloudy.tif``, ``<scene>_s2.tif`` and
            ``<scene>_s1.tif`` per ROI (:func:`mosaic_name`), all on the grid of the union of the
            ROI's patches.
        split: ``"test"`` (default), ``"val"``, ``"train"`` or ``"all"``.
        season: only this season (``spring``, ``summer``, ``fall``, ``winter``).
        roi: only this ROI number.
        split_file: optional split definition (see :func:`dsen2cr.data.splits.read_split_file`).
        overwrite: replace mosaics that exist. Without it, a scene whose three mosaics an earlier
            run wrote from the same patches is kept (a rerun resumes), and any other existing
            mosaic is an error, before anything is written.
        progress: show a progress bar over the scenes.
        on_scene: called with ``(scene, {modality: result})`` after each scene is written (or
            kept). The three mosaics of a scene appear together; a scene that fails leaves none
            of them, and the error stops the run.

    Returns:
        ``{scene: {modality: MosaicResult}}`` in scene order.

    Raises:
        DSen2CRError: nothing to mosaic, patches without georeferencing or off a common grid,
            existing outputs without ``overwrite``.
    """
    if season is not None and season not in SEASONS:
        raise DSen2CRError(f"unknown season {season!r}; expected one of {', '.join(SEASONS)}")
    triplets, _report = select_triplets(root, split, split_file)
    chosen = [t for t in triplets
              if (season is None or t.season == season) and (roi is None or t.roi == roi)]  # fmt: skip
    if not chosen:
        what = f"split {split!r}" + (f", season {season}" if season else "") + (
            f", ROI {roi}" if roi is not None else "")
        raise DSen2CRError(f"no patch of {root} matches {what}")
    groups = _roi_groups(chosen)
    folder = Path(out)
    plans = {mosaic_name(s, r): {m: [Path(getattr(t, m)) for t in members] for m in MODALITIES}
             for (s, r), members in groups.items()}  # fmt: skip
    done = {} if overwrite else {n: _finished(folder, n, p) for n, p in plans.items()}
    for name in plans:  # every output is checked before the first one is written
        if done.get(name) is None:
            for m in MODALITIES:
                guard_outputs({"out": folder / f"{name}{MOSAIC_SUFFIX[m]}"}, [root],
                              overwrite=overwrite)  # fmt: skip
    results: dict[str, dict[str, MosaicResult]] = {}
    for name, paths in tqdm(plans.items(), desc="mosaic", unit="scene",
                            disable=None if progress else True):  # fmt: skip
        finished = done.get(name)
        if finished is not None:  # written by an earlier run from the same patches: kept
            results[name] = finished
        else:
            results[name] = _mosaic_scene(folder, name, paths)
        if on_scene is not None:
            on_scene(name, results[name])
    return results
