"""Where the time of a scene run goes: seconds per stage, summed over the threads of a stage."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

STAGES = ("statistics", "decode", "warp", "network", "mask", "convert", "encode", "overviews", "layout")
"""The stages of a scene run, in the order data goes through them:

* ``statistics``: the pass over the scene for the cloud mask's shadow statistics;
* ``decode``: reading and decoding Sentinel-2 (reader threads, GDAL's decoding threads);
* ``warp``: reading Sentinel-1 onto the Sentinel-2 grid (reader threads, GDAL's warp threads);
* ``network``: the network and the cloud mask, from queuing a batch to its results on the host
  (the compute thread; on CUDA it includes waiting for the GPU);
* ``mask``: the cloud mask on CPU (writer threads; on CUDA it is part of ``network``);
* ``convert``: results to DN, nodata, counts and preview pixels (writer threads);
* ``encode``: compressing the COG blocks (writer threads);
* ``overviews``: reducing blocks into overview levels (writer threads);
* ``layout``: writing the COG file from its compressed blocks, after the last tile.
"""


class StageClock:
    """Thread-safe seconds per stage (:data:`STAGES`), plus the time threads spent waiting."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        """Count seconds for a stage.

        Args:
            stage: one of :data:`STAGES` (or a waiting time).
            seconds: wall seconds.
        """
        with self._lock:
            self._seconds[stage] = self._seconds.get(stage, 0.0) + seconds

    @contextlib.contextmanager
    def time(self, stage: str) -> Iterator[None]:
        """Count the block's wall time for a stage.

        Args:
            stage: one of :data:`STAGES` (or a waiting time).
        """
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0)

    def seconds(self) -> dict[str, float]:
        """``{stage: seconds}`` of the stages that ran, in :data:`STAGES` order, then the rest."""
        with self._lock:
            known = {s: self._seconds[s] for s in STAGES if s in self._seconds}
            return {**known, **{k: v for k, v in self._seconds.items() if k not in known}}
