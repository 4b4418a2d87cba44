"""The few TIFF structures the streaming COG writer needs: read tags, write IFD chains.

:mod:`dsen2cr.cog` lets GDAL encode everything that has a meaning (the GeoTIFF keys of a
CRS, GDAL's metadata and nodata tags, the codecs of the blocks) and only lays out the file
itself. This module reads the tags of a small GeoTIFF that GDAL wrote (:func:`read_tags`) and
writes image file directories (IFDs) in classic TIFF or BigTIFF (:func:`encode_ifd`), little
endian, following the TIFF 6.0 and BigTIFF specifications.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

# TIFF field types and their sizes in bytes (TIFF 6.0 section 2, BigTIFF adds 16, 17, 18)
BYTE, ASCII, SHORT, LONG, RATIONAL, UNDEFINED, DOUBLE, LONG8 = 1, 2, 3, 4, 5, 7, 12, 16
TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
             16: 8, 17: 8, 18: 8}  # fmt: skip
_FORMAT = {SHORT: "H", LONG: "I", LONG8: "Q", DOUBLE: "d"}

# tags the COG writer sets itself
NEW_SUBFILE_TYPE = 254
IMAGE_WIDTH = 256
IMAGE_LENGTH = 257
STRIP_OFFSETS = 273
ROWS_PER_STRIP = 278
STRIP_BYTE_COUNTS = 279
TILE_WIDTH = 322
TILE_LENGTH = 323
TILE_OFFSETS = 324
TILE_BYTE_COUNTS = 325
LAYOUT_TAGS = frozenset({NEW_SUBFILE_TYPE, IMAGE_WIDTH, IMAGE_LENGTH, STRIP_OFFSETS,
                         ROWS_PER_STRIP, STRIP_BYTE_COUNTS, TILE_WIDTH, TILE_LENGTH,
                         TILE_OFFSETS, TILE_BYTE_COUNTS})  # fmt: skip
"""Tags that describe where the pixels are, not what they mean."""
PIXEL_FORMAT_TAGS = frozenset({258, 259, 262, 277, 284, 317, 338, 339, 42113})
"""BitsPerSample, Compression, Photometric, SamplesPerPixel, PlanarConfiguration, Predictor,
ExtraSamples, SampleFormat and GDAL_NODATA: what an overview IFD repeats of its image."""


@dataclass(frozen=True)
class Entry:
    """One IFD entry: a tag, its field type, its value count and its value bytes (little
    endian, ``count * TYPE_SIZE[type]`` bytes)."""

    tag: int
    type: int
    count: int
    data: bytes

    @classmethod
    def of(cls, tag: int, type_: int, values: Sequence[int | float]) -> Entry:
        """An entry of numbers.

        Args:
            tag: the TIFF tag.
            type_: ``SHORT``, ``LONG``, ``LONG8`` or ``DOUBLE``.
            values: its values.

        Returns:
            The entry, values packed little endian.
        """
        return cls(tag, type_, len(values), struct.pack(f"<{len(values)}{_FORMAT[type_]}", *values))

    def numbers(self) -> tuple[int | float, ...]:
        """The values of a numeric entry."""
        fmt = {3: "H", 4: "I", 16: "Q", 12: "d", 11: "f", 1: "B", 8: "h", 9: "i", 17: "q"}[self.type]
        return struct.unpack(f"<{self.count}{fmt}", self.data)


def read_tags(buf: bytes | memoryview) -> dict[int, Entry]:
    """The entries of the first IFD of a little-endian TIFF or BigTIFF held in memory.

    Args:
        buf: the whole file (e.g. a GeoTIFF GDAL wrote into ``/vsimem/``).

    Raises:
        ValueError: not a little-endian TIFF.
    """
    b = bytes(buf[:16])
    if b[:2] != b"II":
        raise ValueError("not a little-endian TIFF")
    version = struct.unpack_from("<H", b, 2)[0]
    if version == 42:
        big, (ifd,) = False, struct.unpack_from("<I", b, 4)
        count_fmt, entry_fmt, entry_size, inline = "<H", "<HHI4s", 12, 4
    elif version == 43:
        big, (ifd,) = True, struct.unpack_from("<Q", b, 8)
        count_fmt, entry_fmt, entry_size, inline = "<Q", "<HHQ8s", 20, 8
    else:
        raise ValueError(f"not a TIFF (version {version})")
    (n,) = struct.unpack_from(count_fmt, buf, ifd)
    start = ifd + struct.calcsize(count_fmt)
    out: dict[int, Entry] = {}
    for i in range(n):
        tag, type_, count, raw = struct.unpack_from(entry_fmt, buf, start + i * entry_size)
        size = TYPE_SIZE.get(type_, 1) * count
        if size <= inline:
            data = raw[:size]
        else:
            (off,) = struct.unpack("<Q" if big else "<I", raw)
            data = bytes(buf[off : off + size])
        out[tag] = Entry(tag, type_, count, data)
    return out


def header(big: bool, first_ifd: int) -> bytes:
    """The file header pointing at the first IFD.

    Args:
        big: BigTIFF.
        first_ifd: offset of the first IFD, bytes.

    Returns:
        8 bytes (classic TIFF) or 16 bytes (BigTIFF), little endian.
    """
    if big:
        return b"II" + struct.pack("<HHHQ", 43, 8, 0, first_ifd)
    return b"II" + struct.pack("<HI", 42, first_ifd)


def _inline(big: bool) -> int:
    return 8 if big else 4


def ifd_size(entries: Sequence[Entry], big: bool) -> int:
    """The size of an IFD.

    Args:
        entries: its entries.
        big: BigTIFF layout.

    Returns:
        Bytes of the IFD with its out-of-line values (each padded to an even length).
    """
    fixed = (8 + 20 * len(entries) + 8) if big else (2 + 12 * len(entries) + 4)
    extra = sum(len(e.data) + len(e.data) % 2 for e in entries if len(e.data) > _inline(big))
    return fixed + extra


def encode_ifd(entries: Sequence[Entry], offset: int, next_ifd: int, big: bool) -> bytes:
    """An IFD placed at ``offset``, its values that do not fit the entry right after it.

    Args:
        entries: the entries (sorted by tag here, as TIFF requires).
        offset: where the IFD starts in the file (even).
        next_ifd: offset of the next IFD, 0 for the last.
        big: BigTIFF layout.

    Returns:
        :func:`ifd_size` bytes.
    """
    entries = sorted(entries, key=lambda e: e.tag)
    inline = _inline(big)
    fixed = ifd_size([Entry(e.tag, e.type, e.count, b"") for e in entries], big)
    table = [struct.pack("<Q" if big else "<H", len(entries))]
    values: list[bytes] = []
    at = offset + fixed
    for e in entries:
        if len(e.data) <= inline:
            field = e.data.ljust(inline, b"\0")
        else:
            field = struct.pack("<Q" if big else "<I", at)
            pad = e.data + b"\0" * (len(e.data) % 2)
            values.append(pad)
            at += len(pad)
        table.append(struct.pack("<HHQ" if big else "<HHI", e.tag, e.type, e.count) + field)
    table.append(struct.pack("<Q" if big else "<I", next_ifd))
    out = b"".join(table + values)
    assert len(out) == ifd_size(entries, big)
    return out
