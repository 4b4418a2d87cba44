"""SEN12MS-CR data pipeline: indexing, splits, reading, preprocessing, augmentation, Lightning.

Layouts
-------
*Published* (mediaTUM 1554803, as unpacked; the season folders may sit directly under the root or
one level deeper, any nesting works because files are recognised by name)::

    ROOT/ROIs1158_spring/ROIs1158_spring_s1/s1_106/ROIs1158_spring_s1_106_p30.tif
    ROOT/ROIs1158_spring/ROIs1158_spring_s2/s2_106/ROIs1158_spring_s2_106_p30.tif
    ROOT/ROIs1158_spring/ROIs1158_spring_s2_cloudy/s2_cloudy_106/ROIs1158_spring_s2_cloudy_106_p30.tif

A triplet is the three files with the same (season, ROI, patch), parsed from the file names with a
strict regular expression (ROI 1 never matches ROI 106). *Flattened* (original DSen2-CR code):
three folders ``s1``, ``s2_cloudFree``, ``s2_cloudy`` under the root holding identically named
files such as ``ROIs1158_spring_101_30.tif``.

Indexing walks the folders once with :func:`os.scandir` (no file is opened) and caches the result as
JSON, keyed on the root path and the modification times of every folder visited (adding, removing
or renaming a file changes its folder's mtime, so the cache is exact). The cache lives in
``ROOT/.dsen2cr/index.json`` when the root is writable, else in ``~/.cache/dsen2cr/``.

Splits
------
Default: the ROI split of the SEN12MS-CR-TS / UnCRtainTS loaders (:data:`TEST_ROIS`,
:data:`VAL_ROIS`; every other ROI is train). A split file may be given instead: a CSV with header
``split,season,roi,patch`` (split ``train``/``val``/``test`` or 1/2/3; season ``spring`` or
``ROIs1158_spring``), or the original DSen2-CR file list (no header; tab- or comma-separated rows
``split(1/2/3), s1 folder, s2 cloud-free folder, s2 cloudy folder, file name``, folders relative to
the root).

Samples
-------
See :class:`SEN12MSCR`. Preprocessing is :mod:`dsen2cr.scaling` (paper Section 3.5): S2 DN clipped
to [0, 10000] / 2000; S1 VV clipped to [-25, 0], VH to [-32.5, 0], mapped onto [0, 2]; NaNs in S1
replaced by the mean of the finite values of the window read.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import inspect
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dsen2cr.errors import DataError, DSen2CRError
from dsen2cr.scaling import fill_nan, s1_to_scaled, s2_to_scaled

log = logging.getLogger(__name__)

SEASONS: dict[str, str] = {
    "spring": "ROIs1158_spring",
    "summer": "ROIs1868_summer",
    "fall": "ROIs1970_fall",
    "winter": "ROIs2017_winter",
}
"""Short season name -> SEN12MS-CR season folder / file-name prefix."""
_SEASON_SHORT = {v: k for k, v in SEASONS.items()}

TEST_ROIS: dict[str, tuple[int, ...]] = {
    "spring": (106, 123, 140, 31, 44),
    "summer": (119, 73),
    "fall": (139,),
    "winter": (108, 63),
}
"""Test ROIs per season (as in the SEN12MS-CR-TS and UnCRtainTS loaders)."""
VAL_ROIS: dict[str, tuple[int, ...]] = {
    "winter": (22, 107, 130, 84),
    "summer": (19, 80, 127, 17),
    "fall": (65,),
    "spring": (17,),
}
"""Validation ROIs per season; every other ROI is train."""

SPLITS = ("train", "val", "test", "all")
MODALITIES = ("s1", "s2", "s2_cloudy")
FLAT_FOLDERS = {"s1": "s1", "s2": "s2_cloudFree", "s2_cloudy": "s2_cloudy"}
"""Folder of each modality in the flattened (original DSen2-CR) layout."""

_SEASON_RE = "|".join(SEASONS.values())
PUBLISHED_NAME = re.compile(rf"^({_SEASON_RE})_(s1|s2|s2_cloudy)_([0-9]+)_p([0-9]+)\.tif$")
"""File names of the published layout: ``<season>_<s1|s2|s2_cloudy>_<roi>_p<patch>.tif``."""
FLAT_NAME = re.compile(rf"^({_SEASON_RE})_([0-9]+)_p?([0-9]+)\.tif$")
"""File names of the flattened layout: ``<season>_<roi>_<patch>.tif`` (or ``_p<patch>``)."""

INDEX_VERSION = 1
_S2_DTYPES = ("uint16", "int16")
_S1_DTYPES = ("float32", "float64")


# --------------------------------------------------------------------------- index
@dataclass(frozen=True)
class Triplet:
    """One S1 / cloud-free S2 / cloudy S2 triplet.

    ``season`` is the short name (``"spring"``...; ``""`` and ``roi = patch = -1`` when a
    flattened-layout file name does not follow the SEN12MS-CR pattern).
    """

    season: str
    roi: int
    patch: int
    s1: str
    s2: str
    s2_cloudy: str


@dataclass
class Index:
    """Result of indexing a dataset root.

    Attributes:
        root: the absolute root folder.
        layout: ``"published"`` or ``"flat"``.
        triplets: complete triplets sorted by (season, roi, patch).
        incomplete: ``{"season", "roi", "patch", "missing": [modalities]}`` for every
            (season, roi, patch) that lacks one or two of its three files.
        from_cache: whether the index was read from the cache instead of walking the folders.
        cache_path: the cache file used (``None`` if none could be written).
    """

    root: Path
    layout: str
    triplets: list[Triplet]
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    from_cache: bool = False
    cache_path: Path | None = None

    def counts(self) -> dict[str, dict[str, int]]:
        """Triplet counts per default split and season, e.g. ``{"test": {"spring": 12}}``."""
        out: dict[str, dict[str, int]] = {}
        for t in self.triplets:
            s = default_split(t.season, t.roi) or "unknown"
            out.setdefault(s, {}).setdefault(t.season or "unknown", 0)
            out[s][t.season or "unknown"] += 1
        return out


def default_split(season: str, roi: int) -> str | None:
    """``"test"``, ``"val"`` or ``"train"`` for an ROI of a season (``None`` for unknown season)."""
    if season not in SEASONS:
        return None
    if roi in TEST_ROIS[season]:
        return "test"
    if roi in VAL_ROIS[season]:
        return "val"
    return "train"


def _cache_path(root: Path, cache_dir: str | os.PathLike[str] | None) -> Path | None:
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:16]
    if cache_dir is not None:
        return Path(cache_dir) / f"index-{digest}.json"
    local = root / ".dsen2cr"
    if os.access(root, os.W_OK) and (local.is_dir() or not local.exists()):
        return local / "index.json"
    return Path.home() / ".cache" / "dsen2cr" / f"index-{digest}.json"


def _stat_dirs(root: Path, dirs: Mapping[str, int]) -> bool:
    """True if every folder still has its recorded mtime."""
    for rel, mtime in dirs.items():
        try:
            if os.stat(root / rel).st_mtime_ns != mtime:
                return False
        except OSError:
            return False
    return True


def _walk(root: Path) -> tuple[str, dict[str, int], dict[tuple[str, int, int], dict[str, str]],
                               dict[str, list[str]]]:  # fmt: skip
    """One scandir walk. Returns layout, folder mtimes, published files, flat file names."""
    dirs: dict[str, int] = {".": os.stat(root).st_mtime_ns}
    flat_dirs = [FLAT_FOLDERS[m] for m in MODALITIES]
    if all((root / d).is_dir() for d in flat_dirs):
        names: dict[str, list[str]] = {}
        for m in MODALITIES:
            d = FLAT_FOLDERS[m]
            dirs[d] = os.stat(root / d).st_mtime_ns
            with os.scandir(root / d) as it:
                names[m] = sorted(e.name for e in it if e.name.endswith(".tif")
                                  and not e.name.startswith(".") and e.is_file())  # fmt: skip
        return "flat", dirs, {}, names
    files: dict[tuple[str, int, int], dict[str, str]] = {}
    stack = ["."]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            if e.name.startswith("."):
                continue
            sub = e.name if rel == "." else f"{rel}/{e.name}"
            if e.is_dir(follow_symlinks=True):
                dirs[sub] = e.stat(follow_symlinks=True).st_mtime_ns
                stack.append(sub)
                continue
            m = PUBLISHED_NAME.match(e.name)
            if m is None:
                continue
            key = (_SEASON_SHORT[m.group(1)], int(m.group(3)), int(m.group(4)))
            slot = files.setdefault(key, {})
            if m.group(2) in slot:
                log.warning("duplicate %s file %s ignored (first: %s)", m.group(2), sub,
                            slot[m.group(2)])  # fmt: skip
                continue
            slot[m.group(2)] = rel
    return "published", dirs, files, {}


def _parse_flat_name(name: str) -> tuple[str, int, int]:
    m = FLAT_NAME.match(name)
    if m is None:
        return "", -1, -1
    return _SEASON_SHORT[m.group(1)], int(m.group(2)), int(m.group(3))


def _report_incomplete(incomplete: list[dict[str, Any]], root: Path) -> None:
    if incomplete:
        ex = incomplete[0]
        log.warning(
            "%d incomplete triplet(s) under %s skipped, e.g. season %s roi %s patch %s misses %s",
            len(incomplete), root, ex["season"], ex["roi"], ex["patch"], ", ".join(ex["missing"]),
        )  # fmt: skip


def build_index(
    root: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
) -> Index:
    """Index a SEN12MS-CR root (published or flattened layout), using the cache when valid.

    Args:
        root: dataset root folder.
        cache_dir: folder for the index cache (default ``ROOT/.dsen2cr`` if writable, else
            ``~/.cache/dsen2cr``).
        refresh: ignore an existing cache and walk the folders again.

    Returns:
        The :class:`Index`. Incomplete triplets are skipped, logged (count and example) and
        listed in ``Index.incomplete``.

    Raises:
        DataError: the root does not exist or is not a folder.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"SEN12MS-CR root {root} does not exist or is not a folder")
    cache = _cache_path(root, cache_dir)
    if cache is not None and not refresh and cache.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(cache.read_text())
            if (data.get("version") == INDEX_VERSION and data.get("root") == str(root)
                    and _stat_dirs(root, data["dirs"])):  # fmt: skip
                index = _index_from_json(root, data)
                index.from_cache, index.cache_path = True, cache
                _report_incomplete(index.incomplete, root)
                return index
    if cache is not None and cache.parent == root / ".dsen2cr":
        # create it before the walk so writing the cache does not change the root's mtime
        with contextlib.suppress(OSError):
            cache.parent.mkdir(exist_ok=True)
    layout, dirs, files, names = _walk(root)
    data = {"version": INDEX_VERSION, "root": str(root), "layout": layout, "dirs": dirs}
    if layout == "flat":
        sets = {m: set(names[m]) for m in MODALITIES}
        common = set.intersection(*sets.values())
        everything = set.union(*sets.values())
        data["names"] = sorted(common, key=lambda n: (*_parse_flat_name(n), n))
        data["incomplete"] = [
            {"season": s, "roi": r, "patch": p, "name": n,
             "missing": [m for m in MODALITIES if n not in sets[m]]}
            for n in sorted(everything - common) for s, r, p in [_parse_flat_name(n)]
        ]  # fmt: skip
    else:
        folder_ids: dict[str, int] = {}
        rows, incomplete = [], []
        for key in sorted(files):
            slot = files[key]
            if len(slot) < 3:
                incomplete.append({"season": key[0], "roi": key[1], "patch": key[2],
                                   "missing": [m for m in MODALITIES if m not in slot]})  # fmt: skip
                continue
            ids = [folder_ids.setdefault(slot[m], len(folder_ids)) for m in MODALITIES]
            rows.append([*key, *ids])
        data["folders"] = list(folder_ids)
        data["triplets"] = rows
        data["incomplete"] = incomplete
    index = _index_from_json(root, data)
    if cache is not None:
        try:
            from dsen2cr.io import atomic_output

            with atomic_output(cache) as tmp:
                tmp.write_text(json.dumps(data, separators=(",", ":")))
            index.cache_path = cache
        except OSError as exc:
            log.warning("could not write the index cache %s: %s", cache, exc)
    _report_incomplete(index.incomplete, root)
    return index


def _index_from_json(root: Path, data: dict[str, Any]) -> Index:
    if data["layout"] == "flat":
        triplets = [
            Triplet(*_parse_flat_name(n), *(str(root / FLAT_FOLDERS[m] / n) for m in MODALITIES))
            for n in data["names"]
        ]
    else:
        folders = [root / f for f in data["folders"]]
        triplets = []
        for season, roi, patch, i1, i2, i3 in data["triplets"]:
            pre = SEASONS[season]
            triplets.append(Triplet(
                season, roi, patch,
                str(folders[i1] / f"{pre}_s1_{roi}_p{patch}.tif"),
                str(folders[i2] / f"{pre}_s2_{roi}_p{patch}.tif"),
                str(folders[i3] / f"{pre}_s2_cloudy_{roi}_p{patch}.tif"),
            ))  # fmt: skip
    return Index(root, data["layout"], triplets, list(data.get("incomplete", [])))


# --------------------------------------------------------------------------- split files
_SPLIT_CODES = {"1": "train", "2": "val", "3": "test", "train": "train", "val": "val",
                "validation": "val", "test": "test"}  # fmt: skip


def _split_name(value: str, path: Path, line: int) -> str:
    v = value.strip().lower()
    if v not in _SPLIT_CODES:
        raise DataError(f"split file {path} line {line}: unknown split {value!r} "
                        "(expected train/val/test or 1/2/3)")  # fmt: skip
    return _SPLIT_CODES[v]


def read_split_file(
    path: str | os.PathLike[str],
) -> tuple[str, list[tuple[Any, ...]]]:
    """Parse a user split file.

    Args:
        path: a CSV with header ``split,season,roi,patch`` or an original DSen2-CR file list.

    Returns:
        ``("csv", [(split, season, roi, patch), ...])`` with short season names, or
        ``("filelist", [(split, s1_folder, s2_folder, s2_cloudy_folder, file_name), ...])``.

    Raises:
        DataError: missing file, unknown format or a malformed row (names the line).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"split file {p} not found")
    text = p.read_text()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"split file {p} is empty")
    delim = "\t" if "\t" in lines[0] else ","
    rows = list(csv.reader(lines, delimiter=delim))
    header = [h.strip().lower() for h in rows[0]]
    if {"split", "season", "roi", "patch"} <= set(header):
        col = {h: header.index(h) for h in ("split", "season", "roi", "patch")}
        out: list[tuple[Any, ...]] = []
        for n, row in enumerate(rows[1:], start=2):
            try:
                season = row[col["season"]].strip()
                season = _SEASON_SHORT.get(season, season)
                if season not in SEASONS:
                    raise DataError(f"split file {p} line {n}: unknown season {season!r}")
                patch = row[col["patch"]].strip().lstrip("p")
                out.append((_split_name(row[col["split"]], p, n), season,
                            int(row[col["roi"]]), int(patch)))  # fmt: skip
            except (IndexError, ValueError):
                raise DataError(f"split file {p} line {n}: expected split,season,roi,patch, "
                                f"got {row}") from None  # fmt: skip
        return "csv", out
    if len(rows[0]) == 5 and rows[0][0].strip() in ("1", "2", "3"):
        out = []
        for n, row in enumerate(rows, start=1):
            if len(row) != 5:
                raise DataError(f"split file {p} line {n}: expected 5 fields (split, s1 folder, "
                                f"s2 folder, s2 cloudy folder, file name), got {len(row)}")  # fmt: skip
            out.append((_split_name(row[0], p, n), *(c.strip() for c in row[1:])))
        return "filelist", out
    raise DataError(f"split file {p}: unknown format; expected a CSV with header "
                    "split,season,roi,patch or a DSen2-CR file list (split, s1 folder, s2 folder, "
                    "s2 cloudy folder, file name)")  # fmt: skip


def select_triplets(
    root: str | os.PathLike[str],
    split: str = "train",
    split_file: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
) -> tuple[list[Triplet], dict[str, Any]]:
    """The triplets of one split.

    Args:
        root: dataset root.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        split_file: optional user split file (see :func:`read_split_file`).
        cache_dir: index cache folder, see :func:`build_index`.
        refresh: rebuild the index cache.

    Returns:
        ``(triplets, report)``; ``report`` has ``"incomplete"`` (count), ``"incomplete_example"``
        and ``"missing"`` (split-file entries without files).
    """
    if split not in SPLITS:
        raise DSen2CRError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    report: dict[str, Any] = {"incomplete": 0, "incomplete_example": None, "missing": 0}
    if split_file is not None:
        kind, rows = read_split_file(split_file)
        if kind == "filelist":
            return _select_filelist(Path(root), split, rows, report)
    index = build_index(root, cache_dir=cache_dir, refresh=refresh)
    report["incomplete"] = len(index.incomplete)
    report["incomplete_example"] = index.incomplete[0] if index.incomplete else None
    if split_file is None:
        chosen = [t for t in index.triplets
                  if split == "all" or default_split(t.season, t.roi) == split]  # fmt: skip
        return chosen, report
    wanted = {(s, r, p) for sp, s, r, p in rows if split in ("all", sp)}
    chosen = [t for t in index.triplets if (t.season, t.roi, t.patch) in wanted]
    missing = wanted - {(t.season, t.roi, t.patch) for t in chosen}
    report["missing"] = len(missing)
    if missing:
        ex = min(missing)
        log.warning("%d triplet(s) listed in %s for split %s are not under %s, e.g. %s roi %d "
                    "patch %d", len(missing), split_file, split, root, *ex)  # fmt: skip
    return chosen, report


def _select_filelist(
    root: Path, split: str, rows: list[tuple[Any, ...]], report: dict[str, Any]
) -> tuple[list[Triplet], dict[str, Any]]:
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"SEN12MS-CR root {root} does not exist or is not a folder")
    listing: dict[str, set[str]] = {}
    chosen, incomplete = [], []
    for sp, d1, d2, d3, name in rows:
        if split not in ("all", sp):
            continue
        present = []
        for d in (d1, d2, d3):
            if d not in listing:
                try:
                    with os.scandir(root / d) as it:
                        listing[d] = {e.name for e in it}
                except OSError:
                    listing[d] = set()
            present.append(name in listing[d])
        season, roi, patch = _parse_flat_name(name)
        if not all(present):
            incomplete.append({"season": season, "roi": roi, "patch": patch, "name": name,
                               "missing": [m for m, ok in zip(MODALITIES, present, strict=True) if not ok]})  # fmt: skip
            continue
        chosen.append(Triplet(season, roi, patch, str(root / d1 / name), str(root / d2 / name),
                              str(root / d3 / name)))  # fmt: skip
    report["incomplete"] = len(incomplete)
    report["incomplete_example"] = incomplete[0] if incomplete else None
    _report_incomplete(incomplete, root)
    return chosen, report


# --------------------------------------------------------------------------- reading
def _open(path: str, what: str, bands: int, dtypes: Sequence[str]) -> Any:
    from dsen2cr.io import check_band_count, open_raster
    from dsen2cr.sentinel import _no_georef_warning

    with _no_georef_warning():
        src = open_raster(path, what)
    try:
        check_band_count(src.count, bands, path, what)
        if src.dtypes[0] not in dtypes:
            raise DataError(f"{what} {path} has dtype {src.dtypes[0]}, expected "
                            f"{' or '.join(dtypes)}")  # fmt: skip
    except DataError:
        src.close()
        raise
    return src


def _read(src: Any, what: str, window: Any) -> np.ndarray:
    from rasterio.errors import RasterioError

    try:
        return src.read(window=window)
    except (RasterioError, OSError, ValueError) as exc:
        raise DataError(f"cannot read {what} {src.name}: corrupt or truncated ({exc})") from None


def _gdal_env() -> Any:
    import rasterio

    return rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR")


def _crs_string(crs: Any) -> str:
    if crs is None:
        return ""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def augment_array(x: np.ndarray, flip: int, rot90: int) -> np.ndarray:
    """Apply the training augmentation to a (C, H, W) or (H, W) array.

    Args:
        x: array, spatial axes last.
        flip: 0 none, 1 vertical (rows reversed), 2 horizontal (columns reversed); applied first.
        rot90: number of counter-clockwise quarter turns (``np.rot90``), 0..3; applied second.

    Returns:
        A view of ``x`` (not necessarily contiguous).
    """
    if flip == 1:
        x = x[..., ::-1, :]
    elif flip == 2:
        x = x[..., :, ::-1]
    return np.rot90(x, rot90, axes=(-2, -1)) if rot90 % 4 else x


class SEN12MSCR(torch.utils.data.Dataset):
    """SEN12MS-CR triplets as preprocessed tensors (see the module docstring for the layouts).

    Each sample is a dict:

    * ``optical``: (13, h, w) float32 cloudy S2, scaled (DN clipped to [0, 10000], / 2000);
    * ``sar``: (2, h, w) float32 S1 VV, VH, scaled onto [0, 2];
    * ``target``: (13, h, w) float32 cloud-free S2, scaled;
    * ``mask``: (1, h, w) float32 {0, 1} cloud-or-shadow of the cloudy input, only with
      ``with_mask`` (computed with :func:`dsen2cr.cloudmask.binary_mask` on the whole cloudy patch,
      because the shadow test uses whole-image statistics, then cropped and augmented like the
      rasters);
    * metadata: ``season`` (str), ``roi`` (int), ``patch`` (int), ``crs`` (``"EPSG:xxxxx"``, WKT,
      or ``""``), ``transform`` (6 floats, GDAL/affine order a, b, c, d, e, f) of the window read,
      i.e. the crop **before** augmentation; ``flip`` and ``rot90`` give the augmentation applied
      (undo ``np.rot90(x, -rot90)`` then the flip to get back onto that window's grid).

    Cropping: with ``crop_size`` (< the patch size) a ``crop_size`` square window is read with a
    windowed read (only that window is read); its position is random when ``random_crop`` (default:
    ``augment``), else the centre. ``crop_size=None`` reads the whole patch (evaluation).
    Augmentation: flip none / vertical / horizontal, then rot90 by k in 0..3, identical for the
    three rasters and the mask.

    Randomness comes from ``numpy.random.default_rng([seed, epoch, i])`` for sample ``i``, so a
    sample depends only on (seed, epoch, index), never on the number of workers. The epoch is
    ``set_epoch(e)`` plus ``index // len(self)``: :class:`EpochRandomSampler` passes indices
    offset by ``epoch * len(self)``, which works with persistent workers.

    Args:
        root: dataset root.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        crop_size: crop size in pixels, or ``None`` for whole patches.
        augment: random flips and rotations.
        with_mask: add the ``mask`` entry (CPU cloud/shadow detection, ~costly).
        split_file: optional split file (CSV or DSen2-CR file list).
        on_error: ``"raise"`` (default) or ``"skip"``: a bad sample is logged, counted in
            ``skipped`` / ``skipped_messages`` and returned as ``None`` (dropped by :func:`collate`).
            Counts are per process (each DataLoader worker has its own copy).
        seed: random seed.
        cache_dir: index cache folder (see :func:`build_index`).
        random_crop: random (True) or centre (False) crops; default ``augment``.
        patch_size: if given, every raster must be ``patch_size`` square.
        refresh_index: rebuild the index cache.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        crop_size: int | None = 128,
        augment: bool = False,
        with_mask: bool = False,
        split_file: str | os.PathLike[str] | None = None,
        on_error: str = "raise",
        seed: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        random_crop: bool | None = None,
        patch_size: int | None = None,
        refresh_index: bool = False,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if crop_size is not None and crop_size < 1:
            raise ValueError(f"crop_size must be positive or None, got {crop_size}")
        self.root = Path(root)
        self.split = split
        self.crop_size = crop_size
        self.augment = augment
        self.with_mask = with_mask
        self.on_error = on_error
        self.seed = int(seed)
        self.random_crop = augment if random_crop is None else random_crop
        self.patch_size = patch_size
        self.triplets, self.report = select_triplets(root, split, split_file, cache_dir,
                                                     refresh_index)  # fmt: skip
        self.epoch = 0
        self.skipped = 0
        self.skipped_messages: list[str] = []

    def __len__(self) -> int:
        return len(self.triplets)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds crops and augmentation (in this process)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator used for (possibly epoch-offset) sample ``index``."""
        n = max(len(self), 1)
        return np.random.default_rng([self.seed, self.epoch + index // n, index % n])

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        if len(self) == 0:
            raise IndexError("empty dataset")
        try:
            return self._load(int(index))
        except DataError as exc:
            if self.on_error == "raise":
                raise
            self.skipped += 1
            if len(self.skipped_messages) < 1000:
                self.skipped_messages.append(str(exc))
            log.warning("skipping sample %d: %s", index, exc)
            return None

    def _load(self, index: int) -> dict[str, Any]:
        from rasterio.windows import Window

        t = self.triplets[index % len(self)]
        rng = self.rng(index)
        with contextlib.ExitStack() as stack:
            # no directory listing per open (SEN12MS-CR folders hold ~1000 files, no sidecars)
            stack.enter_context(_gdal_env())
            s1 = stack.enter_context(_open(t.s1, "S1 image", 2, _S1_DTYPES))
            s2 = stack.enter_context(_open(t.s2, "S2 image", 13, _S2_DTYPES))
            s2c = stack.enter_context(_open(t.s2_cloudy, "S2 cloudy image", 13, _S2_DTYPES))
            h, w = s2c.height, s2c.width
            for src, what in ((s1, "S1 image"), (s2, "S2 image")):
                if (src.height, src.width) != (h, w):
                    raise DataError(f"{what} {src.name} is {src.height} x {src.width} pixels, "
                                    f"but the cloudy S2 image {t.s2_cloudy} is {h} x {w}")  # fmt: skip
            if self.patch_size is not None and (h, w) != (self.patch_size,) * 2:
                raise DataError(f"S2 cloudy image {t.s2_cloudy} is {h} x {w} pixels, expected "
                                f"{self.patch_size} x {self.patch_size}")  # fmt: skip
            c = self.crop_size
            if c is None or (c, c) == (h, w):
                y0, x0, ch, cw = 0, 0, h, w
            elif c > h or c > w:
                raise DataError(f"S2 cloudy image {t.s2_cloudy} is {h} x {w} pixels, smaller "
                                f"than the crop size {c}")  # fmt: skip
            elif self.random_crop:
                y0, x0, ch, cw = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1)), c, c
            else:
                y0, x0, ch, cw = (h - c) // 2, (w - c) // 2, c, c
            window = Window(x0, y0, cw, ch)
            whole = (ch, cw) == (h, w)
            mask = None
            if self.with_mask:
                from dsen2cr.cloudmask import binary_mask

                cloudy_full = _read(s2c, "S2 cloudy image", None)
                mask = binary_mask(cloudy_full)[y0 : y0 + ch, x0 : x0 + cw]
                cloudy = cloudy_full[:, y0 : y0 + ch, x0 : x0 + cw]
            else:
                cloudy = _read(s2c, "S2 cloudy image", None if whole else window)
            target = _read(s2, "S2 image", None if whole else window)
            sar = _read(s1, "S1 image", None if whole else window)
            transform = tuple(float(v) for v in tuple(s2c.window_transform(window))[:6])
            crs = _crs_string(s2c.crs)
        flip, rot = (int(rng.integers(0, 3)), int(rng.integers(0, 4))) if self.augment else (0, 0)
        sar = fill_nan(sar.astype(np.float32, copy=False))

        def tensor(x: np.ndarray) -> torch.Tensor:
            x = augment_array(x, flip, rot)
            return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

        sample: dict[str, Any] = {
            "optical": tensor(s2_to_scaled(cloudy)),
            "sar": tensor(s1_to_scaled(sar)),
            "target": tensor(s2_to_scaled(target)),
        }
        if mask is not None:
            sample["mask"] = tensor(mask[None].astype(np.float32))
        sample.update(season=t.season, roi=t.roi, patch=t.patch, crs=crs, transform=transform,
                      flip=flip, rot90=rot)  # fmt: skip
        return sample


TENSOR_KEYS = ("optical", "sar", "target", "mask")
_EMPTY_SHAPES = {"optical": 13, "sar": 2, "target": 13}


def collate(batch: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Collate samples of :class:`SEN12MSCR`: stack tensors, keep metadata as lists.

    Skipped samples (``None``) are dropped. If every sample of the batch was skipped the result
    is an *empty batch* of the same structure: tensors of shape (0, C, 0, 0) and empty lists
    (``batch["optical"].shape[0] == 0``); training and evaluation steps must skip it (e.g.
    ``return None`` from ``training_step``).

    Args:
        batch: samples (dicts) or ``None``.

    Returns:
        Dict with (B, C, h, w) tensors under ``optical``, ``sar``, ``target`` (and ``mask``) and
        lists of length B for every other key (``transform``: list of 6-tuples).
    """
    samples = [s for s in batch if s is not None]
    if not samples:
        return {**{k: torch.zeros((0, c, 0, 0)) for k, c in _EMPTY_SHAPES.items()},
                **{k: [] for k in ("season", "roi", "patch", "crs", "transform", "flip", "rot90")}}  # fmt: skip
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        out[key] = torch.stack(values) if key in TENSOR_KEYS else values
    return out


def is_empty_batch(batch: Mapping[str, Any] | None) -> bool:
    """True for ``None`` or a batch from :func:`collate` in which every sample was skipped."""
    return batch is None or batch["optical"].shape[0] == 0


class EpochRandomSampler(torch.utils.data.Sampler[int]):
    """Shuffles ``range(n)`` with a (seed, epoch) generator and yields ``epoch * n + i``.

    :class:`SEN12MSCR` reads the epoch from the index, so crops and augmentation change every
    epoch even in persistent DataLoader workers, and depend only on (seed, epoch, index). Lightning
    calls :meth:`set_epoch` at each epoch start (also on resume); without it the epoch advances
    by one per iteration.
    """

    def __init__(self, n: int, seed: int = 0, epoch: int = 0) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = int(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch of the next iteration."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        self.epoch += 1
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return iter((epoch * self.n + perm).tolist())


# --------------------------------------------------------------------------- Lightning
def _make_datamodule_class() -> type:
    """Define :class:`SEN12MSCRDataModule` on first use (importing Lightning takes seconds)."""
    import lightning.pytorch as pl

    class SEN12MSCRDataModule(pl.LightningDataModule):
        """Train / val / test loaders over SEN12MS-CR.

        Train: random ``crop_size`` crops with flips and rotations, shuffled with
        :class:`EpochRandomSampler`. Val / test: whole patches, no augmentation, in index order.

        Args:
            root: dataset root.
            batch_size: training batch size.
            eval_batch_size: val/test batch size (default ``batch_size``).
            num_workers: DataLoader worker processes (0: load in the main process).
            crop_size: training crop (``None`` or the patch size: whole patches).
            split_file: optional split file (CSV or DSen2-CR file list).
            on_error: ``"raise"`` or ``"skip"`` (see :class:`SEN12MSCR`).
            seed: seed of crops, augmentation and shuffling.
            pin_memory: pin host memory (only used when CUDA is available).
            persistent_workers: keep workers between epochs (only when ``num_workers > 0``).
            with_mask: add CPU cloud/shadow masks to the samples (training usually computes them
                batched on the accelerator instead).
            cache_dir: index cache folder.
        """

        def __init__(
            self,
            root: str | os.PathLike[str],
            batch_size: int = 16,
            eval_batch_size: int | None = None,
            num_workers: int = 4,
            crop_size: int | None = 128,
            split_file: str | os.PathLike[str] | None = None,
            on_error: str = "raise",
            seed: int = 0,
            pin_memory: bool = True,
            persistent_workers: bool = True,
            with_mask: bool = False,
            cache_dir: str | os.PathLike[str] | None = None,
        ) -> None:
            super().__init__()
            self.root = Path(root)
            self.batch_size = int(batch_size)
            self.eval_batch_size = int(eval_batch_size or batch_size)
            self.num_workers = int(num_workers)
            self.crop_size = crop_size
            self.split_file = split_file
            self.on_error = on_error
            self.seed = int(seed)
            self.pin_memory = bool(pin_memory)
            self.persistent_workers = bool(persistent_workers)
            self.with_mask = bool(with_mask)
            self.cache_dir = cache_dir
            self._datasets: dict[str, SEN12MSCR] = {}

        @classmethod
        def from_config(cls, config: Mapping[str, Any]) -> SEN12MSCRDataModule:
            """Build from a dict of constructor arguments (e.g. the ``data:`` block of a YAML config).

            Raises:
                DSen2CRError: an unknown key.
            """
            params = inspect.signature(cls.__init__).parameters
            unknown = sorted(set(config) - set(params) - {"self"})
            if unknown:
                raise DSen2CRError(f"unknown data option(s) {', '.join(unknown)}; allowed: "
                                   f"{', '.join(p for p in params if p != 'self')}")  # fmt: skip
            return cls(**dict(config))

        def dataset(self, split: str) -> SEN12MSCR:
            """The (cached) dataset of a split: ``"train"`` augmented and cropped, others whole."""
            if split not in self._datasets:
                train = split == "train"
                self._datasets[split] = SEN12MSCR(
                    self.root, split=split, crop_size=self.crop_size if train else None,
                    augment=train, with_mask=self.with_mask, split_file=self.split_file,
                    on_error=self.on_error, seed=self.seed, cache_dir=self.cache_dir,
                )  # fmt: skip
            return self._datasets[split]

        def setup(self, stage: str | None = None) -> None:
            """Index the splits needed for ``stage`` (fit: train + val; validate; test)."""
            needs = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                     "predict": ("test",)}.get(stage or "", ("train", "val", "test"))  # fmt: skip
            for split in needs:
                self.dataset(split)

        def _loader(self, split: str, batch_size: int, sampler: Any = None) -> Any:
            ds = self.dataset(split)
            workers = self.num_workers
            return torch.utils.data.DataLoader(
                ds, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers,
                collate_fn=collate, pin_memory=self.pin_memory and torch.cuda.is_available(),
                persistent_workers=self.persistent_workers and workers > 0, drop_last=False,
            )  # fmt: skip

        def train_dataloader(self) -> Any:
            """Shuffled, cropped, augmented training batches."""
            ds = self.dataset("train")
            # start at the trainer's epoch: on resume the checkpoint is restored before this is
            # called, and neither DDP's sampler wrapper nor the first prefetch sees set_epoch
            epoch = self.trainer.current_epoch if self.trainer is not None else 0
            sampler = EpochRandomSampler(len(ds), self.seed, epoch=epoch)
            return self._loader("train", self.batch_size, sampler)

        def val_dataloader(self) -> Any:
            """Whole validation patches in index order."""
            return self._loader("val", self.eval_batch_size)

        def test_dataloader(self) -> Any:
            """Whole test patches in index order."""
            return self._loader("test", self.eval_batch_size)

    SEN12MSCRDataModule.__module__ = __name__
    SEN12MSCRDataModule.__qualname__ = "SEN12MSCRDataModule"
    return SEN12MSCRDataModule


def __getattr__(name: str) -> Any:
    if name == "SEN12MSCRDataModule":
        cls = _make_datamodule_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def index_summary(
    root: str | os.PathLike[str],
    split_file: str | os.PathLike[str] | None = None,
    refresh: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Build or refresh the index cache and summarise it (the ``dsen2cr index`` command).

    Returns:
        JSON-able dict: ``root``, ``layout``, ``cache`` (path), ``from_cache``, ``triplets``
        (total), ``splits`` ({split: {season: count}}), ``incomplete`` (count),
        ``incomplete_examples`` (up to 5), ``missing`` (split-file entries without files).
    """
    summary: dict[str, Any] = {"root": str(Path(root).expanduser().resolve())}
    if split_file is not None and read_split_file(split_file)[0] == "filelist":
        splits: dict[str, dict[str, int]] = {}
        incomplete = 0
        for sp in ("train", "val", "test"):
            trips, rep = select_triplets(root, sp, split_file)
            splits[sp] = dict(Counter(t.season or "unknown" for t in trips))
            incomplete += rep["incomplete"]
        summary.update(layout="filelist", cache=None, from_cache=False,
                       triplets=sum(sum(v.values()) for v in splits.values()), splits=splits,
                       incomplete=incomplete, incomplete_examples=[], missing=0)  # fmt: skip
        return summary
    index = build_index(root, cache_dir=cache_dir, refresh=refresh)
    summary.update(layout=index.layout, cache=str(index.cache_path) if index.cache_path else None,
                   from_cache=index.from_cache, triplets=len(index.triplets))  # fmt: skip
    if split_file is None:
        summary["splits"] = index.counts()
        summary["missing"] = 0
    else:
        splits, missing = {}, 0
        for sp in ("train", "val", "test"):
            trips, rep = select_triplets(root, sp, split_file, cache_dir)
            splits[sp] = dict(Counter(t.season or "unknown" for t in trips))
            missing += rep["missing"]
        summary["splits"] = splits
        summary["missing"] = missing
    summary["incomplete"] = len(index.incomplete)
    summary["incomplete_examples"] = index.incomplete[:5]
    return summary
