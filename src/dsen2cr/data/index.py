"""Indexing a SEN12MS-CR root: one folder walk, cached.

Indexing walks the folders once with :func:`os.scandir` (no file is opened) and caches the result as
JSON, keyed on the root path and the modification times of every folder visited (adding, removing
or renaming a file changes its folder's mtime, so the cache is exact). The cache lives in
``ROOT/.dsen2cr/index.json`` when the root is writable, else in ``~/.cache/dsen2cr/``. The layouts
and file names are those of :mod:`dsen2cr.data.layout`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from dsen2cr.data.layout import (
    FLAT_FOLDERS,
    MODALITIES,
    PUBLISHED_NAME,
    SEASON_OF_FOLDER,
    SEASONS,
    Triplet,
    default_split,
    parse_flat_name,
)
from dsen2cr.errors import DataError
from dsen2cr.io import atomic_output

log = logging.getLogger(__name__)

INDEX_VERSION = 1


class _FileName(TypedDict, total=False):
    name: str
    """The file name (flattened layout and DSen2-CR file lists only)."""


class IncompleteTriplet(_FileName):
    """A (season, roi, patch) that lacks one or two of its three files: ``missing`` lists their
    modalities (``"s1"``, ``"s2"``, ``"s2_cloudy"``)."""

    season: str
    roi: int
    patch: int
    missing: list[str]


class _IndexLayout(TypedDict, total=False):
    names: list[str]
    """Flattened layout: the file names present in all three folders."""
    folders: list[str]
    """Published layout: the folders holding patches, relative to the root."""
    triplets: list[tuple[str, int, int, int, int, int]]
    """Published layout: (season, roi, patch, s1 folder, s2 folder, s2 cloudy folder), the
    folders as positions in ``folders`` (JSON arrays in the cache file)."""
    incomplete: list[IncompleteTriplet]


class _IndexCache(_IndexLayout):
    """The content of the index cache file (JSON)."""

    version: int
    root: str
    layout: str
    dirs: dict[str, int]
    """Folder (relative to the root) -> modification time in ns."""


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
    incomplete: list[IncompleteTriplet] = field(default_factory=list)
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


def cache_path(root: Path, cache_dir: str | os.PathLike[str] | None) -> Path:
    """The index cache file of ``root``: in ``cache_dir``, else ``ROOT/.dsen2cr/index.json`` when
    the root is writable, else ``~/.cache/dsen2cr/index-<digest>.json``."""
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
    flat_dirs = [FLAT_FOLDERS[mod] for mod in MODALITIES]
    if all((root / d).is_dir() for d in flat_dirs):
        names: dict[str, list[str]] = {}
        for mod in MODALITIES:
            d = FLAT_FOLDERS[mod]
            dirs[d] = os.stat(root / d).st_mtime_ns
            with os.scandir(root / d) as it:
                names[mod] = sorted(e.name for e in it if e.name.endswith(".tif")
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
            key = (SEASON_OF_FOLDER[m.group(1)], int(m.group(3)), int(m.group(4)))
            slot = files.setdefault(key, {})
            if m.group(2) in slot:
                log.warning("duplicate %s file %s ignored (first: %s)", m.group(2), sub,
                            slot[m.group(2)])  # fmt: skip
                continue
            slot[m.group(2)] = rel
    return "published", dirs, files, {}


def report_incomplete(incomplete: Sequence[IncompleteTriplet], root: Path) -> None:
    """Log how many triplets under ``root`` are incomplete, with one example."""
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
    cache = cache_path(root, cache_dir)
    if cache is not None and not refresh and cache.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            cached = json.loads(cache.read_text())
            if (cached.get("version") == INDEX_VERSION and cached.get("root") == str(root)
                    and _stat_dirs(root, cached["dirs"])):  # fmt: skip
                index = _index_from_json(root, cached)
                index.from_cache, index.cache_path = True, cache
                report_incomplete(index.incomplete, root)
                return index
    if cache is not None and cache.parent == root / ".dsen2cr":
        # create it before the walk so writing the cache does not change the root's mtime
        with contextlib.suppress(OSError):
            cache.parent.mkdir(exist_ok=True)
    layout, dirs, files, names = _walk(root)
    data: _IndexCache = {"version": INDEX_VERSION, "root": str(root), "layout": layout,
                         "dirs": dirs}  # fmt: skip
    if layout == "flat":
        sets = {m: set(names[m]) for m in MODALITIES}
        common = set.intersection(*sets.values())
        everything = set.union(*sets.values())
        data["names"] = sorted(common, key=lambda n: (*parse_flat_name(n), n))
        data["incomplete"] = [
            {"season": s, "roi": r, "patch": p, "name": n,
             "missing": [m for m in MODALITIES if n not in sets[m]]}
            for n in sorted(everything - common) for s, r, p in [parse_flat_name(n)]
        ]  # fmt: skip
    else:
        folder_ids: dict[str, int] = {}
        rows: list[tuple[str, int, int, int, int, int]] = []
        incomplete: list[IncompleteTriplet] = []
        for key in sorted(files):
            slot = files[key]
            if len(slot) < 3:
                incomplete.append({"season": key[0], "roi": key[1], "patch": key[2],
                                   "missing": [m for m in MODALITIES if m not in slot]})  # fmt: skip
                continue
            i1, i2, i3 = (folder_ids.setdefault(slot[m], len(folder_ids)) for m in MODALITIES)
            rows.append((*key, i1, i2, i3))  # a JSON array in the cache, as a list would be
        data["folders"] = list(folder_ids)
        data["triplets"] = rows
        data["incomplete"] = incomplete
    index = _index_from_json(root, data)
    if cache is not None:
        try:
            with atomic_output(cache) as tmp:
                tmp.write_text(json.dumps(data, separators=(",", ":")))
            index.cache_path = cache
        except OSError as exc:
            log.warning("could not write the index cache %s: %s", cache, exc)
    report_incomplete(index.incomplete, root)
    return index


def _index_from_json(root: Path, data: _IndexCache) -> Index:
    if data["layout"] == "flat":
        triplets = [
            Triplet(*parse_flat_name(n), *(str(root / FLAT_FOLDERS[m] / n) for m in MODALITIES))
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
