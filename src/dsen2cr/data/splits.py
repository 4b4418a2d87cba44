"""Splits of SEN12MS-CR: the default ROI split, split files, and the triplets of a split.

Default: the ROI split of the SEN12MS-CR-TS / UnCRtainTS loaders
(:data:`~dsen2cr.data.layout.TEST_ROIS`, :data:`~dsen2cr.data.layout.VAL_ROIS`; every other ROI
is train). A split file may be given instead: a CSV with header ``split,season,roi,patch`` (split
``train``/``val``/``test`` or 1/2/3; season ``spring`` or ``ROIs1158_spring``), the original
DSen2-CR file list (no header; tab- or comma-separated rows ``split(1/2/3), s1 folder, s2
cloud-free folder, s2 cloudy folder, file name``, folders relative to the root), or a per-patch
list as other toolkits publish them: one relative path per line, such as
``ROIs1158_spring_s2_cloudy/s2_cloudy_31/ROIs1158_spring_s2_cloudy_31_p30.tif`` (any of the three
modalities names the triplet; blank lines and ``#`` comments are ignored). A per-patch list *is*
one split: it selects exactly the patches it lists, whatever split is asked for.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Literal, TypeAlias, TypedDict

from dsen2cr.data.index import IncompleteTriplet, build_index, report_incomplete
from dsen2cr.data.layout import (
    FLAT_NAME,
    MODALITIES,
    PUBLISHED_NAME,
    SEASON_OF_FOLDER,
    SEASONS,
    SPLITS,
    Triplet,
    default_split,
    parse_flat_name,
)
from dsen2cr.errors import DataError, DSen2CRError, InputNotFoundError

log = logging.getLogger(__name__)

PatchKey: TypeAlias = tuple[str, int, int]
"""(season, roi, patch) of a triplet, the season's short name."""
SplitRow: TypeAlias = tuple[str, str, int, int]
"""A row of a CSV split file: (split, season, roi, patch)."""
FileListRow: TypeAlias = tuple[str, str, str, str, str]
"""A row of a DSen2-CR file list: (split, s1 folder, s2 folder, s2 cloudy folder, file name)."""
SplitFile: TypeAlias = (
    tuple[Literal["csv"], list[SplitRow]]
    | tuple[Literal["filelist"], list[FileListRow]]
    | tuple[Literal["patches"], list[PatchKey]]
)
"""A parsed split file (:func:`read_split_file`): its kind and its rows."""


class SplitReport(TypedDict):
    """What :func:`select_triplets` found besides the triplets.

    Attributes:
        incomplete: number of (season, roi, patch) lacking a file.
        incomplete_example: the first of them, or None.
        missing: split-file entries without files.
    """

    incomplete: int
    incomplete_example: IncompleteTriplet | None
    missing: int


class IndexSummary(TypedDict):
    """The summary of :func:`index_summary` (JSON-able; see there)."""

    root: str
    layout: str
    cache: str | None
    from_cache: bool
    triplets: int
    splits: dict[str, dict[str, int]]
    incomplete: int
    incomplete_examples: list[IncompleteTriplet]
    missing: int


_SPLIT_CODES = {"1": "train", "2": "val", "3": "test", "train": "train", "val": "val",
                "validation": "val", "test": "test"}  # fmt: skip


def _split_name(value: str, path: Path, line: int) -> str:
    v = value.strip().lower()
    if v not in _SPLIT_CODES:
        raise DataError(f"split file {path} line {line}: unknown split {value!r} "
                        "(expected train/val/test or 1/2/3)")  # fmt: skip
    return _SPLIT_CODES[v]


def read_split_file(path: str | os.PathLike[str]) -> SplitFile:
    """Parse a user split file.

    Args:
        path: a CSV with header ``split,season,roi,patch`` or an original DSen2-CR file list.

    Returns:
        ``("csv", [(split, season, roi, patch), ...])`` with short season names,
        ``("filelist", [(split, s1_folder, s2_folder, s2_cloudy_folder, file_name), ...])``, or
        ``("patches", [(season, roi, patch), ...])`` for a per-patch list.

    Raises:
        DataError: missing file, unknown format or a malformed row (names the line).
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"split file not found: {p}")
    text = p.read_text()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"split file {p} is empty")
    entries = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), start=1)
               if ln.strip() and not ln.lstrip().startswith("#")]  # fmt: skip
    if entries and _is_patch_path(entries[0][1]):
        return "patches", [_patch_of(line, p, n) for n, line in entries]
    delim = "\t" if "\t" in lines[0] else ","
    rows = list(csv.reader(lines, delimiter=delim))
    header = [h.strip().lower() for h in rows[0]]
    if {"split", "season", "roi", "patch"} <= set(header):
        col = {h: header.index(h) for h in ("split", "season", "roi", "patch")}
        out: list[SplitRow] = []
        for n, row in enumerate(rows[1:], start=2):
            try:
                season = row[col["season"]].strip()
                season = SEASON_OF_FOLDER.get(season, season)
                if season not in SEASONS:
                    raise DataError(f"split file {p} line {n}: unknown season {season!r}")
                patch = row[col["patch"]].strip().lstrip("p")
                out.append((_split_name(row[col["split"]], p, n), season,
                            int(row[col["roi"]]), int(patch)))  # fmt: skip
            except DataError:  # a DataError is a ValueError too: its own message stands
                raise
            except (IndexError, ValueError):
                raise DataError(f"split file {p} line {n}: expected split,season,roi,patch, "
                                f"got {row}") from None  # fmt: skip
        return "csv", out
    if len(rows[0]) == 5 and rows[0][0].strip() in ("1", "2", "3"):
        listed: list[FileListRow] = []
        for n, row in enumerate(rows, start=1):
            if len(row) != 5:
                raise DataError(f"split file {p} line {n}: expected 5 fields (split, s1 folder, "
                                f"s2 folder, s2 cloudy folder, file name), got {len(row)}")  # fmt: skip
            split = _split_name(row[0], p, n)
            s1, s2, s2_cloudy, name = (c.strip() for c in row[1:])
            listed.append((split, s1, s2, s2_cloudy, name))
        return "filelist", listed
    raise DataError(f"split file {p}: unknown format; expected a CSV with header "
                    "split,season,roi,patch or a DSen2-CR file list (split, s1 folder, s2 folder, "
                    "s2 cloudy folder, file name)")  # fmt: skip


def _is_patch_path(line: str) -> bool:
    return "," not in line and "\t" not in line and line.lower().endswith(".tif")


def _patch_of(line: str, path: Path, n: int) -> PatchKey:
    """(season, roi, patch) of one line of a per-patch list."""
    name = line.replace("\\", "/").rsplit("/", 1)[-1]
    m = PUBLISHED_NAME.match(name)
    if m is not None:
        return SEASON_OF_FOLDER[m.group(1)], int(m.group(3)), int(m.group(4))
    if FLAT_NAME.match(name):
        return parse_flat_name(name)
    raise DataError(f"split file {path} line {n}: {line!r} is not a SEN12MS-CR patch file name "
                    "(e.g. ROIs1158_spring_s2_cloudy/s2_cloudy_31/"
                    "ROIs1158_spring_s2_cloudy_31_p30.tif)")  # fmt: skip


def select_triplets(
    root: str | os.PathLike[str],
    split: str = "train",
    split_file: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
) -> tuple[list[Triplet], SplitReport]:
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
    report: SplitReport = {"incomplete": 0, "incomplete_example": None, "missing": 0}
    wanted: set[PatchKey] | None = None  # None: the default split
    if split_file is not None:
        parsed = read_split_file(split_file)
        if parsed[0] == "filelist":
            return _select_filelist(Path(root), split, parsed[1], report)
        if parsed[0] == "patches":
            wanted = set(parsed[1])  # the list is the split
        else:
            wanted = {(s, r, p) for sp, s, r, p in parsed[1] if split in ("all", sp)}
    index = build_index(root, cache_dir=cache_dir, refresh=refresh)
    report["incomplete"] = len(index.incomplete)
    report["incomplete_example"] = index.incomplete[0] if index.incomplete else None
    if wanted is None:
        chosen = [t for t in index.triplets
                  if split == "all" or default_split(t.season, t.roi) == split]  # fmt: skip
        return chosen, report
    chosen = [t for t in index.triplets if (t.season, t.roi, t.patch) in wanted]
    missing = wanted - {(t.season, t.roi, t.patch) for t in chosen}
    report["missing"] = len(missing)
    if missing:
        ex = min(missing)
        log.warning("%d triplet(s) listed in %s for split %s are not under %s, e.g. %s roi %d "
                    "patch %d", len(missing), split_file, split, root, *ex)  # fmt: skip
    return chosen, report


def _select_filelist(
    root: Path, split: str, rows: list[FileListRow], report: SplitReport
) -> tuple[list[Triplet], SplitReport]:
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"SEN12MS-CR root {root} does not exist or is not a folder")
    listing: dict[str, set[str]] = {}
    chosen: list[Triplet] = []
    incomplete: list[IncompleteTriplet] = []
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
        season, roi, patch = parse_flat_name(name)
        if not all(present):
            incomplete.append({"season": season, "roi": roi, "patch": patch, "name": name,
                               "missing": [m for m, ok in zip(MODALITIES, present, strict=True) if not ok]})  # fmt: skip
            continue
        chosen.append(Triplet(season, roi, patch, str(root / d1 / name), str(root / d2 / name),
                              str(root / d3 / name)))  # fmt: skip
    report["incomplete"] = len(incomplete)
    report["incomplete_example"] = incomplete[0] if incomplete else None
    report_incomplete(incomplete, root)
    return chosen, report



def index_summary(
    root: str | os.PathLike[str],
    split_file: str | os.PathLike[str] | None = None,
    refresh: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> IndexSummary:
    """Build or refresh the index cache and summarise it (the ``dsen2cr index`` command).

    Returns:
        JSON-able dict: ``root``, ``layout``, ``cache`` (path), ``from_cache``, ``triplets``
        (total), ``splits`` ({split: {season: count}}), ``incomplete`` (count),
        ``incomplete_examples`` (up to 5), ``missing`` (split-file entries without files).
    """
    resolved = str(Path(root).expanduser().resolve())
    if split_file is not None and read_split_file(split_file)[0] == "filelist":
        splits: dict[str, dict[str, int]] = {}
        incomplete = 0
        for sp in ("train", "val", "test"):
            trips, rep = select_triplets(root, sp, split_file)
            splits[sp] = dict(Counter(t.season or "unknown" for t in trips))
            incomplete += rep["incomplete"]
        return {"root": resolved, "layout": "filelist", "cache": None, "from_cache": False,
                "triplets": sum(sum(v.values()) for v in splits.values()), "splits": splits,
                "incomplete": incomplete, "incomplete_examples": [], "missing": 0}  # fmt: skip
    index = build_index(root, cache_dir=cache_dir, refresh=refresh)
    if split_file is None:
        splits, missing = index.counts(), 0
    else:
        splits, missing = {}, 0
        # a per-patch list is one split: report it once, as "listed"
        names = (("listed",) if read_split_file(split_file)[0] == "patches"
                 else ("train", "val", "test"))  # fmt: skip
        for sp in names:
            trips, rep = select_triplets(root, "all" if sp == "listed" else sp, split_file,
                                         cache_dir)  # fmt: skip
            splits[sp] = dict(Counter(t.season or "unknown" for t in trips))
            missing += rep["missing"]
    return {"root": resolved, "layout": index.layout,
            "cache": str(index.cache_path) if index.cache_path else None,
            "from_cache": index.from_cache, "triplets": len(index.triplets), "splits": splits,
            "missing": missing, "incomplete": len(index.incomplete),
            "incomplete_examples": index.incomplete[:5]}  # fmt: skip
