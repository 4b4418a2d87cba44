"""The inputs of a scene, tile by tile: from files (S2 + S1 on its grid) or from arrays.

An *inputs* object has ``height``, ``width`` and ``open(with_s1=True, rows=False, clock=None)``,
a context manager that yields a function ``read(tile) -> TileInputs`` with its own GDAL handles
(one per thread). :class:`FileInputs` reads files; :class:`ArrayInputs` serves in-memory arrays
the same way (``predict_array``, tests).

Row chunks. Tiles overlap by their halo and straddle block borders, so reading tile by tile
decodes blocks several times unless GDAL's block cache keeps them, and a window touches only a
few blocks, too few for GDAL's decoding threads. With ``rows=True`` the file reader decodes
chunks of rows aligned to the file's blocks (:attr:`~dsen2cr.scene.sentinel2.S2Scene.block_rows`)
across the tiles' stripe (:func:`~dsen2cr.scene.tiling.plan_tiles`: the whole width of a
Sentinel-2 tile), each chunk once, with all blocks of a chunk decoded in parallel by GDAL
(``GDAL_NUM_THREADS``), and cuts the tiles out of them (:class:`RowChunks`); the S1 chunks come
from GDAL's warper on as many threads. On a 4096 x 4096 DEFLATE scene, decoding took 2.4 s tile
by tile (with a 512 MB block cache) and 1.2 s in row chunks on 2 cores. Tiles of a stripe come
in row-major order and share their rows, so a chunk is dropped once the tiles have moved below
it (or to another stripe). S2 chunks of a GeoTIFF stay in the file's dtype (uint16) and are
converted tile by tile (a ``.SAFE`` is read as float32). Host memory per reader is the chunks a
tile window spans: for a 10980-pixel-wide scene with 512 tiles (580-row windows), up to 3 chunks
of 512 rows of a uint16 GeoTIFF with S1, 0.57 GB, or up to 2 chunks of 1024 rows of a ``.SAFE``,
1.35 GB; stripes (at most :data:`~dsen2cr.scene.tiling.STRIPE_MAX` pixels wide) bound it for
wider scenes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from rasterio.windows import Window

from dsen2cr.cloudmask import ShadowStats, ShadowStatsAccumulator
from dsen2cr.scene.sentinel1 import S1Reader, S1Source
from dsen2cr.scene.sentinel2 import S2Reader, S2Scene
from dsen2cr.scene.stages import StageClock
from dsen2cr.scene.tiling import Tile, plan_tiles, stripe_columns
from dsen2cr.validity import s2_valid

CHUNK_ROWS_MIN = 256
"""Fewest rows a row chunk holds (files stored as strips of one or a few rows)."""
CHUNK_ROWS_MAX = 1024
"""Most rows a row chunk holds (a file stored as one huge strip must not fill the memory)."""


@dataclass
class TileInputs:
    """The inputs of one tile window.

    Attributes:
        s2: (13, h, w) float32 S2 L1C DN, offset removed, 0 where nodata.
        s1: (2, h, w) float32 S1 VV, VH in dB on the S2 grid (NaN where missing), or None.
        valid: (h, w) bool, False where S2 is nodata.
    """

    s2: np.ndarray
    s1: np.ndarray | None
    valid: np.ndarray


Reader = Callable[[Tile], TileInputs]


class SceneInputs(Protocol):
    """What the tiled pipeline reads from (see the module docs)."""

    height: int
    width: int

    def open(
        self, with_s1: bool = True, rows: bool = False, clock: StageClock | None = None,
        stripes: dict[int, tuple[int, int]] | None = None,
    ) -> contextlib.AbstractContextManager[Reader]:
        """A per-thread reader of tile windows, with its own GDAL handles.

        Args:
            with_s1: read S1 too (when the inputs have it).
            rows: read through row chunks (:class:`RowChunks`: tiles of a stripe must then
                come in row-major order).
            clock: counts the reader's ``decode`` (S2) and ``warp`` (S1) seconds.
            stripes: per stripe, the columns ``[start, end)`` its tiles' windows span
                (:func:`~dsen2cr.scene.tiling.stripe_columns`; default: the whole width).

        Returns:
            A context manager yielding ``read(tile) -> TileInputs``.
        """
        ...


def chunk_rows(block_rows: int, low: int = CHUNK_ROWS_MIN, high: int = CHUNK_ROWS_MAX) -> int:
    """Rows the row-chunk reader decodes at a time.

    Args:
        block_rows: the raster's block height, rows.
        low: fewest rows of a chunk.
        high: most rows of a chunk.

    Returns:
        ``block_rows``, or the smallest multiple of it that is at least ``low``; at most
        ``high``.
    """
    block = max(1, int(block_rows))
    return min(high, block if block >= low else block * -(-low // block))


class RowChunks:
    """Row chunks of an S2 (+ S1) reader across each stripe of tiles, decoded once each (see
    the module docs).

    Args:
        s2: the S2 reader.
        s1: the S1 reader on the S2 grid, or None.
        stripes: per stripe, the columns ``[start, end)`` its tiles' windows span
            (:func:`~dsen2cr.scene.tiling.stripe_columns`; default: the whole width).
        clock: counts ``decode`` (S2) and ``warp`` (S1) seconds.
    """

    def __init__(self, s2: S2Reader, s1: S1Reader | None,
                 stripes: dict[int, tuple[int, int]] | None = None,
                 clock: StageClock | None = None) -> None:  # fmt: skip
        self.s2, self.s1 = s2, s1
        scene = s2.scene
        self.height, self.width = scene.height, scene.width
        self.rows = chunk_rows(scene.block_rows)
        self.stripes = stripes or {}
        self.clock = clock or StageClock()
        self._chunks: dict[tuple[int, int], tuple[np.ndarray, np.ndarray | None]] = {}

    def _columns(self, stripe: int) -> tuple[int, int]:
        return self.stripes.get(stripe, (0, self.width))

    def _chunk(self, stripe: int, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        if (stripe, k) not in self._chunks:
            top = k * self.rows
            c0, c1 = self._columns(stripe)
            win = Window(c0, top, c1 - c0, min(self.rows, self.height - top))
            t0 = time.perf_counter()
            raw = self.s2.read_raw(win, native=True)
            t1 = time.perf_counter()
            sar = self.s1.read(win) if self.s1 is not None else None
            self.clock.add("decode", t1 - t0)
            if self.s1 is not None:
                self.clock.add("warp", time.perf_counter() - t1)
            self._chunks[(stripe, k)] = (raw, sar)
        return self._chunks[(stripe, k)]

    def read(self, t: Tile) -> TileInputs:
        """The inputs of a tile window.

        Args:
            t: the tile (the tiles of a stripe must come in row-major order; chunks above it
                are dropped).

        Returns:
            Its :class:`TileInputs` on ``t.window``: (13, h, w) DN, (2, h, w) dB or None,
            (h, w) validity.
        """
        r, c, h, w = t.window
        k0, k1 = r // self.rows, (r + h - 1) // self.rows
        for key in [key for key in self._chunks if key[0] != t.stripe or key[1] < k0]:
            del self._chunks[key]  # the tiles have moved below this chunk, or to another stripe
        c -= self._columns(t.stripe)[0]
        s2_parts, s1_parts = [], []
        for k in range(k0, k1 + 1):  # the tile's rows in each chunk
            raw, sar = self._chunk(t.stripe, k)
            top = k * self.rows
            rows = slice(max(r, top) - top, min(r + h, top + self.rows) - top)
            s2_parts.append(raw[:, rows, c : c + w])
            if sar is not None:
                s1_parts.append(sar[:, rows, c : c + w])
        dn, valid = self.s2.to_dn(_join(s2_parts))
        return TileInputs(dn, _join(s1_parts) if s1_parts else None, valid)


def _join(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-2)


class FileInputs:
    """An S2 scene (+ an S1 source on its grid) read tile by tile; see the module docs.

    Args:
        scene: the S2 scene.
        s1: the S1 source on its grid, or None.
        threads: GDAL warper threads of the S1 reprojection (decoding threads are
            ``GDAL_NUM_THREADS``, :func:`dsen2cr.io.scene_gdal`).
    """

    def __init__(self, scene: S2Scene, s1: S1Source | None, threads: int = 1) -> None:
        self.scene = scene
        self.s1 = s1
        self.threads = threads
        self.height, self.width = scene.height, scene.width

    @contextlib.contextmanager
    def open(self, with_s1: bool = True, rows: bool = False, clock: StageClock | None = None,
             stripes: dict[int, tuple[int, int]] | None = None) -> Iterator[Reader]:  # fmt: skip
        """A reader of tile windows, yielding ``read(tile) -> TileInputs``; the arguments are
        those of :meth:`SceneInputs.open`."""
        clock = clock or StageClock()
        with contextlib.ExitStack() as stack:
            s2r = stack.enter_context(self.scene.open())
            s1r = None
            if with_s1 and self.s1 is not None:
                s1r = stack.enter_context(self.s1.open(threads=self.threads))
            if rows:
                yield RowChunks(s2r, s1r, stripes, clock).read
                return

            def read(t: Tile) -> TileInputs:
                w = t.rio_window()
                with clock.time("decode"):
                    dn, valid = s2r.read(w)
                if s1r is None:
                    return TileInputs(dn, None, valid)
                with clock.time("warp"):
                    return TileInputs(dn, s1r.read(w), valid)

            yield read


class ArrayInputs:
    """In-memory inputs with the same interface as :class:`FileInputs`.

    Args:
        s2: (13, H, W) S2 DN (any dtype).
        s1: (2, H, W) S1 dB on the same grid, or None.
        valid: (H, W) bool valid-pixel map (default :func:`dsen2cr.validity.s2_valid` of
            ``s2``).
    """

    def __init__(self, s2: np.ndarray, s1: np.ndarray | None, valid: np.ndarray | None = None) -> None:
        self.s2, self.s1 = s2, s1
        self.valid = s2_valid(s2) if valid is None else valid
        self.height, self.width = s2.shape[-2:]

    @contextlib.contextmanager
    def open(self, with_s1: bool = True, rows: bool = False, clock: StageClock | None = None,
             stripes: dict[int, tuple[int, int]] | None = None) -> Iterator[Reader]:  # fmt: skip
        """A reader of tile windows (see :meth:`SceneInputs.open`).

        Args:
            with_s1: serve S1 too (when given).
            rows: ignored (no difference in memory).
            clock: ignored (nothing is decoded).
            stripes: ignored.

        Yields:
            ``read(tile) -> TileInputs``: float32 copies of the window, S2 0 where invalid.
        """

        def read(t: Tile) -> TileInputs:
            r, c, h, w = t.window
            dn = np.ascontiguousarray(self.s2[:, r : r + h, c : c + w], dtype=np.float32)
            valid = self.valid[r : r + h, c : c + w]
            dn = np.where(valid[None], dn, np.float32(0))
            sar = None
            if with_s1 and self.s1 is not None:
                sar = np.ascontiguousarray(self.s1[:, r : r + h, c : c + w], dtype=np.float32)
            return TileInputs(dn, sar, valid)

        yield read


def scene_shadow_statistics(inputs: SceneInputs, block: int = 1024) -> ShadowStats:
    """Shadow-test statistics of a whole scene over its valid pixels, read in row chunks.

    The cloud mask's shadow thresholds use the minimum and mean of CSI = (B8 + B11) / 2 and of
    B2 (reflectance) over the image. For a scene they are taken over the valid (not nodata)
    pixels; with no nodata this equals :func:`dsen2cr.cloudmask.shadow_statistics` of the whole
    scene (up to float round-off of the mean).

    Args:
        inputs: the scene (S2 only is read).
        block: side of the square blocks read at a time.

    Returns:
        :class:`dsen2cr.cloudmask.ShadowStats` with float fields.
    """
    acc = ShadowStatsAccumulator()
    # windows = cores (not shifted inwards at the border): each pixel exactly once
    tiles = [Tile(t.core, t.core, t.stripe) for t in plan_tiles(inputs.height, inputs.width, block, 0)]
    with inputs.open(with_s1=False, rows=True, stripes=stripe_columns(tiles)) as read:
        for t in tiles:
            tile = read(t)
            acc.add(tile.s2[:, tile.valid])
    return acc.result()

