"""The tiled pipeline: reader threads -> compute (calling thread) -> writer thread.

Reader threads read (and reproject) the inputs (:mod:`dsen2cr.scene.inputs`) in block-aligned
row chunks and cut batches of tiles (:class:`TileBatch`) into a bounded queue; the calling thread
queues the network and/or the cloud mask on each batch (:class:`TileComputer`), one batch in
flight on the device; a writer thread receives one :class:`TileResult` per tile. Each thread has
its own GDAL handles. Host memory is bounded by a few row chunks and batches of tiles, not by the
scene. :func:`run_tiles` plans the tiles and runs it all with a progress bar; ``predict``, the
scene mask and ``predict_array`` are that one path with different computers and sinks.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dsen2cr.cloudmask import MASK_RADIUS, ShadowStats, cloud_shadow_mask
from dsen2cr.errors import DSen2CRError
from dsen2cr.performance import (
    SpeedOptions,
    autocast,
    configure_backends,
    prepare_model,
    to_memory_format,
)
from dsen2cr.scaling import s1_to_scaled, s2_to_scaled
from dsen2cr.scene.inputs import SceneInputs
from dsen2cr.scene.tiling import Tile, plan_tiles

_END = object()


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


@dataclass
class TileResult:
    """What the computer gives for the core of one tile.

    Attributes:
        tile: the tile.
        valid: (ch, cw) bool, False where S2 is nodata.
        s2: (13, ch, cw) float32 DN of the input.
        s1: (2, ch, cw) float32 dB of the input, or None.
        prediction: (13, ch, cw) float32 prediction in the scaled domain, or None (mask only).
        mask: (ch, cw) int8 cloud (1) / shadow (-1) / clear (0) mask, or None; meaningless where
            ``valid`` is False.
    """

    tile: Tile
    valid: np.ndarray
    s2: np.ndarray
    s1: np.ndarray | None
    prediction: np.ndarray | None
    mask: np.ndarray | None

    @property
    def ok(self) -> np.ndarray:
        """(ch, cw) bool: where the prediction is valid (S2 valid and, with S1, S1 finite)."""
        if self.s1 is None:
            return self.valid
        return self.valid & np.isfinite(self.s1).all(axis=0)


@dataclass(frozen=True)
class MaskSpec:
    """The cloud mask a computer adds: its threshold and the scene-wide shadow statistics."""

    threshold: float
    shadow_stats: ShadowStats


class TileComputer:
    """Runs the network and/or the cloud mask on a :class:`TileBatch`.

    :meth:`launch` queues a batch's work on the device and returns at once with a function that
    waits for it and hands out the results; on CUDA the results come back by one asynchronous
    copy into pinned host memory, so the pipeline prepares and queues the next batch while the
    GPU computes this one.

    Args:
        model: the network (inputs and output in the scaled domain; ``uses_sar``), or None for
            the mask alone.
        device: where it runs; the model is moved there (:func:`dsen2cr.performance.prepare_model`).
        precision: ``"fp32"`` or ``"bf16"``.
        mask: compute the cloud mask too (on CUDA the batched torch path, on CPU numpy; both give
            bit-identical masks), or None.
        speed: memory format and compilation of the network.
        pad_batch: pad short batches to this many tiles, so that a compiled network sees one
            input shape.
    """

    def __init__(
        self,
        model: nn.Module | None,
        device: torch.device,
        precision: str = "fp32",
        mask: MaskSpec | None = None,
        speed: SpeedOptions | None = None,
        pad_batch: int | None = None,
    ) -> None:
        if model is None and mask is None:
            raise ValueError("a TileComputer needs a model, a mask, or both")
        self.speed = speed or SpeedOptions()
        self.model = model
        self.device = device
        self.precision = precision
        self.mask = mask
        self.pad_batch = pad_batch
        configure_backends(device)  # cuDNN autotuning: every tile has the same shape
        if model is not None:
            prepare_model(model, device, self.speed)

    @property
    def halo(self) -> int:
        """Context a tile needs on each side: the receptive field and/or the mask's radius."""
        halo = int(getattr(self.model, "receptive_field_radius", 0)) if self.model else 0
        return max(halo, MASK_RADIUS) if self.mask is not None else halo

    def _to_device(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        return t

    def _network(self, dn: torch.Tensor, s1: np.ndarray | None, n: int) -> torch.Tensor:
        assert self.model is not None
        cl = self.speed.channels_last
        sar = None
        if self.model.uses_sar:
            if s1 is None:
                raise DSen2CRError("this model uses SAR but no S1 input was given")
            # missing SAR (NaN) -> 0 in the scaled domain; those pixels become nodata anyway
            sar = to_memory_format(torch.nan_to_num(s1_to_scaled(self._to_device(s1)), nan=0.0), cl)
        optical = to_memory_format(s2_to_scaled(dn), cl)
        with autocast(self.device, self.precision):
            pred = self.model(optical, sar)
        # float32 NCHW, so that host-side slices are plain views
        return pred[:n].to(torch.float32, memory_format=torch.contiguous_format)

    def launch(self, batch: TileBatch) -> Callable[[], list[TileResult]]:
        """Queue one batch; the returned function waits for it and gives one result per tile."""
        n = len(batch.tiles)
        s2, s1 = batch.s2, batch.s1
        if self.pad_batch is not None and n < self.pad_batch:  # keep one input shape
            reps = self.pad_batch - n
            s2 = np.concatenate([s2, np.repeat(s2[-1:], reps, axis=0)])
            if s1 is not None:
                s1 = np.concatenate([s1, np.repeat(s1[-1:], reps, axis=0)])
        cuda = self.device.type == "cuda"
        with torch.inference_mode():
            dn = self._to_device(s2) if (self.model is not None or cuda) else None
            pred = self._network(dn, s1, n) if self.model is not None else None  # type: ignore[arg-type]
            mask = None
            if self.mask is not None:
                # on CPU the numpy/scipy path is faster; both give bit-identical masks
                src = dn[:n] if cuda else s2[:n]  # type: ignore[index]
                mask = cloud_shadow_mask(src, self.mask.threshold, shadow_stats=self.mask.shadow_stats)
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
            return [
                TileResult(
                    tile=t,
                    valid=t.core_of(batch.valid[i]),
                    s2=t.core_of(batch.s2[i]),
                    s1=None if batch.s1 is None else t.core_of(batch.s1[i]),
                    prediction=None if p is None else t.core_of(p[i]),
                    mask=None if m is None else t.core_of(m[i]),
                )
                for i, t in enumerate(batch.tiles)
            ]

        return finish


class Pipeline:
    """Reader threads -> compute (calling thread) -> writer thread, with bounded queues.

    Each of the ``readers`` threads reads a contiguous run of the batches (so a reader's row
    chunks serve consecutive tile rows) with its own GDAL handles; batches reach the compute in
    whatever order the readers finish them, which does not matter since each carries its tiles.
    An error (or an interrupt) in any thread stops all of them and is raised in the caller.
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
        batches: Sequence[list[Tile]],
        inputs: SceneInputs,
        launch: Callable[[TileBatch], Callable[[], list[TileResult]]],
        open_sink: Callable[[], contextlib.AbstractContextManager[Callable[[TileResult], None]]],
        on_batch: Callable[[int], Any],
    ) -> None:
        """Read, compute and write every batch (see the class docs)."""
        n = min(self.readers, max(1, len(batches)))
        bounds = [round(i * len(batches) / n) for i in range(n + 1)]
        groups = [batches[bounds[i] : bounds[i + 1]] for i in range(n)]
        running = [n]
        lock = threading.Lock()

        def reader(group: Sequence[list[Tile]]) -> None:
            try:
                with inputs.open(rows=True) as read:
                    for tiles in group:
                        if self.stop.is_set():
                            return
                        items = [read(t) for t in tiles]
                        s1 = None if items[0].s1 is None else np.stack([i.s1 for i in items])  # type: ignore[misc]
                        batch = TileBatch(tiles, np.stack([i.s2 for i in items]), s1,
                                          [i.valid for i in items])  # fmt: skip
                        if not self._put(self.q_in, batch):
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
                        sink(item)
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

        def hand_over(batch: TileBatch, finish: Callable[[], list[TileResult]]) -> None:
            for result in finish():
                if not self._put(self.q_out, result):
                    break
            on_batch(len(batch.tiles))

        for th in threads:
            th.start()
        try:
            # one batch in flight: batch k is queued on the device before batch k - 1's
            # results are waited for and handed to the writer
            pending: tuple[TileBatch, Callable[[], list[TileResult]]] | None = None
            while not self.stop.is_set():
                item = self._get(self.q_in)
                if item is _END:
                    break
                finish = launch(item)
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


def default_readers(device: torch.device) -> int:
    """Reader threads: 1 on CPU, where the network needs the cores; on CUDA a quarter of the CPU
    cores, 1 to 4."""
    return 1 if device.type == "cpu" else min(4, max(1, (os.cpu_count() or 1) // 4))


def run_tiles(
    inputs: SceneInputs,
    computer: TileComputer,
    open_sink: Callable[[], contextlib.AbstractContextManager[Callable[[TileResult], None]]],
    *,
    tile: int,
    batch: int,
    readers: int | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> dict[str, Any]:
    """Plan the tiles of a scene and run them through the :class:`Pipeline`.

    Args:
        inputs: the scene.
        computer: what runs on each batch (its ``halo`` sizes the tiles).
        open_sink: a context manager factory yielding the writer's ``write(result)``.
        tile: core tile size in pixels.
        batch: tiles per batch.
        readers: reader threads (default :func:`default_readers`).
        progress: show a progress bar (tiles/s) when stderr is a terminal.
        desc: the progress bar's label.

    Returns:
        ``{"tiles", "readers", "tile", "halo", "window", "seconds", "tiles_per_s",
        "megapixels_per_s"}``.
    """
    halo = computer.halo
    tiles = plan_tiles(inputs.height, inputs.width, tile, halo)
    readers = readers if readers is not None else default_readers(computer.device)
    batches = [tiles[i : i + batch] for i in range(0, len(tiles), batch)]
    t0 = time.perf_counter()
    bar = tqdm(total=len(tiles), unit="tile", desc=desc or "predict",
               disable=None if progress else True, dynamic_ncols=True, leave=False)  # fmt: skip
    try:
        Pipeline(readers=readers).run(batches, inputs, computer.launch, open_sink, bar.update)
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
