"""Which Sentinel-1 image goes with which Sentinel-2 scene, checked, never by position.

Two ways to say it:

* a pairs file (``dsen2cr predict --pairs FILE``): a CSV with the header ``s2,s1`` and an
  optional ``out`` column, one scene per row; relative paths are relative to the CSV's folder;
  an empty ``s1`` means none (optical-only weights);
* S2 and S1 paths or globs: each S2 scene gets the S1 image whose footprint covers the largest
  part of its own. Footprints are the rasters' bounding boxes, compared in the S2 CRS (a nodata
  wedge of an S1 GRD image counts as covered). An S2 scene that no S1 image overlaps gets no S1
  and is reported, never silently given the next file of a sorted list.
"""

from __future__ import annotations

import codecs
import csv
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from rasterio.coords import BoundingBox
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from dsen2cr.errors import DataError, DSen2CRError, InputNotFoundError, one_line
from dsen2cr.io import open_raster
from dsen2cr.scene.sentinel2 import open_s2

__all__ = ["Pair", "expand_inputs", "input_stem", "pair_by_footprint", "read_pairs"]


@dataclass(frozen=True)
class Pair:
    """One scene of a batch.

    Attributes:
        s2: the cloudy Sentinel-2 input.
        s1: its Sentinel-1 image, or None.
        out: the output file, or None (``<out folder>/<name>_dsen2cr.tif``).
        note: why there is no S1 (``""`` when there is one or none was asked for).
        overlap: fraction of the S2 footprint the S1 footprint covers (None: not checked).
        error: why the scene cannot be predicted at all (its S2 input is unreadable), or ``""``.
    """

    s2: Path
    s1: Path | None = None
    out: Path | None = None
    note: str = ""
    overlap: float | None = None
    error: str = ""

    @property
    def name(self) -> str:
        """The scene's name: the stem of its explicit output, else :func:`input_stem` of its S2
        input. Its mask and preview are named after it, and so is its manifest record."""
        return self.out.stem if self.out is not None else input_stem(self.s2)


def expand_inputs(items: Sequence[str | os.PathLike[str]], what: str) -> list[Path]:
    """Expand glob patterns (sorted) and keep plain paths.

    Args:
        items: paths or glob patterns (``*``, ``?``, ``[``).
        what: what they are, for the message (e.g. ``"S2 image"``).

    Returns:
        The paths, in the order given (each pattern's matches sorted).

    Raises:
        DataError: a pattern without matches.
    """
    out: list[Path] = []
    for item in items:
        s = str(item)
        if any(ch in s for ch in "*?["):
            matches = sorted(glob.glob(s))
            if not matches:
                raise DataError(f"no {what} matches the pattern {s}")
            out.extend(Path(m) for m in matches)
        else:
            out.append(Path(s))
    return out


def input_stem(path: Path) -> str:
    """An input's file name without its suffixes (``.zip``, ``.SAFE``, ``.tif``, ``.tiff``):
    what a batch names a scene's outputs after (:attr:`Pair.name`).

    Args:
        path: the S2 input (GeoTIFF, ``.SAFE`` folder or ``.zip``).

    Returns:
        E.g. ``"S2B_MSIL1C_..._T33UUP_..."`` for ``.../S2B_MSIL1C_..._T33UUP_....SAFE.zip``.
    """
    name = path.name
    for suffix in (".zip", ".SAFE", ".tiff", ".tif", ".TIF", ".TIFF"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def read_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    """The scenes of a pairs file (see the module docs).

    The file is read as UTF-8; a byte-order mark at its start (what spreadsheet programs save)
    is ignored.

    Args:
        path: the CSV file.

    Returns:
        One :class:`Pair` per row, paths relative to the file's folder resolved.

    Raises:
        DataError: a missing file, a folder, a file that is not UTF-8 text, a header without
            ``s2`` and ``s1``, a row with more cells than the header, an empty ``s2`` or an S2
            input listed twice (the line is named).
    """
    p = Path(path)
    if p.is_dir():
        raise DataError(f"pairs file {p} is a folder, expected a CSV file")
    if not p.is_file():
        raise InputNotFoundError(f"pairs file not found: {p}")
    not_text = DataError(f"pairs file {p} is not a text file (expected a UTF-8 CSV with the "
                         "columns s2,s1[,out])")  # fmt: skip
    with open(p, "rb") as fh:  # the start only: a large binary file is not read whole
        head = fh.read(_SNIFF_BYTES)
    try:  # a character cut at the end of the head is fine (final=False)
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        raise not_text from None
    if b"\0" in head:  # UTF-16 (another spreadsheet export) and binary data hold NUL bytes
        raise not_text
    try:
        with open(p, encoding="utf-8-sig", newline="") as fh:
            return _parse_pairs(p, fh)
    except UnicodeDecodeError:  # past the sniffed head
        raise not_text from None
    except csv.Error as exc:
        raise DataError(f"pairs file {p} is not a valid CSV file: {exc}") from None


_SNIFF_BYTES = 1 << 16
"""Bytes at the start of a pairs file checked for text before it is parsed."""


def _parse_pairs(p: Path, fh: TextIO) -> list[Pair]:
    """The pairs of the open CSV of the pairs file ``p`` (see :func:`read_pairs`)."""
    base = p.parent
    reader = csv.DictReader(fh)
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "s2" not in fields or "s1" not in fields:
        raise DataError(f"pairs file {p}: expected a header with columns s2,s1[,out], got "
                        f"{','.join(fields) or 'nothing'}")  # fmt: skip
    pairs: list[Pair] = []
    seen: dict[Path, int] = {}
    for n, raw in enumerate(reader, start=2):
        extra = raw.pop(None, None)  # DictReader gathers the cells past the header here
        if extra and any(c.strip() for c in extra):
            raise DataError(f"pairs file {p} line {n}: more cells than the header's "
                            f"{len(fields)} columns")  # fmt: skip
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue
        if not row.get("s2"):
            raise DataError(f"pairs file {p} line {n}: empty s2")
        s2 = base / row["s2"]
        if s2 in seen:
            raise DataError(f"pairs file {p} line {n}: {row['s2']} is also on line {seen[s2]}")
        seen[s2] = n
        s1 = base / row["s1"] if row.get("s1") else None
        out = base / row["out"] if row.get("out") else None
        pairs.append(Pair(s2, s1, out))
    if not pairs:
        raise DataError(f"pairs file {p} lists no scene")
    return pairs


def _area(b: tuple[float, float, float, float]) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def pair_by_footprint(s2: Sequence[Path], s1: Sequence[Path]) -> list[Pair]:
    """Give every S2 scene the S1 image that covers most of its footprint.

    Args:
        s2: the S2 inputs (GeoTIFF, ``.SAFE``, ``.zip``).
        s1: the candidate S1 GeoTIFFs (any CRS).

    Returns:
        One :class:`Pair` per S2 input, in order; ``s1`` is None with a ``note`` when no
        candidate overlaps the scene (or the scene has no georeferencing), and ``error`` is set
        for an S2 input that cannot be read. An unreadable S1 candidate is left out and named in
        the notes; one bad file never stops the others.
    """
    candidates: list[tuple[Path, CRS | None, BoundingBox]] = []
    unreadable: list[str] = []
    for path in s1:
        try:
            with open_raster(path, "S1 image") as src:
                candidates.append((path, src.crs, src.bounds))
        except DSen2CRError as exc:
            unreadable.append(one_line(exc))
    why = f" ({len(unreadable)} S1 file(s) unreadable, e.g. {unreadable[0]})" if unreadable else ""
    pairs = []
    for path in s2:
        try:
            scene = open_s2(path)
        except DSen2CRError as exc:
            pairs.append(Pair(path, error=one_line(exc)))
            continue
        grid = scene.grid
        if grid.crs is None:
            pairs.append(Pair(path, note="the S2 scene has no georeferencing; pair it with its S1 "
                              "in a pairs file"))  # fmt: skip
            continue
        t = grid.transform
        xs = (t.c, t.c + t.a * grid.width)
        ys = (t.f, t.f + t.e * grid.height)
        own = (min(xs), min(ys), max(xs), max(ys))
        best: tuple[float, Path] | None = None
        for cpath, crs, bounds in candidates:
            if crs is None:
                continue
            b = transform_bounds(crs, grid.crs, *bounds, densify_pts=21)
            inter = (max(own[0], b[0]), max(own[1], b[1]), min(own[2], b[2]), min(own[3], b[3]))
            frac = _area(inter) / max(_area(own), 1e-12)
            if frac > 0 and (best is None or frac > best[0]):
                best = (frac, cpath)
        if best is None:
            pairs.append(Pair(path, note=f"no S1 image overlaps its footprint{why}"))
        else:
            pairs.append(Pair(path, best[1], overlap=best[0]))
    return pairs
