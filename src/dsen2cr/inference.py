"""Cloud removal for whole Sentinel-2 scenes: exact tiled prediction with bounded memory.

DSen2-CR is fully convolutional and an output pixel depends only on inputs within
``model.receptive_field_radius`` (= 2B + 2) pixels. A scene is therefore cut into tiles: each tile
keeps a *core* of ``tile x tile`` output pixels and is run with a *halo* of at least that radius
around it, and only the core is kept. Where a tile meets the scene border the halo is clipped at
the border, so the network's zero padding falls exactly where it falls for the whole scene.
The result is the whole-scene prediction up to float round-off, whatever the tile size (tests
prove it). Border tiles are shifted inwards so that every tile has the same input size, which
keeps batches uniform.

The optional cloud/shadow mask (:mod:`dsen2cr.cloudmask`) is computed on the same tiles: its
halo also covers :data:`~dsen2cr.cloudmask.MASK_RADIUS`, and the image-wide statistics of its
shadow test come from a cheap first pass over the whole scene (valid pixels only).

Pipeline: reader threads read (and reproject) the inputs in block-aligned row chunks, each
block decoded once, and cut the next tiles out of them into a bounded queue; the calling thread
queues the network on batches of tiles, one batch in flight on the device; a writer thread writes
the cores into a tiled GeoTIFF. Each thread has its own GDAL handles. Host memory is bounded by
a few row chunks and batches of tiles, not by the scene. The finished raster is translated to a
Cloud-Optimized GeoTIFF (overviews from :mod:`dsen2cr.cog`) and renamed into place; a failed or
interrupted run leaves no output file.

Units: inputs are S2 L1C DN (offset removed) and S1 dB; the network runs in the scaled domain
(:mod:`dsen2cr.scaling`); the output is DN = prediction x 2000, rounded, uint16.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsen2cr.cog import temporary_compression, write_cog
from dsen2cr.errors import DataError, DSen2CRError

log = logging.getLogger(__name__)

OUTPUT_NODATA = 0
"""Nodata value of the predicted uint16 raster (valid predictions are clipped to >= 1 DN)."""
MASK_NODATA = -128
"""Nodata value of the int8 cloud/shadow mask raster."""
PREVIEW_SIZE = 1024
"""Longest side (pixels) of the arrays a preview is drawn from."""
_END = object()


# --------------------------------------------------------------------------- tiling
@dataclass(frozen=True)
class Tile:
    """One unit of tiled prediction, in pixel coordinates of the scene grid.

    Attributes:
        core: ``(row, col, height, width)`` of the output pixels this tile provides.
        window: ``(row, col, height, width)`` of the input read for it: the core plus a halo of
            at least the receptive-field radius on every side that is not the scene border.
    """

    core: tuple[int, int, int, int]
    window: tuple[int, int, int, int]

    @property
    def inner(self) -> tuple[int, int, int, int]:
        """``(row, col, height, width)`` of the core inside the window."""
        r, c, h, w = self.core
        return r - self.window[0], c - self.window[1], h, w

    def rio_window(self) -> Any:
        """The input window as a rasterio ``Window``."""
        from rasterio.windows import Window

        r, c, h, w = self.window
        return Window(c, r, w, h)

    def rio_core(self) -> Any:
        """The core as a rasterio ``Window``."""
        from rasterio.windows import Window

        r, c, h, w = self.core
        return Window(c, r, w, h)


def _axis_tiles(size: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """Along one axis: (core_start, core_len, window_start, window_len) for each tile."""
    wlen = min(tile + 2 * halo, size)
    out = []
    for c0 in range(0, size, tile):
        clen = min(tile, size - c0)
        w0 = min(max(c0 - halo, 0), size - wlen)
        out.append((c0, clen, w0, wlen))
    return out


def plan_tiles(height: int, width: int, tile: int, halo: int) -> list[Tile]:
    """Cut a ``height x width`` scene into tiles with uniform input windows.

    Cores are ``tile x tile`` (smaller in the last row and column); windows have size
    ``min(tile + 2 halo, height) x min(tile + 2 halo, width)`` everywhere, shifted inwards at the
    scene border. Every core pixel is at least ``halo`` pixels inside its window, except towards
    the scene border, where the window ends at the border itself.

    Args:
        height: scene rows.
        width: scene columns.
        tile: core size in pixels (>= 1).
        halo: context in pixels (>= 0), at least the receptive-field radius.

    Returns:
        Tiles in row-major order.
    """
    if tile < 1 or halo < 0 or height < 1 or width < 1:
        raise ValueError(f"invalid tiling: {height}x{width}, tile {tile}, halo {halo}")
    rows = _axis_tiles(height, tile, halo)
    cols = _axis_tiles(width, tile, halo)
    return [
        Tile((r0, c0, rh, cw), (wr, wc, wrh, wcw))
        for (r0, rh, wr, wrh) in rows
        for (c0, cw, wc, wcw) in cols
    ]


# --------------------------------------------------------------------------- model & device
def resolve_device(device: Any = "auto") -> Any:
    """``"auto"``/``None`` -> CUDA if available else CPU; ``"cuda"``/``"cuda:N"``/``"cpu"`` (or a
    ``torch.device``) checked against the machine, with a clear error."""
    import torch

    d = str(device or "auto").lower()
    if d == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if d.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DSen2CRError(f"--device {device}: CUDA is not available on this machine")
        dev = torch.device(d)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DSen2CRError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
        return dev
    if d == "cpu":
        return torch.device("cpu")
    raise DSen2CRError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


def load_model(weights_or_model: Any, device: Any = "cpu") -> Any:
    """A DSen2CR in eval mode on ``device``, from a weight file or an existing model."""
    from dsen2cr.models import DSen2CR

    if isinstance(weights_or_model, DSen2CR):
        return weights_or_model.to(device).eval()
    if isinstance(weights_or_model, (str, os.PathLike)):
        return DSen2CR.from_pretrained(weights_or_model, map_location=device)
    raise TypeError(f"expected a weight file path or a DSen2CR model, got {type(weights_or_model)}")


def _check_options(
    tile: int, batch: int | None, precision: str, readers: int | None = None
) -> None:
    if readers is not None and (not isinstance(readers, int) or readers < 1):
        raise DSen2CRError(f"--readers must be a positive integer, got {readers!r}")
    if not isinstance(tile, int) or tile < 16:
        raise DSen2CRError(f"--tile must be an integer >= 16, got {tile!r}")
    if batch is not None and (not isinstance(batch, int) or batch < 1):
        raise DSen2CRError(f"--batch must be a positive integer, got {batch!r}")
    if precision not in ("fp32", "bf16"):
        raise DSen2CRError(f"--precision must be fp32 or bf16, got {precision!r}")


# --------------------------------------------------------------------------- compute
class _Predictor:
    """Runs the network (and the cloud mask) on a batch of equally sized tiles.

    :meth:`launch` queues a batch's work on the device and returns at once with a function that
    waits for it and hands out the results; on CUDA the results come back by one asynchronous
    copy into pinned host memory, so the pipeline prepares and queues the next batch while the
    GPU computes this one.
    """

    def __init__(
        self,
        model: Any,
        device: Any,
        precision: str,
        with_mask: bool,
        threshold: float,
        shadow_stats: Any,
        channels_last: bool = True,
        pad_batch: int | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self.precision = precision
        self.with_mask = with_mask
        self.threshold = threshold
        self.shadow_stats = shadow_stats
        self.channels_last = channels_last
        self.pad_batch = pad_batch

    def _to_device(self, a: np.ndarray) -> Any:
        import torch

        t = torch.from_numpy(a)
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        return t

    def launch(
        self, tiles: Sequence[Tile], s2: np.ndarray, s1: np.ndarray | None
    ) -> Callable[[], tuple[list[np.ndarray], list[np.ndarray] | None]]:
        """Queue one batch: s2 (B, 13, h, w) DN, s1 (B, 2, h, w) dB or None.

        Returns:
            A function giving per tile cores: prediction (13, ch, cw) float32 scaled and mask
            (ch, cw) int8 (or None).
        """
        import torch

        from dsen2cr.performance import autocast, to_memory_format
        from dsen2cr.scaling import s1_to_scaled, s2_to_scaled

        n = len(tiles)
        if self.pad_batch is not None and n < self.pad_batch:  # keep one input shape
            reps = self.pad_batch - n
            s2 = np.concatenate([s2, np.repeat(s2[-1:], reps, axis=0)])
            if s1 is not None:
                s1 = np.concatenate([s1, np.repeat(s1[-1:], reps, axis=0)])
        cuda = self.device.type == "cuda"
        dn = self._to_device(s2)
        sar = None
        if self.model.uses_sar:
            if s1 is None:
                raise DSen2CRError("this model uses SAR but no S1 input was given")
            # missing SAR (NaN) -> 0 in the scaled domain; those pixels become nodata anyway
            sar = torch.nan_to_num(s1_to_scaled(self._to_device(s1)), nan=0.0)
            sar = to_memory_format(sar, self.channels_last)
        with torch.inference_mode():
            optical = to_memory_format(s2_to_scaled(dn), self.channels_last)
            with autocast(self.device, self.precision):
                pred = self.model(optical, sar)
            # float32 NCHW, so that host-side slices are plain views
            pred = pred[:n].to(torch.float32, memory_format=torch.contiguous_format)
            mask = None
            if self.with_mask:
                from dsen2cr.cloudmask import cloud_shadow_mask

                # on CPU the numpy/scipy path is faster; both give bit-identical masks
                src = dn[:n] if cuda else s2[:n]
                mask = cloud_shadow_mask(src, self.threshold, shadow_stats=self.shadow_stats)
            if cuda:
                host_p = torch.empty(pred.shape, dtype=pred.dtype, pin_memory=True)
                host_p.copy_(pred, non_blocking=True)
                host_m = None
                if mask is not None:
                    host_m = torch.empty(mask.shape, dtype=mask.dtype, pin_memory=True)
                    host_m.copy_(mask, non_blocking=True)
                done = torch.cuda.Event()
                done.record(torch.cuda.current_stream(self.device))  # the copies' stream
            else:
                host_p, host_m, done = pred, mask, None

        def finish() -> tuple[list[np.ndarray], list[np.ndarray] | None]:
            if done is not None:
                done.synchronize()
            p = host_p.numpy()
            m = host_m.numpy() if isinstance(host_m, torch.Tensor) else host_m
            preds = [_core(p[i], t) for i, t in enumerate(tiles)]
            masks = None if m is None else [_core(m[i], t) for i, t in enumerate(tiles)]
            return preds, masks  # type: ignore[return-value]

        return finish


def _core(a: np.ndarray | None, t: Tile) -> np.ndarray | None:
    if a is None:
        return None
    r, c, h, w = t.inner
    return a[..., r : r + h, c : c + w]


# --------------------------------------------------------------------------- inputs
def _chunk_rows(path: str, low: int = 256, high: int = 1024) -> int:
    """Rows the row-chunk reader decodes at a time: the raster's block height, or the smallest
    multiple of it that is at least ``low`` (row strips of 1 or a few rows), at most ``high``
    (a file stored as one huge strip must not put the whole scene in memory)."""
    import rasterio

    try:
        with rasterio.open(path) as ds:
            block = int(ds.block_shapes[0][0])
    except Exception:  # unreadable here: the reader itself reports it
        return 512
    return min(high, block if block >= low else block * -(-low // block))


class _FileInputs:
    """S2 scene (+ S1 source) read window by window; ``open()`` gives a per-thread reader.

    With ``strips=True`` the reader decodes the scene in whole-width chunks of rows aligned to
    the file's blocks, each chunk once, and cuts the tiles out of them. GDAL does not cache the
    blocks of windowed multi-band reads, so reading tile by tile decoded each block of a tiled
    GeoTIFF up to 9 times (tiles overlap by their halo and straddle block borders): reading a
    4096 x 4096 DEFLATE scene took 11.8 s tile by tile against 1.7 s block by block. Tiles come
    in row-major order and all tiles of a row share their rows, so a chunk is dropped once the
    tiles have moved below it. S2 chunks of a GeoTIFF are kept in the file's dtype (uint16) and
    converted tile by tile (a ``.SAFE`` is read as float32). Host memory per reader is the chunks
    a tile window spans: for a 10980-pixel-wide scene with 512 tiles (580-row windows), up to 3
    chunks of 512 rows of a uint16 GeoTIFF with S1, 0.57 GB, or up to 2 chunks of 1024 rows of a
    ``.SAFE``, 1.35 GB.
    """

    def __init__(self, scene: Any, s1: Any | None) -> None:
        self.scene = scene
        self.s1 = s1
        self.height, self.width = scene.height, scene.width

    @contextlib.contextmanager
    def open(
        self, with_s1: bool = True, strips: bool = False
    ) -> Iterator[Callable[[Tile], tuple[np.ndarray, np.ndarray | None, np.ndarray]]]:
        from rasterio.windows import Window

        with contextlib.ExitStack() as stack:
            s2r = stack.enter_context(self.scene.open())
            s1r = None
            if with_s1 and self.s1 is not None:
                s1r = stack.enter_context(self.s1.open())

            def read_window(w: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
                dn, valid = s2r.read(w)
                sar = s1r.read(w) if s1r is not None else None
                return dn, sar, valid

            if not strips:
                yield lambda t: read_window(t.rio_window())
                return

            paths = self.scene.band_paths  # of a .SAFE: the blocks of B2, a 10 m band
            chunk = _chunk_rows(paths[1] if len(paths) > 1 else paths[0])
            # S2 is kept raw (uint16 for a GeoTIFF) and converted tile by tile
            chunks: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

            def read(t: Tile) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
                r, c, h, w = t.window
                k0, k1 = r // chunk, (r + h - 1) // chunk
                for k in [k for k in chunks if k < k0]:
                    del chunks[k]  # the tiles have moved below this chunk
                for k in range(k0, k1 + 1):
                    if k not in chunks:
                        top = k * chunk
                        win = Window(0, top, self.width, min(chunk, self.height - top))
                        raw = s2r.read_raw(win, native=True)
                        chunks[k] = (raw, s1r.read(win) if s1r is not None else None)
                parts = []
                for k in range(k0, k1 + 1):  # the tile's rows in each chunk
                    top = k * chunk
                    rows = slice(max(r, top) - top, min(r + h, top + chunk) - top)
                    parts.append((*chunks[k], rows))
                cols = slice(c, c + w)

                def cut(i: int) -> np.ndarray | None:
                    if parts[0][i] is None:
                        return None
                    pieces = [p[i][..., p[2], cols] for p in parts]
                    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=-2)

                dn, valid = s2r.to_dn(cut(0))  # type: ignore[arg-type]
                return dn, cut(1), valid

            yield read


class _ArrayInputs:
    """In-memory inputs with the same interface as :class:`_FileInputs`."""

    def __init__(self, s2: np.ndarray, s1: np.ndarray | None, valid: np.ndarray) -> None:
        self.s2, self.s1, self.valid = s2, s1, valid
        self.height, self.width = s2.shape[-2:]

    @contextlib.contextmanager
    def open(
        self, with_s1: bool = True, strips: bool = False
    ) -> Iterator[Callable[[Tile], tuple[np.ndarray, np.ndarray | None, np.ndarray]]]:
        def read(t: Tile) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
            r, c, h, w = t.window
            dn = np.ascontiguousarray(self.s2[:, r : r + h, c : c + w], dtype=np.float32)
            valid = self.valid[r : r + h, c : c + w]
            dn = np.where(valid[None], dn, np.float32(0))
            sar = None
            if with_s1 and self.s1 is not None:
                sar = np.ascontiguousarray(self.s1[:, r : r + h, c : c + w], dtype=np.float32)
            return dn, sar, valid

        yield read


def s2_valid(s2: np.ndarray) -> np.ndarray:
    """Valid-pixel map of a (13, H, W) S2 array: not all bands 0, all bands finite."""
    s2 = np.asarray(s2)
    return (s2 != 0).any(axis=0) & np.isfinite(s2).all(axis=0)


# --------------------------------------------------------------------------- whole-scene stats
class _StatsAccumulator:
    """Exact min and (two-level, order-independent up to round-off) mean of float64 values."""

    def __init__(self) -> None:
        self.parts: list[tuple[float, float, int]] = []

    def add(self, x: np.ndarray) -> None:
        if x.size:
            m = float(x.min())
            self.parts.append((m, float(np.sum(x - m)), int(x.size)))

    def result(self) -> tuple[float, float]:
        if not self.parts:
            return 0.0, 0.0
        m = min(p[0] for p in self.parts)
        n = sum(p[2] for p in self.parts)
        total = math.fsum(p[1] + p[2] * (p[0] - m) for p in self.parts)
        return m, m + total / n


def scene_shadow_statistics(inputs: Any, block: int = 1024) -> Any:
    """Shadow-test statistics of a whole scene over its valid pixels, read block by block.

    The cloud mask's shadow thresholds use the minimum and mean of CSI = (B8 + B11) / 2 and of
    B2 (reflectance) over the image. For a scene they are taken over the valid (not nodata)
    pixels; with no nodata this equals :func:`dsen2cr.cloudmask.shadow_statistics` of the whole
    scene (up to float round-off of the mean).

    Args:
        inputs: an object with ``height``, ``width`` and ``open()`` (see :func:`predict`).
        block: side of the square blocks read at a time (S2 only).

    Returns:
        :class:`dsen2cr.cloudmask.ShadowStats` with float fields.
    """
    from dsen2cr.cloudmask import ShadowStats

    csi_acc, b2_acc = _StatsAccumulator(), _StatsAccumulator()
    with inputs.open(with_s1=False) as read:
        for t in plan_tiles(inputs.height, inputs.width, block, 0):
            dn, _, valid = read(Tile(t.core, t.core))  # each pixel exactly once
            # the same float64 operations as dsen2cr.cloudmask
            b2 = dn[1][valid].astype(np.float64) / 10000.0
            b8 = dn[7][valid].astype(np.float64) / 10000.0
            b11 = dn[11][valid].astype(np.float64) / 10000.0
            csi_acc.add((b8 + b11) / 2.0)
            b2_acc.add(b2)
    csi_min, csi_mean = csi_acc.result()
    b2_min, b2_mean = b2_acc.result()
    return ShadowStats(csi_min=csi_min, csi_mean=csi_mean, b2_min=b2_min, b2_mean=b2_mean)


# --------------------------------------------------------------------------- pipeline
class _Pipeline:
    """Reader threads -> compute (calling thread) -> writer thread, with bounded queues.

    Each of the ``readers`` threads reads a contiguous run of the batches (so a reader's row
    chunks serve consecutive tile rows) with its own GDAL handles; batches reach the compute in
    whatever order the readers finish them, which does not matter since each carries its tiles.
    """

    def __init__(self, depth: int = 2, readers: int = 1) -> None:
        self.readers = max(1, readers)
        depth = max(depth, self.readers + 1)
        self.q_in: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.q_out: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return _END

    def run(
        self,
        batches: list[list[Tile]],
        inputs: Any,
        launch: Callable[[list[Tile], np.ndarray, np.ndarray | None], Callable[[], Any]],
        open_sink: Callable[[], Any],
        on_batch: Callable[[int], None],
    ) -> None:
        n = min(self.readers, max(1, len(batches)))
        bounds = [round(i * len(batches) / n) for i in range(n + 1)]
        groups = [batches[bounds[i] : bounds[i + 1]] for i in range(n)]
        running = [n]
        lock = threading.Lock()

        def reader(group: list[list[Tile]]) -> None:
            try:
                with inputs.open(strips=True) as read:
                    for tiles in group:
                        if self.stop.is_set():
                            return
                        items = [read(t) for t in tiles]
                        s2 = np.stack([i[0] for i in items])
                        s1 = None if items[0][1] is None else np.stack([i[1] for i in items])
                        valid = [i[2] for i in items]
                        if not self._put(self.q_in, (tiles, s2, s1, valid)):
                            return
            except BaseException as exc:
                self.errors.append(exc)
                self.stop.set()
            finally:
                with lock:
                    running[0] -= 1
                    last = running[0] == 0
                if last:
                    self._put(self.q_in, _END)

        def writer() -> None:
            try:
                with open_sink() as sink:
                    while True:
                        item = self._get(self.q_out)
                        if item is _END:
                            break
                        sink(*item)
            except BaseException as exc:
                self.errors.append(exc)
                self.stop.set()

        threads = [
            *(
                threading.Thread(target=reader, args=(g,), name=f"dsen2cr-reader-{i}", daemon=True)
                for i, g in enumerate(groups)
            ),
            threading.Thread(target=writer, name="dsen2cr-writer", daemon=True),
        ]

        def hand_over(item: tuple[Any, ...], finish: Callable[[], Any]) -> None:
            tiles, s2, s1, valid = item
            preds, masks = finish()
            for i, t in enumerate(tiles):
                out = (
                    t,
                    preds[i],
                    _core(valid[i], t),
                    None if masks is None else masks[i],
                    _core(s2[i], t),
                    None if s1 is None else _core(s1[i], t),
                )
                if not self._put(self.q_out, out):
                    break
            on_batch(len(tiles))

        for th in threads:
            th.start()
        try:
            # one batch in flight: batch k is queued on the device before batch k - 1's
            # results are waited for and handed to the writer
            pending: tuple[tuple[Any, ...], Callable[[], Any]] | None = None
            while not self.stop.is_set():
                item = self._get(self.q_in)
                if item is _END:
                    break
                tiles, s2, s1, _ = item
                finish = launch(tiles, s2, s1)
                if pending is not None:
                    hand_over(*pending)
                pending = (item, finish)
            if pending is not None and not self.stop.is_set():
                hand_over(*pending)
        except BaseException:
            self.stop.set()
            for th in threads:
                th.join()
            raise
        if not self.stop.is_set():
            self._put(self.q_out, _END)
        for th in threads:
            th.join()
        if self.errors:
            raise self.errors[0]


# --------------------------------------------------------------------------- sinks
def prediction_to_dn(pred: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scaled prediction -> uint16 DN: x 2000, rounded, clipped to [1, 65535]; nodata 0.

    Args:
        pred: (13, h, w) float prediction in the scaled domain.
        valid: (h, w) bool, False where the output is nodata.

    Returns:
        (13, h, w) uint16 DN.
    """
    from dsen2cr.scaling import scaled_to_s2

    dn = np.clip(np.rint(scaled_to_s2(pred.astype(np.float32))), 1, 65535).astype(np.uint16)
    dn[:, ~valid] = OUTPUT_NODATA
    return dn


class _Preview:
    """Decimated (every ``step``-th pixel) copies of input, output, SAR and mask for a preview."""

    def __init__(self, height: int, width: int, with_sar: bool, with_mask: bool) -> None:
        self.step = max(1, math.ceil(max(height, width) / PREVIEW_SIZE))
        h, w = math.ceil(height / self.step), math.ceil(width / self.step)
        # bands B1..B4 suffice for true-colour composites (B4, B3, B2)
        self.s2 = np.zeros((4, h, w), np.float32)
        self.out = np.zeros((4, h, w), np.float32)
        self.s1 = np.full((2, h, w), np.nan, np.float32) if with_sar else None
        self.mask = np.full((h, w), MASK_NODATA, np.int8) if with_mask else None

    def add(self, t: Tile, s2: np.ndarray, out: np.ndarray, s1: Any, mask: Any) -> None:
        r0, c0, h, w = t.core
        s = self.step
        ir, ic = (-r0) % s, (-c0) % s
        if ir >= h or ic >= w:
            return
        dr = slice((r0 + ir) // s, (r0 + ir) // s + len(range(ir, h, s)))
        dc = slice((c0 + ic) // s, (c0 + ic) // s + len(range(ic, w, s)))
        self.s2[:, dr, dc] = s2[:4, ir::s, ic::s]
        self.out[:, dr, dc] = out[:4, ir::s, ic::s]
        if self.s1 is not None and s1 is not None:
            self.s1[:, dr, dc] = s1[:, ir::s, ic::s]
        if self.mask is not None and mask is not None:
            self.mask[dr, dc] = mask[ir::s, ic::s]


class _Counters:
    def __init__(self) -> None:
        self.cloud = 0
        self.shadow = 0
        self.nodata = 0

    def add(self, ok: np.ndarray, s2ok: np.ndarray, mask: np.ndarray | None) -> None:
        self.nodata += int(ok.size - ok.sum())
        if mask is not None:
            self.cloud += int(np.count_nonzero((mask == 1) & s2ok))
            self.shadow += int(np.count_nonzero((mask == -1) & s2ok))


def _stage_block(tile: int) -> int | None:
    """A GeoTIFF block size that divides the core tile (so each block is written once)."""
    for b in (512, 256, 128, 64, 32, 16):
        if tile % b == 0:
            return b
    return None


# --------------------------------------------------------------------------- public API
def predict_array(
    model: Any,
    s2: np.ndarray,
    s1: np.ndarray | None = None,
    *,
    tile: int = 512,
    batch: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
    with_mask: bool = False,
    threshold: float = 0.2,
    channels_last: bool = True,
    compile: bool = False,
) -> dict[str, np.ndarray | None]:
    """Tiled prediction of an in-memory scene (the engine of :func:`predict`, without files).

    Args:
        model: a :class:`~dsen2cr.models.DSen2CR` or a weight file.
        s2: (13, H, W) cloudy Sentinel-2 L1C in DN; pixels with all bands 0 are nodata.
        s1: (2, H, W) Sentinel-1 VV, VH in dB on the same grid (NaN = missing), required when the
            model uses SAR.
        tile: core tile size in pixels.
        batch: tiles per forward pass.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``.
        precision: ``"fp32"`` or ``"bf16"`` (autocast).
        with_mask: also compute the cloud/shadow mask tile by tile.
        threshold: cloud threshold of the mask.
        channels_last: run the network in NHWC memory format (faster; same result up to
            float round-off).
        compile: ``torch.compile`` the network first (pays for large scenes on a GPU).

    Returns:
        ``{"prediction": (13, H, W) float32 scaled (x 2000 = DN; 0 where nodata),
        "valid": (H, W) bool, "mask": (H, W) int8 {-1, 0, 1} (-128 where S2 is nodata) or
        None}``.
    """
    _check_options(tile, batch, precision)
    dev = resolve_device(device)
    net = load_model(model, dev)
    s2 = np.asarray(s2)
    if s2.ndim != 3 or s2.shape[0] != 13:
        raise DataError(f"s2 must be a (13, H, W) array, got shape {s2.shape}")
    if net.uses_sar:
        if s1 is None:
            raise DSen2CRError("this model uses SAR: pass s1=(2, H, W) in dB")
        s1 = np.asarray(s1, np.float32)
        if s1.shape != (2, *s2.shape[1:]):
            raise DataError(f"s1 must have shape {(2, *s2.shape[1:])}, got {s1.shape}")
    else:
        s1 = None
    valid = s2_valid(s2)
    inputs = _ArrayInputs(s2, s1, valid)
    h, w = s2.shape[1:]
    pred = np.zeros((13, h, w), np.float32)
    ok = np.zeros((h, w), bool)
    mask = np.full((h, w), MASK_NODATA, np.int8) if with_mask else None

    @contextlib.contextmanager
    def sink() -> Iterator[Callable[..., None]]:
        def write(t: Tile, p: np.ndarray, v: np.ndarray, m: Any, _s2: Any, sar: Any) -> None:
            r, c, hh, ww = t.core
            good = v if sar is None else v & np.isfinite(sar).all(axis=0)
            pred[:, r : r + hh, c : c + ww] = np.where(good[None], p, np.float32(0))
            ok[r : r + hh, c : c + ww] = good
            if mask is not None:
                mask[r : r + hh, c : c + ww] = np.where(v, m, np.int8(MASK_NODATA))

        yield write

    _run_scene(
        net, dev, inputs, sink, tile, batch, precision, with_mask, threshold, None, False,
        channels_last=channels_last, compile=compile,
    )  # fmt: skip
    return {"prediction": pred, "valid": ok, "mask": mask}


def _run_scene(
    net: Any,
    dev: Any,
    inputs: Any,
    open_sink: Callable[[], Any],
    tile: int,
    batch: int,
    precision: str,
    with_mask: bool,
    threshold: float,
    desc: str | None,
    progress: bool,
    channels_last: bool = True,
    compile: bool = False,
    readers: int | None = None,
) -> dict[str, Any]:
    """Plan tiles, compute the mask statistics, run the pipeline; return timing numbers."""
    from tqdm import tqdm

    from dsen2cr.performance import configure_backends, prepare_model

    halo = net.receptive_field_radius
    stats = None
    if with_mask:
        from dsen2cr.cloudmask import MASK_RADIUS

        halo = max(halo, MASK_RADIUS)
    tiles = plan_tiles(inputs.height, inputs.width, tile, halo)
    if readers is None:  # on CPU the network needs the cores; a GPU host has cores to spare
        readers = 1 if dev.type == "cpu" else min(4, max(1, (os.cpu_count() or 1) // 4))
    batches = [tiles[i : i + batch] for i in range(0, len(tiles), batch)]
    t0 = time.perf_counter()
    if with_mask:
        stats = scene_shadow_statistics(inputs)
    configure_backends(dev)  # cuDNN autotuning: every tile has the same shape
    prepare_model(net, dev, channels_last=channels_last, compile=compile)
    predictor = _Predictor(
        net, dev, precision, with_mask, threshold, stats, channels_last=channels_last,
        # a compiled network would compile again for a smaller last batch: pad it instead
        pad_batch=batch if compile and len(tiles) > batch else None,
    )  # fmt: skip
    bar = tqdm(
        total=len(tiles),
        unit="tile",
        desc=desc or "predict",
        disable=None if progress else True,
        dynamic_ncols=True,
        leave=False,
    )
    try:
        _Pipeline(readers=readers).run(batches, inputs, predictor.launch, open_sink, bar.update)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    return {
        "tiles": len(tiles),
        "readers": readers,
        "tile": tile,
        "halo": halo,
        "window": list(tiles[0].window[2:]),
        "seconds": seconds,
        "tiles_per_s": len(tiles) / seconds if seconds > 0 else float("inf"),
        "megapixels_per_s": inputs.height * inputs.width / 1e6 / seconds if seconds > 0 else 0.0,
    }


def _gtiff_profile(scene: Any, dtype: str, count: int, nodata: float, block: int | None) -> dict:
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "dtype": dtype,
        "count": count,
        "width": scene.width,
        "height": scene.height,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": block or 256,
        "blockysize": block or 256,
        "BIGTIFF": "IF_SAFER",
    }
    if block:  # each block is written exactly once: compress cheaply
        profile.update(temporary_compression())
    if scene.crs is not None:
        profile["crs"] = scene.crs
        profile["transform"] = scene.transform
    return profile


def _stage_path(final: Path, tag: str) -> Path:
    return final.with_name(f".{final.stem}.{tag}-{os.getpid()}.tif")


GDAL_CACHEMAX_MB = 256
"""GDAL block cache used by :func:`predict` when the environment does not set GDAL_CACHEMAX."""


def predict(
    s2: str | os.PathLike[str],
    weights_or_model: Any,
    out: str | os.PathLike[str],
    s1: str | os.PathLike[str] | None = None,
    *,
    mask_out: str | os.PathLike[str] | None = None,
    preview: str | os.PathLike[str] | None = None,
    tile: int = 512,
    batch: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
    s1_linear: bool = False,
    threshold: float = 0.2,
    compress: str = "DEFLATE",
    progress: bool = True,
    channels_last: bool = True,
    compile: bool = False,
    readers: int | None = None,
) -> dict[str, Any]:
    """Remove clouds from a whole Sentinel-2 scene and write a georeferenced result.

    Args:
        s2: cloudy Sentinel-2 L1C: a 13-band GeoTIFF in DN (SEN12MS-CR band order), a ``.SAFE``
            folder or its ``.zip`` (see :mod:`dsen2cr.sentinel`).
        weights_or_model: a weight file (``.safetensors`` or the authors' Keras ``.hdf5``) or a
            :class:`~dsen2cr.models.DSen2CR`.
        out: output GeoTIFF: 13 bands uint16 DN (L1C TOA reflectance x 10000) on the S2 grid
            (same CRS, transform, size), Cloud-Optimized layout (512 blocks, compression,
            overviews), band descriptions B1..B12, nodata 0 where the S2 input is nodata or, for
            a SAR model, where S1 does not cover the pixel (valid values are clipped to >= 1).
        s1: Sentinel-1 VV/VH GeoTIFF in dB (any CRS/resolution: reprojected bilinearly onto the
            S2 grid). Required for SAR models; ignored, with a note, for optical-only ones.
        mask_out: optional int8 GeoTIFF of the cloud/shadow mask of the input: 1 cloud,
            -1 shadow, 0 clear, -128 nodata.
        preview: optional PNG: input RGB, (SAR,) (mask,) prediction RGB side by side.
        tile: core tile size in pixels; the network sees ``tile + 2 * halo`` pixels per tile
            (halo = receptive field 2B+2, at least the mask's 7).
        batch: tiles per forward pass (default 4 on CUDA, 1 on CPU).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        precision: ``"fp32"`` or ``"bf16"`` (``torch.autocast``, also on CPU).
        s1_linear: S1 holds linear power instead of dB (converted with 10 log10).
        threshold: cloud threshold of the mask.
        compress: compression of the outputs (``DEFLATE``, ``ZSTD``, ``LZW``, ``NONE``).
        progress: show a progress bar (tiles/s) when stderr is a terminal.
        channels_last: run the network in NHWC memory format (faster on GPU and CPU; same
            result up to float round-off).
        compile: ``torch.compile`` the network before the first tile (compiling takes tens of
            seconds; pays for large scenes on a GPU).
        readers: threads reading (and reprojecting) the inputs, each with its own GDAL handles
            (default: 1 on CPU, where the network needs the cores; on CUDA a quarter of the CPU
            cores, 1 to 4).

    Returns:
        A JSON-serialisable summary: paths, grid, tiles, timing (``seconds``: reading,
        network and writing the full-resolution raster, ``megapixels_per_s`` and ``tiles_per_s``
        over that; ``cog_seconds``: overviews and the COG translation), fractions of nodata /
        cloud / shadow pixels.

    Raises:
        DSen2CRError: bad inputs (missing or corrupt files, wrong band counts, S1 not
            overlapping S2, invalid weights or options). No output file is left behind.
    """
    import rasterio

    from dsen2cr import __version__
    from dsen2cr.io import atomic_output
    from dsen2cr.scaling import S2_BANDS
    from dsen2cr.sentinel import _no_georef_warning, open_s1, open_s2

    _check_options(tile, batch, precision, readers)
    compress = compress.upper()
    scene = open_s2(s2)
    dev = resolve_device(device)
    net = load_model(weights_or_model, dev)
    s1src = None
    if net.uses_sar:
        if s1 is None:
            raise DSen2CRError(
                "the weights use SAR (sar_channels=2): give the Sentinel-1 image with --s1"
            )
        s1src = open_s1(s1, scene, linear=s1_linear)
    elif s1 is not None:
        log.warning("note: the weights do not use SAR; ignoring the S1 input %s", s1)
    if batch is None:
        batch = 4 if dev.type == "cuda" else 1
    out = Path(out)
    with_mask = mask_out is not None or preview is not None
    inputs = _FileInputs(scene, s1src)
    block = _stage_block(tile)
    out_profile = _gtiff_profile(scene, "uint16", 13, OUTPUT_NODATA, block)
    mask_profile = _gtiff_profile(scene, "int8", 1, MASK_NODATA, block)
    counters = _Counters()
    pv = _Preview(scene.height, scene.width, s1src is not None, with_mask) if preview else None
    weights_name = (
        Path(weights_or_model).name
        if isinstance(weights_or_model, (str, os.PathLike))
        else "<in-memory model>"
    )
    tags = {
        "DSEN2CR_VERSION": __version__,
        "DSEN2CR_WEIGHTS": weights_name,
        "DSEN2CR_MODEL": json.dumps(net.config),
        "DSEN2CR_S2": str(scene.path),
        "DSEN2CR_S1": str(s1src.path) if s1src is not None else "",
        "DSEN2CR_UNITS": "DN: L1C top-of-atmosphere reflectance x 10000 (prediction x 2000); "
        "0 = nodata",
        "DSEN2CR_TILE": str(tile),
        "DSEN2CR_PRECISION": precision,
    }
    if scene.baseline is not None:
        tags["DSEN2CR_S2_BASELINE"] = scene.baseline

    stage_out = _stage_path(out, "stage")
    stage_mask = _stage_path(Path(mask_out), "stage") if mask_out is not None else None

    @contextlib.contextmanager
    def open_sink() -> Iterator[Callable[..., None]]:
        with contextlib.ExitStack() as stack:
            dst = stack.enter_context(rasterio.open(stage_out, "w", **out_profile))
            mdst = None
            if stage_mask is not None:
                mdst = stack.enter_context(rasterio.open(stage_mask, "w", **mask_profile))

            def write(t: Tile, p: np.ndarray, v: np.ndarray, m: Any, s2c: Any, sar: Any) -> None:
                ok = v if sar is None else v & np.isfinite(sar).all(axis=0)
                dn = prediction_to_dn(p, ok)
                win = t.rio_core()
                dst.write(dn, window=win)
                mm = None
                if m is not None:
                    mm = np.where(v, m, np.int8(MASK_NODATA)).astype(np.int8)
                    if mdst is not None:
                        mdst.write(mm[None], window=win)
                counters.add(ok, v, mm)
                if pv is not None:
                    pv.add(t, s2c, dn, sar, mm)

            yield write

    with contextlib.ExitStack() as outputs:
        outputs.enter_context(_no_georef_warning())
        if "GDAL_CACHEMAX" not in os.environ:
            # GDAL's block cache defaults to 5 % of RAM: cap it so that host memory is bounded
            # by the tile, not the scene (the user's GDAL_CACHEMAX wins).
            outputs.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHEMAX_MB))
        tmp_out = outputs.enter_context(atomic_output(out))
        tmp_mask = outputs.enter_context(atomic_output(mask_out)) if mask_out is not None else None
        try:
            timing = _run_scene(
                net, dev, inputs, open_sink, tile, batch, precision, with_mask, threshold,
                scene.name, progress, channels_last=channels_last, compile=compile,
                readers=readers,
            )  # fmt: skip
            t_cog = time.perf_counter()
            with rasterio.open(stage_out, "r+") as dst:
                for i, b in enumerate(S2_BANDS, start=1):
                    dst.set_band_description(i, b)
                dst.update_tags(**tags)
            write_cog(stage_out, tmp_out, compress=compress, predictor=True,
                      overviews="average", nodata=OUTPUT_NODATA)  # fmt: skip
            if stage_mask is not None and tmp_mask is not None:
                with rasterio.open(stage_mask, "r+") as mdst:
                    mdst.set_band_description(1, "cloud (1) / shadow (-1) / clear (0)")
                    mdst.update_tags(
                        DSEN2CR_VERSION=__version__,
                        DSEN2CR_S2=str(scene.path),
                        DSEN2CR_THRESHOLD=str(threshold),
                        DSEN2CR_VALUES="1 cloud, -1 shadow, 0 clear, -128 nodata",
                    )
                write_cog(stage_mask, tmp_mask, compress=compress, overviews="mode",
                          nodata=MASK_NODATA)  # fmt: skip
            timing["cog_seconds"] = time.perf_counter() - t_cog
        finally:
            for st in (stage_out, stage_mask):
                if st is not None and st.exists():
                    st.unlink()
    n = scene.height * scene.width
    summary: dict[str, Any] = {
        "s2": str(scene.path),
        "s1": str(s1src.path) if s1src is not None else None,
        "out": str(out),
        "mask_out": str(mask_out) if mask_out is not None else None,
        "preview": None,
        "width": scene.width,
        "height": scene.height,
        "crs": str(scene.crs) if scene.crs is not None else None,
        "device": str(dev),
        "precision": precision,
        "batch": batch,
        "channels_last": channels_last,
        "compile": compile,
        **timing,
        "nodata_fraction": counters.nodata / n,
    }
    if with_mask:
        summary["cloud_fraction"] = counters.cloud / n
        summary["shadow_fraction"] = counters.shadow / n
    if preview is not None and pv is not None:
        _write_preview(pv, Path(preview), scene.name)
        summary["preview"] = str(preview)
    return summary


def _write_preview(pv: _Preview, path: Path, title: str) -> None:
    """Input RGB | SAR | mask | prediction RGB, from the decimated arrays."""
    from dsen2cr.figures import (
        mask_composite,
        new_figure,
        rgb_composite,
        sar_composite,
        save_figure,
    )

    panels: list[tuple[str, np.ndarray]] = [("cloudy input (S2 RGB)", rgb_composite(pv.s2))]
    if pv.s1 is not None:
        panels.append(("SAR (S1: R=0, G=VH, B=VV)", sar_composite(pv.s1)))
    if pv.mask is not None:
        m = pv.mask.astype(np.float32)
        pic = mask_composite(np.where(pv.mask == MASK_NODATA, 0, m))
        pic[pv.mask == MASK_NODATA] = (0.5, 0.0, 0.0)
        panels.append(("cloud (white) / shadow (blue) / nodata (red)", pic))
    out_rgb = rgb_composite(pv.out)
    out_rgb[(pv.out == 0).all(axis=0)] = 0.0
    panels.append(("DSen2-CR prediction (RGB)", out_rgb))
    h, w = pv.s2.shape[1:]
    fig, axes = new_figure(1, len(panels))
    panel_w = 4.0
    fig.set_size_inches(panel_w * len(panels), panel_w * h / max(w, 1) + 0.7)  # type: ignore[attr-defined]
    for ax, (name, img) in zip(axes[0], panels, strict=True):
        ax.imshow(img, interpolation="antialiased")
        ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10)  # type: ignore[attr-defined]
    fig.tight_layout()  # type: ignore[attr-defined]
    save_figure(fig, path)


# --------------------------------------------------------------------------- several scenes
def expand_inputs(items: Sequence[str | os.PathLike[str]], what: str) -> list[Path]:
    """Expand glob patterns (sorted) and keep plain paths; a pattern without matches is an error."""
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


def _scene_name(path: Path) -> str:
    name = path.name
    for suffix in (".zip", ".SAFE", ".tiff", ".tif", ".TIF", ".TIFF"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _worker_init(device_queue: Any) -> None:
    global _WORKER_DEVICE
    _WORKER_DEVICE = device_queue.get()
    if _WORKER_DEVICE is not None and _WORKER_DEVICE.startswith("cuda"):
        import torch

        torch.cuda.set_device(_WORKER_DEVICE)  # no context on GPU 0 from every worker


_WORKER_DEVICE: str | None = None


def _worker_predict(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`predict` in a pool worker on the worker's device."""
    model = kwargs.pop("weights_or_model")
    if isinstance(model, tuple):  # (config, state_dict) of an in-memory model
        from dsen2cr.models import DSen2CR

        config, state = model
        net = DSen2CR(**config)
        net.load_state_dict(state)
        model = net
    return predict(weights_or_model=model, device=_WORKER_DEVICE or "cpu", **kwargs)


def predict_many(
    s2: Sequence[str | os.PathLike[str]],
    weights_or_model: Any,
    out_dir: str | os.PathLike[str],
    s1: Sequence[str | os.PathLike[str]] | None = None,
    *,
    mask_dir: str | os.PathLike[str] | None = None,
    preview_dir: str | os.PathLike[str] | None = None,
    devices: Sequence[str] | None = None,
    device: str = "auto",
    **options: Any,
) -> list[dict[str, Any]]:
    """Predict several scenes; with several devices, scenes are shared among them.

    Outputs are named after the inputs: ``<name>_dsen2cr.tif`` in ``out_dir``,
    ``<name>_mask.tif`` in ``mask_dir``, ``<name>_preview.png`` in ``preview_dir``.

    Args:
        s2: S2 inputs (paths or glob patterns, expanded and sorted).
        weights_or_model: weight file or model.
        out_dir: folder for the predictions.
        s1: S1 inputs, paired with the S2 inputs in the same (sorted) order; required for SAR
            models.
        mask_dir: folder for cloud/shadow masks (None: no masks).
        preview_dir: folder for previews (None: no previews).
        devices: explicit devices, e.g. ``["cuda:0", "cuda:1"]``; one worker process per device
            (``torch.multiprocessing`` spawn), each scene goes to the next free one. Default:
            every CUDA device when ``device`` is auto/cuda and there are several, else
            ``device`` alone (sequential, in this process).
        device: device when ``devices`` is None.
        **options: further keyword arguments of :func:`predict` (tile, batch, precision, ...).

    Returns:
        One summary per scene (see :func:`predict`), in input order.
    """
    from dsen2cr.sentinel import open_s2

    scenes = expand_inputs(s2, "S2 image")
    sars: list[Path | None] = [None] * len(scenes)
    if s1:
        s1_paths = expand_inputs(s1, "S1 image")
        if len(s1_paths) != len(scenes):
            raise DSen2CRError(
                f"{len(scenes)} S2 scene(s) but {len(s1_paths)} S1 image(s): give one S1 per S2 "
                "(paired in sorted order)"
            )
        sars = list(s1_paths)
    names = [_scene_name(p) for p in scenes]
    if len(set(names)) != len(names):
        raise DSen2CRError("several S2 inputs have the same name; outputs would collide")
    for p in scenes:  # fail early, before any output is written
        open_s2(p)
    out_dir = Path(out_dir)
    jobs = []
    for p, sar, name in zip(scenes, sars, names, strict=True):
        jobs.append(
            {
                "s2": p,
                "s1": sar,
                "out": out_dir / f"{name}_dsen2cr.tif",
                "mask_out": Path(mask_dir) / f"{name}_mask.tif" if mask_dir else None,
                "preview": Path(preview_dir) / f"{name}_preview.png" if preview_dir else None,
                **options,
            }
        )
    if devices is None:
        import torch

        d = (device or "auto").lower()
        n = torch.cuda.device_count() if d in ("auto", "cuda") else 0
        devices = [f"cuda:{i}" for i in range(n)] if n > 1 else [device]
    devices = list(devices)
    if len(devices) <= 1 or len(jobs) <= 1:
        dev = devices[0] if devices else device
        return [predict(weights_or_model=weights_or_model, device=dev, **job) for job in jobs]
    return _predict_pool(jobs, weights_or_model, devices)


def _predict_pool(jobs: list[dict[str, Any]], weights_or_model: Any, devices: list[str]) -> list:
    """One spawned worker process per device; each scene goes to one device."""
    from concurrent.futures import ProcessPoolExecutor

    import torch.multiprocessing as mp

    from dsen2cr.models import DSen2CR

    for d in devices:
        if d.startswith("cuda"):
            resolve_device(d)
    if isinstance(weights_or_model, DSen2CR):
        state = {k: v.detach().cpu() for k, v in weights_or_model.state_dict().items()}
        model_arg: Any = (weights_or_model.config, state)
    else:
        model_arg = str(weights_or_model)
    ctx = mp.get_context("spawn")
    dq = ctx.Queue()
    for d in devices:
        dq.put(d)
    workers = min(len(devices), len(jobs))
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(dq,)
    ) as pool:
        futures = [
            pool.submit(_worker_predict, {**job, "weights_or_model": model_arg, "progress": False})
            for job in jobs
        ]
        return [f.result() for f in futures]


def predict_scenes(
    s2: Sequence[str | os.PathLike[str]],
    weights_or_model: Any,
    out: str | os.PathLike[str],
    s1: Sequence[str | os.PathLike[str]] | None = None,
    *,
    mask_out: str | os.PathLike[str] | None = None,
    preview: str | os.PathLike[str] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """What ``dsen2cr predict`` does: one scene to a file, or several scenes to folders.

    One S2 input (after glob expansion) and an ``out`` that is not an existing folder: ``out``,
    ``mask_out`` and ``preview`` are files (:func:`predict`). Otherwise they are folders
    (:func:`predict_many`).

    Args:
        s2: S2 paths or glob patterns.
        weights_or_model: weight file or model.
        out: output file (one scene) or folder.
        s1: S1 paths or glob patterns (one per S2, sorted order), or None.
        mask_out: mask file or folder, or None.
        preview: preview PNG or folder, or None.
        **options: further keyword arguments of :func:`predict`.

    Returns:
        One summary per scene.
    """
    scenes = expand_inputs(s2, "S2 image")
    out = Path(out)
    if len(scenes) == 1 and not out.is_dir():
        sars = expand_inputs(s1, "S1 image") if s1 else []
        if len(sars) > 1:
            raise DSen2CRError(f"one S2 scene but {len(sars)} S1 images: give one S1 per S2")
        if out.suffix.lower() not in (".tif", ".tiff"):
            raise DSen2CRError(f"--out {out}: expected a .tif file name (or an existing folder)")
        sar = sars[0] if sars else None
        one = predict(
            scenes[0], weights_or_model, out, sar, mask_out=mask_out, preview=preview, **options
        )
        return [one]
    if out.suffix.lower() in (".tif", ".tiff"):
        raise DSen2CRError(f"{len(scenes)} S2 scenes: --out must be a folder, not {out}")
    return predict_many(
        scenes, weights_or_model, out, s1, mask_dir=mask_out, preview_dir=preview, **options
    )
