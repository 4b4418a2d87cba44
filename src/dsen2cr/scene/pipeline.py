"""The tiled pipeline of a scene: reader threads -> the network on its device -> writer threads.

* **Readers** (``readers`` threads, each with its own GDAL handles) read batches of tile windows
  in row chunks (:mod:`dsen2cr.scene.inputs`; GDAL decodes the blocks of a chunk and warps S1 on
  ``threads`` threads) into a bounded queue.
* **Compute** (the calling thread) queues each batch on the device (:meth:`TileComputer.launch`)
  and, while the device computes it, collects the previous batch's results: one batch is always
  in flight. On CUDA the inputs go up through pinned memory and the prediction comes back as
  uint16 DN (:func:`dsen2cr.scaling.scaled_to_dn` on the device), half the bytes of float32.
* **Writers** (a pool of ``workers`` threads) run the sink on every tile's result: DN, nodata,
  counts, preview pixels and the COG blocks, compressed as they complete
  (:mod:`dsen2cr.scene.writers`, :mod:`dsen2cr.cog`). At most ``2 x workers`` results wait
  for them, so host memory is bounded by tiles, not by the scene.

An error (or an interrupt) in any thread stops all of them and is raised in the caller. Every
stage counts its seconds in a :class:`~dsen2cr.scene.stages.StageClock`. ``predict``, the scene
mask and ``predict_array`` are this one path with different computers and sinks.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import torch
from tqdm import tqdm

from dsen2cr.cloudmask import MASK_RADIUS, ShadowStats, cloud_shadow_mask
from dsen2cr.errors import DSen2CRError, OptionError
from dsen2cr.performance import host_memory_available, precision_mode, to_memory_format
from dsen2cr.scaling import s1_to_scaled, s2_to_scaled, scaled_to_dn
from dsen2cr.scene.inputs import SceneInputs
from dsen2cr.scene.network import LoadedNetwork
from dsen2cr.scene.stages import StageClock
from dsen2cr.scene.tiling import Tile, plan_tiles, stripe_columns
from dsen2cr.validity import s1_valid


@dataclass
class TileBatch:
    """Equally sized tile windows read together.

    Attributes:
        tiles: the tiles.
        s2: (B, 13, h, w) float32 DN.
        s1: (B, 2, h, w) float32 dB, or None.
        valid: per tile (h, w) bool, False where S2 is nodata.
    """

    tiles: list[Tile]
    s2: np.ndarray
    s1: np.ndarray | None
    valid: list[np.ndarray]


@dataclass(frozen=True)
class MaskSpec:
    """The cloud mask a computer adds: its threshold, the scene-wide shadow statistics, and the
    margin (pixels) by which a writer will dilate it (``keep_clear``), which the halo covers."""

    threshold: float
    shadow_stats: ShadowStats
    margin: int = 0


@dataclass
class TileResult:
    """What the computer gives for the core of one tile.

    Attributes:
        tile: the tile.
        valid: (ch, cw) bool, False where S2 is nodata.
        s2: (13, ch, cw) float32 DN of the input.
        s1: (2, ch, cw) float32 dB of the input, or None.
        prediction: (13, ch, cw) float32 prediction in the scaled domain, or None (mask only,
            or :attr:`dn` given instead).
        dn: (13, ch, cw) uint16 prediction in DN (:func:`~dsen2cr.scaling.scaled_to_dn`,
            nodata not yet applied), when the device converted it; else None.
        mask: (ch, cw) int8 cloud (1) / shadow (-1) / clear (0) mask, or None; meaningless where
            ``valid`` is False.
        mask_from: on CPU, the window's S2 DN and the mask spec, for the writer thread to
            compute the mask (:meth:`completed`), so that masks are computed on all writers.
        mask_window: the mask of the whole tile window (what a dilation of the core's mask
            needs), or None.
    """

    tile: Tile
    valid: np.ndarray
    s2: np.ndarray
    s1: np.ndarray | None
    prediction: np.ndarray | None
    mask: np.ndarray | None
    dn: np.ndarray | None = None
    mask_from: tuple[np.ndarray, MaskSpec] | None = None
    mask_window: np.ndarray | None = None

    def completed(self) -> TileResult:
        """This result with its deferred mask computed (in the calling thread)."""
        if self.mask_from is None:
            return self
        s2, spec = self.mask_from
        m = cloud_shadow_mask(s2, spec.threshold, shadow_stats=spec.shadow_stats)
        self.mask, self.mask_window, self.mask_from = self.tile.core_of(m), m, None
        return self

    @property
    def ok(self) -> np.ndarray:
        """(ch, cw) bool: where the prediction is valid (S2 valid and, with S1, S1 valid:
        :func:`~dsen2cr.validity.s1_valid`)."""
        if self.s1 is None:
            return self.valid
        ok: np.ndarray = self.valid & s1_valid(self.s1)
        return ok

    def prediction_dn(self) -> np.ndarray:
        """(13, ch, cw) uint16 DN of the prediction (nodata not applied)."""
        if self.dn is not None:
            return self.dn
        assert self.prediction is not None
        return scaled_to_dn(self.prediction)


_UINT16_ON: dict[str, bool] = {}


def _uint16_on(device: torch.device) -> bool:
    """Whether this PyTorch casts to uint16 on ``device`` (probed once per device)."""
    key = str(device)
    if key not in _UINT16_ON:
        try:
            _UINT16_ON[key] = int(torch.ones(1, device=device).to(torch.uint16).cpu().item()) == 1
        except (RuntimeError, TypeError):
            _UINT16_ON[key] = False
    return _UINT16_ON[key]


def tile_halo(network: LoadedNetwork | None, mask_margin: int | None) -> int:
    """Context a tile needs on each side, in pixels: the network's receptive field and, when a
    mask is computed (``mask_margin`` not None), the mask's radius plus the margin by which
    ``--keep-clear`` grows clouds."""
    halo = network.halo if network is not None else 0
    return max(halo, MASK_RADIUS + mask_margin) if mask_margin is not None else halo


class TileComputer:
    """Runs the network and/or the cloud mask on a :class:`TileBatch`.

    :meth:`launch` queues a batch's work on the device and returns at once with a function that
    waits for it and hands out the results; on CUDA the results come back by one asynchronous
    copy into pinned host memory (from PyTorch's caching host allocator, so pinned buffers are
    reused, not allocated per batch), so the pipeline collects the previous batch while the GPU
    computes this one.

    Args:
        network: the network (see :func:`dsen2cr.scene.network.load_network`), or None for the
            mask alone.
        device: where it runs (the network's device).
        precision: one of :data:`~dsen2cr.performance.PRECISIONS`.
        mask: compute the cloud mask too (on CUDA the batched torch path, on CPU numpy; both give
            bit-identical masks), or None.
        pad_batch: pad short batches to this many tiles, so that a compiled network sees one
            input shape.
        dn: give the prediction in DN (file outputs: converted on CUDA devices, where it halves
            the bytes copied back) rather than in the scaled domain (``predict_array``).
    """

    def __init__(
        self,
        network: LoadedNetwork | None,
        device: torch.device,
        precision: str = "fp32",
        mask: MaskSpec | None = None,
        pad_batch: int | None = None,
        dn: bool = False,
    ) -> None:
        if network is None and mask is None:
            raise ValueError("a TileComputer needs a network, a mask, or both")
        self.network = network
        self.device = device
        self.precision = precision
        self.mask = mask
        self.pad_batch = pad_batch
        self.dn_on_device = dn and device.type == "cuda" and _uint16_on(device)

    @property
    def halo(self) -> int:
        """Context a tile needs on each side (:func:`tile_halo`)."""
        return tile_halo(self.network, self.mask.margin if self.mask is not None else None)

    def _to_device(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        return t

    def _network(self, dn: torch.Tensor, s1: np.ndarray | None, n: int) -> torch.Tensor:
        assert self.network is not None
        cl = self.network.speed.channels_last
        sar = None
        if self.network.uses_sar:
            if s1 is None:
                raise DSen2CRError("this model uses SAR but no S1 input was given")
            # missing SAR (NaN) -> 0 in the scaled domain; those pixels become nodata anyway
            sar = to_memory_format(torch.nan_to_num(s1_to_scaled(self._to_device(s1)), nan=0.0), cl)
        optical = s2_to_scaled(dn, channels_last=cl)
        with precision_mode(self.device, self.precision):
            pred: torch.Tensor = self.network.module(optical, sar)
        if self.dn_on_device:
            return scaled_to_dn(pred[:n]).contiguous()
        if self.device.type == "cuda":  # one contiguous float32 copy back to the host
            return pred[:n].to(torch.float32, memory_format=torch.contiguous_format)
        # on the CPU the writers read it in its own memory format (no transposing copy here)
        return pred[:n].to(torch.float32)

    def _empty(self, batch: TileBatch) -> Callable[[], list[TileResult]]:
        """Results of a batch without a single valid S2 pixel (the nodata parts of a scene):
        nothing to compute, every output pixel is nodata."""

        def finish() -> list[TileResult]:
            out = []
            for i, t in enumerate(batch.tiles):
                h, w = t.core[2:]
                out.append(TileResult(
                    tile=t, valid=t.core_of(batch.valid[i]), s2=t.core_of(batch.s2[i]),
                    s1=None if batch.s1 is None else t.core_of(batch.s1[i]), prediction=None,
                    dn=np.zeros((13, h, w), np.uint16) if self.network is not None else None,
                    mask=np.zeros((h, w), np.int8) if self.mask is not None else None,
                    mask_window=(np.zeros(batch.valid[i].shape, np.int8) if self.mask is not None
                                 else None),
                ))  # fmt: skip
            return out

        return finish

    def launch(self, batch: TileBatch) -> Callable[[], list[TileResult]]:
        """Queue one batch's work on the device and return at once.

        Args:
            batch: the tile windows (their S2 DN, S1 dB and validity).

        Returns:
            A function that waits for the batch and gives one :class:`TileResult` per tile, in
            order (a batch without a valid pixel computes nothing: every result is nodata).
        """
        if not any(v.any() for v in batch.valid):
            return self._empty(batch)
        n = len(batch.tiles)
        s2, s1 = batch.s2, batch.s1
        if self.pad_batch is not None and n < self.pad_batch:  # keep one input shape
            reps = self.pad_batch - n
            s2 = np.concatenate([s2, np.repeat(s2[-1:], reps, axis=0)])
            if s1 is not None:
                s1 = np.concatenate([s1, np.repeat(s1[-1:], reps, axis=0)])
        cuda = self.device.type == "cuda"
        with torch.inference_mode():
            dn = self._to_device(s2) if (self.network is not None or cuda) else None
            pred = self._network(dn, s1, n) if self.network is not None else None  # type: ignore[arg-type]
            mask = None
            if self.mask is not None and cuda:  # on CPU: numpy/scipy in the writers (bit-identical)
                mask = cloud_shadow_mask(dn[:n], self.mask.threshold, shadow_stats=self.mask.shadow_stats)  # type: ignore[index]
            done = None
            if cuda:
                host = []
                for t in (pred, mask):
                    h = None
                    if t is not None:
                        h = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
                        h.copy_(t, non_blocking=True)
                    host.append(h)
                pred, mask = host
                done = torch.cuda.Event()
                done.record(torch.cuda.current_stream(self.device))  # the copies' stream

        def finish() -> list[TileResult]:
            if done is not None:
                done.synchronize()
            p = pred.numpy() if isinstance(pred, torch.Tensor) else None
            m = mask.numpy() if isinstance(mask, torch.Tensor) else mask
            as_dn = p is not None and p.dtype == np.uint16
            defer = self.mask is not None and m is None
            return [
                TileResult(
                    tile=t,
                    valid=t.core_of(batch.valid[i]),
                    s2=t.core_of(batch.s2[i]),
                    s1=None if batch.s1 is None else t.core_of(batch.s1[i]),
                    prediction=None if p is None or as_dn else t.core_of(p[i]),
                    dn=t.core_of(p[i]) if as_dn else None,  # type: ignore[index]
                    mask=None if m is None else t.core_of(m[i]),
                    mask_window=None if m is None else m[i],
                    mask_from=(batch.s2[i], self.mask) if defer else None,  # type: ignore[arg-type]
                )
                for i, t in enumerate(batch.tiles)
            ]

        return finish


Sink = Callable[[TileResult], None]
"""What the writers run on every tile's result (thread-safe: called from several threads)."""


class Pipeline:
    """Reader threads -> compute (calling thread) -> writer pool, with bounded queues.

    Each of the ``readers`` threads reads a contiguous run of the batches (so a reader's row
    chunks serve consecutive tile rows) with its own GDAL handles; batches reach the compute in
    whatever order the readers finish them, and results reach the writers in any order, which
    does not matter since each carries its tiles. See the module docs.
    """

    def __init__(self, readers: int = 1, workers: int = 1, clock: StageClock | None = None) -> None:
        self.readers = max(1, readers)
        self.workers = max(1, workers)
        self.q_in: queue.Queue[TileBatch | None] = queue.Queue(maxsize=max(2, self.readers + 1))
        self.slots = threading.Semaphore(2 * self.workers)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.clock = clock or StageClock()

    def _fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.stop.set()

    def _put(self, item: TileBatch | None) -> bool:
        """Queue a batch (None: the readers are done); False when the pipeline stopped first."""
        while not self.stop.is_set():
            try:
                self.q_in.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self) -> TileBatch | None:
        """The next batch; None when the readers are done or the pipeline stopped."""
        while True:
            try:
                return self.q_in.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return None

    def _reader(self, group: Sequence[list[Tile]], inputs: SceneInputs,
                stripes: dict[int, tuple[int, int]], done: Callable[[], None]) -> None:  # fmt: skip
        try:
            with inputs.open(rows=True, clock=self.clock, stripes=stripes) as read:
                for tiles in group:
                    if self.stop.is_set():
                        return
                    items = [read(t) for t in tiles]
                    s1 = None if items[0].s1 is None else np.stack([i.s1 for i in items])  # type: ignore[misc]
                    batch = TileBatch(tiles, np.stack([i.s2 for i in items]), s1,
                                      [i.valid for i in items])  # fmt: skip
                    if not self._put(batch):
                        return
        except BaseException as exc:
            self._fail(exc)
        finally:
            done()

    def _submit(self, pool: concurrent.futures.Executor, sink: Sink, result: TileResult) -> bool:
        """Hand one result to the writers; waits while ``2 x workers`` are pending."""
        t0 = time.perf_counter()
        while not self.slots.acquire(timeout=0.1):
            if self.stop.is_set():
                return False
        self.clock.add("wait_for_writers", time.perf_counter() - t0)

        def job() -> None:
            try:
                if not self.stop.is_set():
                    if result.mask_from is not None:
                        with self.clock.time("mask"):
                            result.completed()
                    sink(result)
            except BaseException as exc:
                self._fail(exc)
            finally:
                self.slots.release()

        pool.submit(job)
        return True

    def run(
        self,
        batches: Sequence[list[Tile]],
        inputs: SceneInputs,
        launch: Callable[[TileBatch], Callable[[], list[TileResult]]],
        sink: Sink,
        on_batch: Callable[[int], object],
    ) -> None:
        """Read, compute and write every batch (see the class docs).

        Args:
            batches: the tiles of each batch, in reading order.
            inputs: the scene the readers read from.
            launch: queues a batch on the device; returns the function that waits for its results
                (:meth:`TileComputer.launch`).
            sink: what the writers run on every tile's result (thread-safe).
            on_batch: called with the number of tiles of each batch handed to the writers.

        Raises:
            BaseException: the first error of any thread (the others are stopped).
        """
        n = min(self.readers, max(1, len(batches)))
        bounds = [round(i * len(batches) / n) for i in range(n + 1)]
        groups = [batches[bounds[i] : bounds[i + 1]] for i in range(n)]
        stripes = stripe_columns([t for b in batches for t in b])
        running = [n]
        lock = threading.Lock()

        def done() -> None:
            with lock:
                running[0] -= 1
                last = running[0] == 0
            if last:
                self._put(None)

        threads = [threading.Thread(target=self._reader, args=(g, inputs, stripes, done),
                                    name=f"dsen2cr-reader-{i}", daemon=True)
                   for i, g in enumerate(groups)]  # fmt: skip
        pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="dsen2cr-writer")
        try:
            for th in threads:
                th.start()
            self._compute(pool, launch, sink, on_batch)
        except BaseException:
            self.stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=self.stop.is_set())
            self.stop.set()  # readers still waiting to put a batch give up
            for th in threads:
                th.join()
        if self.errors:
            raise self.errors[0]

    def _compute(self, pool: concurrent.futures.Executor,
                 launch: Callable[[TileBatch], Callable[[], list[TileResult]]],
                 sink: Sink, on_batch: Callable[[int], object]) -> None:  # fmt: skip
        """One batch in flight: batch k is queued on the device before batch k - 1's results
        are waited for and handed to the writers."""
        pending: tuple[TileBatch, Callable[[], list[TileResult]]] | None = None
        while not self.stop.is_set():
            t0 = time.perf_counter()
            item = self._get()
            self.clock.add("wait_for_readers", time.perf_counter() - t0)
            if item is None:
                break
            with self.clock.time("network"):
                finish = launch(item)
            if pending is not None:
                self._hand_over(pool, *pending, sink, on_batch)
            pending = (item, finish)
        if pending is not None and not self.stop.is_set():
            self._hand_over(pool, *pending, sink, on_batch)

    def _hand_over(self, pool: concurrent.futures.Executor, batch: TileBatch,
                   finish: Callable[[], list[TileResult]], sink: Sink,
                   on_batch: Callable[[int], object]) -> None:  # fmt: skip
        with self.clock.time("network"):
            results = finish()
        for result in results:
            if not self._submit(pool, sink, result):
                return
        on_batch(len(batch.tiles))


def tile_bytes(window: int, batch: int, network: LoadedNetwork | None, device: torch.device) -> int:
    """Host bytes one batch of tile windows needs at most: its inputs (S2, S1, validity) in the
    reader, its results in the writers and, on the CPU, the network's largest activations
    (about three feature maps of the window).

    Args:
        window: side of the (square) tile windows, pixels.
        batch: tiles per batch.
        network: the network (its ``features`` size the activations), or None.
        device: where it runs.

    Returns:
        Bytes.
    """
    px = batch * window * window
    features = int((network.config.get("features") if network is not None else 0) or 0)
    on_host = 3 * features if device.type == "cpu" else 0
    return px * 4 * (13 + 2 + 13 + on_host) + px


def check_tile_fits(tile: int, halo: int, batch: int, network: LoadedNetwork | None,
                    device: torch.device, size: int | None = None) -> None:  # fmt: skip
    """Refuse a tile size whose batches cannot fit in this process's memory, before anything is
    allocated (memory is bounded by tiles, so a tile is what must fit).

    Args:
        tile: core tile size.
        halo: context pixels on each side.
        batch: tiles per batch.
        network: the network (its features size the activations on a CPU).
        device: where it runs.
        size: the scene's longer side (windows are at most that).

    Raises:
        OptionError: a batch of ``tile + 2 halo`` windows needs more than the memory available
            (:func:`~dsen2cr.performance.host_memory_available`).
    """
    window = min(tile + 2 * halo, size or tile + 2 * halo)
    need = tile_bytes(window, batch, network, device)
    avail = host_memory_available()
    if avail is not None and need > avail:
        raise OptionError(
            "tile", f"{tile} gives windows of {window} x {window} pixels: a batch of {batch} needs "
            f"about {need / 2**30:.3g} GiB, more than the {avail / 2**30:.3g} GiB this process "
            "may use; choose a smaller tile (or batch)",
        )


def default_readers(device: torch.device) -> int:
    """Reader threads of a run on ``device``.

    Args:
        device: where the network runs.

    Returns:
        1 on CPU, where the network needs the cores; on CUDA a quarter of the CPU cores, 1 to 4
        (each reader's chunks are also decoded and warped on GDAL's threads).
    """
    return 1 if device.type == "cpu" else min(4, max(1, (os.cpu_count() or 1) // 4))


class TileRun(TypedDict):
    """What :func:`run_tiles` did: the tiling, the threads and the time of the tile loop."""

    tiles: int
    readers: int
    workers: int
    tile: int
    halo: int
    window: list[int]
    """``[height, width]`` of every tile window, pixels."""
    seconds: float
    tiles_per_s: float
    megapixels_per_s: float


def run_tiles(
    inputs: SceneInputs,
    computer: TileComputer,
    sink: Sink,
    *,
    tile: int,
    batch: int,
    readers: int | None = None,
    workers: int = 1,
    clock: StageClock | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> TileRun:
    """Plan the tiles of a scene and run them through the :class:`Pipeline`.

    Args:
        inputs: the scene.
        computer: what runs on each batch (its ``halo`` sizes the tiles).
        sink: what the writers run on every tile's result (thread-safe).
        tile: core tile size in pixels.
        batch: tiles per batch.
        readers: reader threads (default :func:`default_readers`).
        workers: writer threads.
        clock: counts the seconds of every stage.
        progress: show a progress bar (tiles/s) when stderr is a terminal.
        desc: the progress bar's label.

    Returns:
        The :class:`TileRun` (a dict): ``tiles``, ``readers``, ``workers``, ``tile``, ``halo``,
        ``window``, ``seconds`` (the tile loop), ``tiles_per_s``, ``megapixels_per_s``.

    Raises:
        OptionError: the batches do not fit in memory (:func:`check_tile_fits`).
        BaseException: the first error of the pipeline's threads.
    """
    halo = computer.halo
    check_tile_fits(tile, halo, batch, computer.network, computer.device,
                    max(inputs.height, inputs.width))  # fmt: skip
    tiles = plan_tiles(inputs.height, inputs.width, tile, halo)
    readers = readers if readers is not None else default_readers(computer.device)
    batches = [tiles[i : i + batch] for i in range(0, len(tiles), batch)]
    t0 = time.perf_counter()
    bar = tqdm(total=len(tiles), unit="tile", desc=desc or "predict",
               disable=None if progress else True, dynamic_ncols=True, leave=False)  # fmt: skip
    try:
        Pipeline(readers, workers, clock).run(batches, inputs, computer.launch, sink, bar.update)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    return {
        "tiles": len(tiles),
        "readers": readers,
        "workers": workers,
        "tile": tile,
        "halo": halo,
        "window": list(tiles[0].window[2:]),
        "seconds": seconds,
        "tiles_per_s": len(tiles) / seconds if seconds > 0 else float("inf"),
        "megapixels_per_s": inputs.height * inputs.width / 1e6 / seconds if seconds > 0 else 0.0,
    }
