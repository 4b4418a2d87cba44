"""Cloud-Optimized GeoTIFFs written block by block while the tiles of a scene arrive.

:class:`CogWriter` takes pieces of a raster in any order, from any number of threads. Every
512 x 512 block that is complete is compressed at once, in the thread that completed it, with
GDAL's own codec (:class:`BlockEncoder`: a one-block GeoTIFF in memory), and reduced 2 x 2 into
its piece of the next overview level (a nodata-aware mean for reflectances, a mode for the cloud
mask), which completes the overview blocks in turn. The compressed blocks go to a staging file
beside the output. :meth:`CogWriter.close` then lays out the COG: header, GDAL's structural
metadata, one IFD per level (tags GDAL wrote for the CRS, metadata and nodata, see
:mod:`dsen2cr.tiff`), the overview blocks from the smallest level up and the
full-resolution blocks last, each with GDAL's 4-byte size leader and trailer, copied from the
staging file in the kernel (``os.copy_file_range``). So the scene is compressed exactly once,
on as many threads as write into the writer, while the network runs, and nothing is read back
and decoded: GDAL's COG driver needs the whole raster first, then decodes and recompresses it.

The layout is GDAL's COG layout (``LAYOUT=COG`` for GDAL, valid for ``rio cogeo validate``):
IFDs before the data, blocks in row-major order, overviews before the full resolution. Overview
levels follow the COG driver's ``AUTO`` rule: halve (rounding up) until the level fits in one
block. Host memory: the blocks that are partly filled (none when the pieces are whole blocks)
plus, per overview level, the pieces of one row of its blocks.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.windows import Window

from dsen2cr import tiff
from dsen2cr.io import no_georef_warning, writing
from dsen2cr.tiff import Entry

COMPRESSIONS = ("DEFLATE", "ZSTD", "LZW", "NONE")
"""Compressions of the COG outputs; DEFLATE is the most widely readable, ZSTD writes faster."""
COG_BLOCKSIZE = 512
"""Block (tile) size of the COG outputs, in pixels."""
ZSTD_LEVEL = 3
"""ZSTD level of the outputs: zstd's own default (GDAL's 9 took 2.7x as long for 8 % less)."""
GHOST = (b"LAYOUT=IFDS_BEFORE_DATA\nBLOCK_ORDER=ROW_MAJOR\nBLOCK_LEADER=SIZE_AS_UINT4\n"
         b"BLOCK_TRAILER=LAST_4_BYTES_REPEATED\nKNOWN_INCOMPATIBLE_EDITION=NO\n ")  # fmt: skip
"""GDAL's structural metadata of a COG (the "ghost area" after the TIFF header)."""
BIGTIFF_FROM = 2**32 - 2**20
"""File size (bytes) from which a COG is written as BigTIFF (classic TIFF offsets are 32-bit)."""


def overview_sizes(height: int, width: int, block: int = COG_BLOCKSIZE) -> list[tuple[int, int]]:
    """(height, width) of each overview level: halve, rounding up, until it fits in one block.

    Level ``k`` (from 1) has decimation factor ``2**k`` and size ``ceil(size / 2**k)``, as GDAL
    computes overview sizes.

    Args:
        height: rows of the full resolution, pixels.
        width: columns of the full resolution, pixels.
        block: block size, pixels.

    Returns:
        ``(height, width)`` of levels 1, 2, ... (empty when the raster fits in one block).
    """
    sizes = []
    h, w = height, width
    while max(h, w) > block:
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    return sizes


def _pad_even(a: np.ndarray, fill: float) -> np.ndarray:
    h, w = a.shape[-2:]
    if h % 2 == 0 and w % 2 == 0:
        return a
    return np.pad(a, ((0, 0), (0, h % 2), (0, w % 2)), constant_values=fill)


def _quads(a: np.ndarray) -> list[np.ndarray]:
    """The four pixels of every 2 x 2 block as strided views (C, H / 2, W / 2) (H, W even)."""
    return [a[:, i::2, j::2] for i in (0, 1) for j in (0, 1)]


def reduce_average(a: np.ndarray, nodata: float) -> np.ndarray:
    """2 x 2 mean of valid pixels, rounded half up (integers); nodata where all four are nodata.

    Sums four strided views (7x faster than a reshaped ``sum(axis=(2, 4))`` on uint16).

    Args:
        a: (C, H, W) array, integer or float; an odd H or W is padded with nodata.
        nodata: value of pixels left out of the mean (NaN for float rasters whose nodata is
            NaN).

    Returns:
        (C, ceil(H / 2), ceil(W / 2)) array of ``a``'s dtype.
    """
    quads = _quads(_pad_even(a, nodata))
    integer = np.issubdtype(a.dtype, np.integer)
    if not integer:
        acc: type = np.float64
    else:  # four uint8 / uint16 values fit a uint32 sum
        acc = np.uint32 if a.dtype.kind == "u" and a.dtype.itemsize <= 2 else np.int64
    total: np.ndarray = np.zeros(quads[0].shape, acc)
    count = np.zeros(quads[0].shape, np.uint8)
    nan = not integer and math.isnan(nodata)
    for q in quads:
        valid = ~np.isnan(q) if nan else q != nodata
        total += q if nodata == 0 and integer else np.where(valid, q, 0).astype(acc, copy=False)
        count += valid
    safe: np.ndarray = np.maximum(count, 1).astype(acc)
    mean = (total + safe // 2) // safe if integer else total / safe
    return np.where(count > 0, mean, nodata).astype(a.dtype)


MODE_PRIORITY = (1, -1, 0)
"""Mask values in the order that breaks ties of :func:`reduce_mode`: cloud, shadow, clear."""


def reduce_mode(a: np.ndarray, nodata: float, priority: tuple[int, ...] = MODE_PRIORITY) -> np.ndarray:
    """2 x 2 mode of a class raster (the cloud mask: 1 cloud, -1 shadow, 0 clear), ignoring
    nodata.

    Ties go to the class first in ``priority`` (for the mask :data:`MODE_PRIORITY`: cloud, then
    shadow, then clear), so a cloud seen in one of two pixels survives the reduction. All four
    nodata gives nodata.

    Args:
        a: (C, H, W) integer classes; an odd H or W is padded with nodata.
        nodata: the nodata value.
        priority: every class but nodata, in the order that breaks ties.

    Returns:
        (C, ceil(H / 2), ceil(W / 2)) array of ``a``'s dtype.
    """
    quads = _quads(_pad_even(a, nodata))
    counts = np.zeros((len(priority), *quads[0].shape), np.uint8)
    for k, v in enumerate(priority):
        for q in quads:
            counts[k] += q == v
    best = np.asarray(priority, a.dtype)[counts.argmax(axis=0)]
    return np.where(counts.sum(axis=0) > 0, best, np.asarray(nodata, a.dtype)).astype(a.dtype)


OVERVIEW_REDUCTIONS = ("average", "mode")
"""The overview reductions of :class:`CogProfile`: :func:`reduce_average`, :func:`reduce_mode`."""


@dataclass(frozen=True)
class CogProfile:
    """What a COG holds and how it is encoded.

    Attributes:
        count: bands.
        dtype: numpy dtype name of the pixels (``"uint16"``, ``"int8"``, ...).
        nodata: nodata value (left out of the overviews, fills partial edge blocks).
        compress: one of :data:`COMPRESSIONS`.
        predictor: differencing before compression (horizontal for integers, floating point
            for floats).
        overviews: ``"average"`` (:func:`reduce_average`) or ``"mode"`` (:func:`reduce_mode`).
        crs: coordinate reference system, or None (no georeferencing).
        transform: affine transform of the full resolution (ignored without ``crs``).
        tags: dataset metadata.
        descriptions: band descriptions (empty: none).
        block: block size in pixels.
        mode_bands: with ``overviews="average"``, bands of classes reduced by their mode instead
            (:func:`reduce_mode` with ``mode_priority``), e.g. a provenance band.
        mode_priority: the classes reduced by their mode (every band with ``overviews="mode"``,
            else ``mode_bands``) in the order that breaks ties.
    """

    count: int
    dtype: str
    nodata: float
    compress: str = "DEFLATE"
    predictor: bool = False
    overviews: str = "average"
    crs: CRS | None = None
    transform: Affine = field(default_factory=Affine.identity)
    tags: dict[str, str] = field(default_factory=dict)
    descriptions: tuple[str, ...] = ()
    block: int = COG_BLOCKSIZE
    mode_bands: tuple[int, ...] = ()
    mode_priority: tuple[int, ...] = MODE_PRIORITY

    def reduce(self, a: np.ndarray) -> np.ndarray:
        """One 2 x 2 overview reduction of a block of this raster.

        Args:
            a: (count, h, w) pixels.

        Returns:
            (count, ceil(h / 2), ceil(w / 2)) of the same dtype (:attr:`overviews`' reduction,
            :attr:`mode_bands` by their mode).
        """
        if self.overviews == "mode":
            return reduce_mode(a, self.nodata, self.mode_priority)
        out = reduce_average(a, self.nodata)
        if self.mode_bands:
            idx = list(self.mode_bands)
            out[idx] = reduce_mode(a[idx], self.nodata, self.mode_priority)
        return out

    def __post_init__(self) -> None:
        if self.compress not in COMPRESSIONS:
            raise ValueError(f"compress must be one of {', '.join(COMPRESSIONS)}, got {self.compress!r}")
        if self.overviews not in OVERVIEW_REDUCTIONS:
            raise ValueError(f"unknown overview reduction {self.overviews!r}; expected one of {list(OVERVIEW_REDUCTIONS)}")

    def gtiff_options(self) -> dict[str, str | int]:
        """GDAL GTiff creation options of the pixel encoding (compression, predictor, level)."""
        opts: dict[str, str | int] = {"interleave": "pixel"}
        if self.compress != "NONE":
            opts["compress"] = self.compress
        if self.compress == "ZSTD":
            opts["zstd_level"] = ZSTD_LEVEL
        if self.predictor and self.compress != "NONE":  # horizontal, or floating point
            opts["predictor"] = 3 if np.dtype(self.dtype).kind == "f" else 2
        return opts

    def template_tags(self) -> dict[int, Entry]:
        """The tags GDAL writes for this profile (GeoTIFF keys, metadata, nodata, pixel format),
        read from a 1 x 1 GeoTIFF it writes in memory."""
        geo = {"crs": self.crs, "transform": self.transform} if self.crs is not None else {}
        with no_georef_warning(), MemoryFile() as mf:
            with mf.open(driver="GTiff", width=1, height=1, count=self.count, dtype=self.dtype,
                         nodata=self.nodata, tiled=True, blockxsize=16, blockysize=16,
                         **geo, **self.gtiff_options()) as ds:  # fmt: skip
                for i, d in enumerate(self.descriptions, start=1):
                    ds.set_band_description(i, d)
                if self.tags:
                    ds.update_tags(**self.tags)
            return tiff.read_tags(mf.getbuffer())


class BlockEncoder:
    """Compresses one block exactly as GDAL compresses a GeoTIFF block (its own codecs and
    predictor), through a one-block GeoTIFF in memory; safe to call from many threads (GDAL
    releases the GIL while it compresses).

    The one-block file is sparse (``SPARSE_OK``): GDAL then skips creating the block's empty
    content first (15 of the 25 ms of a 13-band block otherwise), but also leaves out a block
    that is all zeros; that block, the same every time, is encoded once without it and kept.
    """

    def __init__(self, profile: CogProfile) -> None:
        self.profile = profile
        self._options = profile.gtiff_options()
        self.zeros: bytes | None = None
        """The encoded all-zero block (set when the first one was encoded)."""

    def __call__(self, block: np.ndarray) -> bytes:
        """The compressed bytes of a (count, block, block) array."""
        p = self.profile
        if p.compress == "NONE":  # pixel interleaved, little endian
            return np.ascontiguousarray(block.transpose(1, 2, 0)).astype(f"<{block.dtype.str[1:]}").tobytes()
        if not block.any():
            if self.zeros is None:
                self.zeros = self._encode(block, sparse=False)
            return self.zeros
        return self._encode(block, sparse=True)

    def _encode(self, block: np.ndarray, sparse: bool) -> bytes:
        p = self.profile
        with MemoryFile() as mf:
            with mf.open(driver="GTiff", width=p.block, height=p.block, count=p.count,
                         dtype=p.dtype, tiled=True, blockxsize=p.block, blockysize=p.block,
                         transform=Affine(1, 0, 0, 0, -2, 0), sparse_ok=sparse,
                         **self._options) as ds:  # fmt: skip
                ds.write(block)
            buf = mf.getbuffer()
            tags = tiff.read_tags(buf)
            (offset,) = tags[tiff.TILE_OFFSETS].numbers()
            (size,) = tags[tiff.TILE_BYTE_COUNTS].numbers()
            if not size:
                raise RuntimeError("GDAL wrote an empty block")
            return bytes(buf[int(offset) : int(offset) + int(size)])


class _Partial:
    """A block that pieces are filling: its pixels and how many of them were written."""

    __slots__ = ("buf", "filled")

    def __init__(self, buf: np.ndarray) -> None:
        self.buf = buf
        self.filled = 0


class _Level:
    """The blocks of one resolution level, filled by pieces from any thread."""

    def __init__(self, height: int, width: int, profile: CogProfile) -> None:
        self.height, self.width = height, width
        self.block = profile.block
        self.count, self.dtype, self.nodata = profile.count, np.dtype(profile.dtype), profile.nodata
        self.nby, self.nbx = math.ceil(height / self.block), math.ceil(width / self.block)
        self.stored: dict[tuple[int, int], tuple[int, int]] = {}
        """(block row, block column) -> (offset of its record in the staging file, record size)."""
        self._pending: dict[tuple[int, int], _Partial] = {}
        self._lock = threading.Lock()

    def shape(self, by: int, bx: int) -> tuple[int, int]:
        """Pixels of block (by, bx) inside the raster."""
        b = self.block
        return min(b, self.height - by * b), min(b, self.width - bx * b)

    def put(self, data: np.ndarray, row: int, col: int) -> list[tuple[int, int, np.ndarray]]:
        """Place a (count, h, w) piece at (row, col); returns the blocks it completed."""
        b = self.block
        h, w = data.shape[-2:]
        if row < 0 or col < 0 or row + h > self.height or col + w > self.width:
            raise ValueError(f"piece {h}x{w} at ({row}, {col}) outside the {self.height}x{self.width} raster")
        done: list[tuple[int, int, np.ndarray]] = []
        for by in range(row // b, (row + h - 1) // b + 1):
            for bx in range(col // b, (col + w - 1) // b + 1):
                bh, bw = self.shape(by, bx)
                r0, r1 = max(row, by * b), min(row + h, by * b + bh)
                c0, c1 = max(col, bx * b), min(col + w, bx * b + bw)
                piece = data[:, r0 - row : r1 - row, c0 - col : c1 - col]
                if (r1 - r0, c1 - c0) == (bh, bw):
                    done.append((by, bx, piece))
                    continue
                with self._lock:
                    entry = self._pending.get((by, bx))
                    if entry is None:
                        entry = self._pending[(by, bx)] = _Partial(np.empty((self.count, bh, bw), self.dtype))
                buf = entry.buf
                buf[:, r0 - by * b : r1 - by * b, c0 - bx * b : c1 - bx * b] = piece
                with self._lock:  # counted after the copy: complete means every copy is done
                    entry.filled += (r1 - r0) * (c1 - c0)
                    if entry.filled == bh * bw:
                        del self._pending[(by, bx)]
                        done.append((by, bx, buf))
        return done

    def complete(self) -> bool:
        """Every block was written."""
        return len(self.stored) == self.nby * self.nbx


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError("write returned 0 bytes")
        view, offset = view[n:], offset + n


def _copy_range(src: int, dst: int, src_off: int, dst_off: int, size: int) -> None:
    """Copy bytes between files in the kernel where it can, else through user space."""
    while size > 0:
        try:
            n = os.copy_file_range(src, dst, size, src_off, dst_off)
        except OSError:
            n = 0
        if n <= 0:  # not supported here (or nothing copied): read and write
            chunk = os.pread(src, min(size, 64 << 20), src_off)
            if not chunk:
                raise OSError(f"staging file ended {size} bytes early")
            _pwrite_all(dst, chunk, dst_off)
            n = len(chunk)
        src_off, dst_off, size = src_off + n, dst_off + n, size - n


class CogWriter:
    """A Cloud-Optimized GeoTIFF written block by block (see the module docs).

    Use as a context manager: on success the file is laid out at ``path`` when the block ends;
    on an error ``path`` and the staging file are removed.

    Args:
        path: the COG to write (for outputs, the caller's staging name; see
            :func:`dsen2cr.io.atomic_output`).
        height: rows of the raster.
        width: columns of the raster.
        profile: bands, dtype, encoding, georeferencing and metadata.
        staging: where the compressed blocks wait (default: beside ``path``, ``.blocks`` added).
        final: the output's final name, for the :class:`~dsen2cr.errors.WriteError` of a failed
            write (a full disk, a quota, a file-size limit: :func:`dsen2cr.io.writing`).
    """

    def __init__(self, path: str | os.PathLike[str], height: int, width: int, profile: CogProfile,
                 staging: str | os.PathLike[str] | None = None,
                 final: str | os.PathLike[str] | None = None) -> None:  # fmt: skip
        self.path = Path(path)
        self.final = Path(final) if final is not None else self.path
        self.profile = profile
        self.levels = [_Level(height, width, profile)]
        self.levels += [_Level(h, w, profile) for h, w in overview_sizes(height, width, profile.block)]
        self.encoder = BlockEncoder(profile)
        self.staging = Path(staging) if staging is not None else self.path.with_name(self.path.name + ".blocks")
        with writing(self.final, self.staging):
            self._fd = os.open(self.staging, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._end = 0
        self._lock = threading.Lock()
        self.seconds = {"encode": 0.0, "overviews": 0.0, "layout": 0.0}
        """Thread-seconds spent compressing blocks, reducing overviews, laying out the file."""

    def __enter__(self) -> CogWriter:
        return self

    def add_tags(self, **tags: str) -> None:
        """Metadata known only once the pixels are written (laid out by :meth:`close`)."""
        self.profile = dataclasses.replace(self.profile, tags={**self.profile.tags, **tags})

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, data: np.ndarray, row: int, col: int) -> None:
        """Write a piece of the full resolution (thread-safe; every pixel exactly once). Blocks
        it completes are compressed in the calling thread.

        Args:
            data: (count, h, w) pixels (converted to the profile's dtype).
            row: row of its top-left pixel, pixels.
            col: column of its top-left pixel, pixels.

        Raises:
            ValueError: a band count other than the profile's, or a piece outside the raster.
        """
        if data.shape[0] != self.profile.count:
            raise ValueError(f"expected {self.profile.count} bands, got {data.shape[0]}")
        self._put(0, np.asarray(data, self.levels[0].dtype), row, col)

    def _put(self, k: int, data: np.ndarray, row: int, col: int) -> None:
        for by, bx, block in self.levels[k].put(data, row, col):
            self._finish(k, by, bx, block)

    def _finish(self, k: int, by: int, bx: int, block: np.ndarray) -> None:
        level = self.levels[k]
        t0 = time.perf_counter()
        full = block
        b = self.profile.block
        if block.shape[1:] != (b, b):  # edge blocks are stored whole, padded with nodata
            full = np.full((level.count, b, b), self.profile.nodata, level.dtype)
            full[:, : block.shape[1], : block.shape[2]] = block
        payload = self.encoder(full)
        record = struct.pack("<I", len(payload)) + payload + payload[-4:].rjust(4, b"\0")
        with self._lock:
            offset, self._end = self._end, self._end + len(record)
        with writing(self.final, self.staging):
            _pwrite_all(self._fd, record, offset)
        level.stored[(by, bx)] = (offset, len(record))
        t1 = time.perf_counter()
        piece = None
        if k + 1 < len(self.levels):
            if payload is self.encoder.zeros:  # all zeros (the empty parts of a scene): so is its piece
                piece = np.zeros((level.count, -(-block.shape[1] // 2), -(-block.shape[2] // 2)),
                                 level.dtype)  # fmt: skip
            else:
                piece = self.profile.reduce(block)
        with self._lock:
            self.seconds["encode"] += t1 - t0
            self.seconds["overviews"] += time.perf_counter() - t1
        if piece is not None:
            self._put(k + 1, piece, by * b // 2, bx * b // 2)

    def _ifd_entries(self, template: dict[int, Entry], k: int, offsets: list[int],
                     counts: list[int], big: bool) -> list[Entry]:  # fmt: skip
        level = self.levels[k]
        keep = [e for t, e in template.items() if t not in tiff.LAYOUT_TAGS]
        if k > 0:  # overviews repeat the pixel format, not the georeferencing or metadata
            keep = [e for e in keep if e.tag in tiff.PIXEL_FORMAT_TAGS]
        wide = tiff.LONG8 if big else tiff.LONG
        b = self.profile.block
        return [
            *keep,
            *([Entry.of(tiff.NEW_SUBFILE_TYPE, tiff.LONG, [1])] if k > 0 else []),
            Entry.of(tiff.IMAGE_WIDTH, tiff.LONG, [level.width]),
            Entry.of(tiff.IMAGE_LENGTH, tiff.LONG, [level.height]),
            Entry.of(tiff.TILE_WIDTH, tiff.SHORT, [b]),
            Entry.of(tiff.TILE_LENGTH, tiff.SHORT, [b]),
            Entry.of(tiff.TILE_OFFSETS, wide, offsets),
            Entry.of(tiff.TILE_BYTE_COUNTS, wide, counts),
        ]

    def _layout(self, big: bool, template: dict[int, Entry]) -> tuple[bytes, list[tuple[int, int, int]], int]:
        """The bytes before the data (header, ghost area, IFDs), the copies
        ``(staging offset, file offset, size)`` of the block records, and the file size."""
        n = len(self.levels)
        head = len(tiff.header(big, 0))
        ghost = b"GDAL_STRUCTURAL_METADATA_SIZE=%06d bytes\n" % len(GHOST) + GHOST
        zeros = [[0] * (lv.nby * lv.nbx) for lv in self.levels]
        sizes = [tiff.ifd_size(self._ifd_entries(template, k, zeros[k], zeros[k], big), big) for k in range(n)]
        first = head + len(ghost) + (head + len(ghost)) % 2
        starts = [first + sum(sizes[:k]) for k in range(n)]
        at = starts[-1] + sizes[-1]
        copies: list[tuple[int, int, int]] = []
        offsets: list[list[int]] = [[] for _ in range(n)]
        counts: list[list[int]] = [[] for _ in range(n)]
        for k in reversed(range(n)):  # smallest overview first, full resolution last
            lv = self.levels[k]
            for by in range(lv.nby):
                for bx in range(lv.nbx):
                    src, size = lv.stored[(by, bx)]
                    copies.append((src, at, size))
                    offsets[k].append(at + 4)  # after the size leader
                    counts[k].append(size - 8)  # without leader and trailer
                    at += size
        parts = [tiff.header(big, first), ghost, b"\0" * (first - head - len(ghost))]
        for k in range(n):
            entries = self._ifd_entries(template, k, offsets[k], counts[k], big)
            parts.append(tiff.encode_ifd(entries, starts[k], starts[k + 1] if k + 1 < n else 0, big))
        return b"".join(parts), copies, at

    def close(self) -> None:
        """Lay out the COG at :attr:`path` from the staged blocks and remove the staging file.

        Raises:
            RuntimeError: a block was never written (a bug of the caller).
        """
        if self._fd < 0:
            return
        t0 = time.perf_counter()
        try:
            for k, lv in enumerate(self.levels):
                if not lv.complete():
                    raise RuntimeError(f"COG level {k}: {lv.nby * lv.nbx - len(lv.stored)} block(s) never written")
            template = self.profile.template_tags()
            prefix, copies, size = self._layout(False, template)
            if size >= BIGTIFF_FROM:  # classic TIFF offsets are 32-bit
                prefix, copies, size = self._layout(True, template)
            with writing(self.final, self.path):
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    _pwrite_all(fd, prefix, 0)
                    for src, dst, n in _coalesce(copies):
                        _copy_range(self._fd, fd, src, dst, n)
                finally:
                    os.close(fd)  # reports what the file system could not write, on some
        except BaseException:
            self.abort()
            raise
        self._release()
        self.seconds["layout"] += time.perf_counter() - t0

    def _release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.staging.unlink(missing_ok=True)

    def abort(self) -> None:
        """Remove the staging file and the output (after an error)."""
        self._release()
        self.path.unlink(missing_ok=True)


def _coalesce(copies: list[tuple[int, int, int]]) -> Iterator[tuple[int, int, int]]:
    """Merge copies that are contiguous in both files."""
    cur: list[int] | None = None
    for src, dst, n in copies:
        if cur is not None and cur[0] + cur[2] == src and cur[1] + cur[2] == dst:
            cur[2] += n
            continue
        if cur is not None:
            yield cur[0], cur[1], cur[2]
        cur = [src, dst, n]
    if cur is not None:
        yield cur[0], cur[1], cur[2]


def write_cog(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    compress: str = "DEFLATE",
    predictor: bool = False,
    overviews: str = "average",
    nodata: float | None = None,
    workers: int | None = None,
) -> None:
    """Copy a raster into a Cloud-Optimized GeoTIFF through :class:`CogWriter`.

    Args:
        src: any raster GDAL reads (its metadata, band descriptions and georeferencing are kept).
        dst: the COG to write (512 x 512 blocks, internal overviews).
        compress: ``DEFLATE``, ``ZSTD``, ``LZW`` or ``NONE``.
        predictor: horizontal differencing before compression (for integer rasters).
        overviews: ``"average"`` (reflectances) or ``"mode"`` (the cloud mask).
        nodata: value left out of the overviews (default: the source's, else 0).
        workers: threads reading and compressing strips (default: the CPU count).
    """
    with rasterio.open(src) as ds:
        profile = CogProfile(
            count=ds.count, dtype=ds.dtypes[0], compress=compress, predictor=predictor,
            nodata=nodata if nodata is not None else (ds.nodata if ds.nodata is not None else 0),
            overviews=overviews, crs=ds.crs, transform=ds.transform, tags=dict(ds.tags()),
            descriptions=tuple(d or "" for d in ds.descriptions) if any(ds.descriptions) else (),
        )  # fmt: skip
        height, width = ds.height, ds.width
    rows = COG_BLOCKSIZE

    def strip(r: int) -> None:
        with rasterio.open(src) as ds:  # one handle per thread: GDAL handles are not thread-safe
            cog.write(ds.read(window=Window(0, r, width, min(rows, height - r))), r, 0)

    with CogWriter(dst, height, width, profile) as cog, \
         concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:  # fmt: skip
        for job in [pool.submit(strip, r) for r in range(0, height, rows)]:
            job.result()
