"""Measuring on a device: clocks without host syncs, timed loops, device facts, the matmul peak.

The helpers every benchmark section uses: :func:`timed_loop` (warm-up, then per-iteration times
from CUDA events recorded between iterations, so no host synchronisation happens inside a timed
loop; on CPU ``time.perf_counter``), :func:`device_info`, :func:`measure_peak` (the achieved
FLOP/s of a large matrix multiply, the *measured* peak that MFU is relative to) and
:class:`RunSettings` (the precision, :class:`~dsen2cr.performance.SpeedOptions` and cuDNN
autotuning one measurement runs with).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import math
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dsen2cr.models import DSen2CR
from dsen2cr.performance import SpeedOptions, configure_backends

WEIGHTS_SEED = 0
"""Seed of the random-init model that every section uses unless weights are given."""


@dataclass(frozen=True)
class RunSettings:
    """What one measurement runs with.

    Attributes:
        precision: ``"fp32"`` or ``"bf16"`` (autocast).
        speed: memory format and compilation (:class:`~dsen2cr.performance.SpeedOptions`).
        cudnn_benchmark: cuDNN autotuning (CUDA only; ignored on CPU).
    """

    precision: str
    speed: SpeedOptions
    cudnn_benchmark: bool


@dataclass(frozen=True)
class BenchmarkSizes:
    """Problem sizes and repeat counts of every section.

    Attributes:
        peak_n: side of the square matrices of ``peak``.
        peak_inner: matrix multiplies per timed repeat.
        peak_repeats: timed repeats of ``peak`` (after 2 warm-up repeats).
        infer_batch: patches per forward pass.
        infer_size: patch side in pixels.
        infer_warmup: untimed forward passes.
        infer_repeats: timed forward passes.
        train_batch: crops per training step.
        train_crop: crop side in pixels.
        train_warmup: untimed training steps.
        train_steps: timed training steps.
        scene_size: side of the generated scene in pixels.
        scene_tile: ``predict``'s core tile size.
        io_size: side of the generated scene of ``io``.
        bf16_crop: centre crop of each real patch (None: whole patches).
        bf16_patches: real patches used (None: all).
    """

    peak_n: int
    peak_inner: int
    peak_repeats: int
    infer_batch: int
    infer_size: int
    infer_warmup: int
    infer_repeats: int
    train_batch: int
    train_crop: int
    train_warmup: int
    train_steps: int
    scene_size: int
    scene_tile: int
    io_size: int
    bf16_crop: int | None
    bf16_patches: int | None


def sig(x: float | None, digits: int = 5) -> float | None:
    """``x`` rounded to ``digits`` significant digits (None and non-finite values -> None)."""
    if x is None or not math.isfinite(x):
        return None
    if x == 0:
        return 0.0
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0 or not math.isfinite(num):
        return None
    return num / den


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rates(
    r: dict[str, Any],
    batch: int,
    pixels: int,
    flops: float,
    peak_tflops: float | None,
    per: str,
    items: str,
) -> dict[str, Any]:
    """Throughput keys of a :func:`_timed_loop` result ``r`` whose iteration processes ``batch``
    items (``items``: "patches", "crops") of ``pixels`` pixels in all and ``flops`` model FLOPs:
    ``flops_per_<per>``, ``seconds_per_<per>`` (median) and ``_min``, ``timed_wall_seconds``,
    ``<items>_per_s``, ``megapixels_per_s``, ``tflops`` and ``mfu`` (None without a peak)."""
    sec = r["median"]
    tflops = flops / sec / 1e12
    return {
        f"flops_per_{per}": flops,
        f"seconds_per_{per}": sig(sec),
        f"seconds_per_{per}_min": sig(min(r["times"])),
        "timed_wall_seconds": sig(r["wall"]),
        f"{items}_per_s": sig(batch / sec),
        "megapixels_per_s": sig(pixels / sec / 1e6),
        "tflops": sig(tflops),
        "mfu": sig(ratio(tflops, peak_tflops), 4),
    }


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class Clock:
    """Per-iteration times without host synchronisation inside the timed loop.

    On CUDA :meth:`mark` records a CUDA event on the current stream (the interval between two
    events is the stream's time, idle gaps included); on CPU it reads ``time.perf_counter``.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.events: list[torch.cuda.Event] = []
        self.times: list[float] = []

    def mark(self) -> None:
        """Record a point in time (on CUDA an event on the device's current stream)."""
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            self.events.append(event)
        else:
            self.times.append(time.perf_counter())

    def intervals(self) -> list[float]:
        """Seconds between consecutive marks (synchronises the device once on CUDA)."""
        if self.cuda:
            sync(self.device)
            return [a.elapsed_time(b) / 1e3 for a, b in itertools.pairwise(self.events)]
        return [b - a for a, b in itertools.pairwise(self.times)]


def timed_loop(
    step: Callable[[], None], device: torch.device, warmup: int, repeats: int
) -> dict[str, Any]:
    """Run ``step`` ``warmup`` times, then ``repeats`` timed times.

    Returns:
        ``{"times": per-repeat seconds, "median", "wall" (timed loop, synchronised),
        "warmup_seconds"}``.
    """
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    sync(device)
    warm = time.perf_counter() - t0
    clock = Clock(device)
    t0 = time.perf_counter()
    clock.mark()
    for _ in range(repeats):
        step()
        clock.mark()
    sync(device)
    wall = time.perf_counter() - t0
    times = clock.intervals()
    return {
        "times": times,
        "median": statistics.median(times),
        "wall": wall,
        "warmup_seconds": warm,
    }


@contextlib.contextmanager
def cudnn_benchmark(device: torch.device, enabled: bool) -> Iterator[None]:
    """cuDNN autotuning on (:func:`dsen2cr.performance.configure_backends`) or off, then restored."""
    old = torch.backends.cudnn.benchmark
    if enabled:
        configure_backends(device)
    else:
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


def make_model(features: int, blocks: int) -> DSen2CR:
    """The seeded random-init DSen2CR with SAR (the global RNG state is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHTS_SEED)
        return DSen2CR(features=features, blocks=blocks, sar_channels=2)


def host_peak_rss_gib() -> float | None:
    """Peak resident memory of this process so far (GiB), from ``getrusage``."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    except (ImportError, OSError):
        return None


class GpuUtilisation:
    """Samples a CUDA GPU's utilisation (the share of time a kernel ran) in the background.

    NVML through ``pynvml`` (the ``nvidia-ml-py`` package) when it imports, else ``nvidia-smi
    --lms``; on other devices, or without either, :meth:`mean` is None. Use as a context manager
    around the work; sample times are ``time.perf_counter`` seconds.

    Args:
        device: the device whose GPU is sampled.
        interval: seconds between samples.
    """

    def __init__(self, device: torch.device, interval: float = 0.1) -> None:
        self.device = device
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self.source: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuUtilisation:
        if self.device.type != "cuda":
            return self
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        reader = self._nvml(index) or self._nvidia_smi(index)
        if reader is not None:
            self._thread = threading.Thread(target=self._run, args=(reader,), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _nvml(self, index: int) -> Callable[[], float | None] | None:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:
            return None
        self.source = "nvml"
        return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)

    def _nvidia_smi(self, index: int) -> Callable[[], float | None] | None:
        import shutil
        import subprocess

        if shutil.which("nvidia-smi") is None:
            return None
        self.source = "nvidia-smi"

        def read() -> float | None:
            out = subprocess.run(["nvidia-smi", "-i", str(index), "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5)  # fmt: skip
            try:
                return float(out.stdout.strip().splitlines()[0])
            except (ValueError, IndexError):
                return None

        return read

    def _run(self, read: Callable[[], float | None]) -> None:
        while not self._stop.is_set():
            value = read()
            if value is not None:
                self.samples.append((time.perf_counter(), value))
            self._stop.wait(self.interval)

    def mean(self, start: float, end: float) -> float | None:
        """Mean utilisation (0-1) of the samples taken between ``start`` and ``end``."""
        inside = [v for t, v in self.samples if start <= t <= end]
        return sum(inside) / len(inside) / 100.0 if inside else None


def max_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform`` elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def device_info(device: torch.device) -> dict[str, Any]:
    """Describe ``device`` and the software: name, type, versions, GPU memory, CPU, load.

    Returns:
        ``{"name", "type", "torch", "python", "platform", "cpu_model", "cpu_count",
        "torch_threads", "load_average" (1/5/15 min)}`` plus, on CUDA, ``"cuda"``, ``"cudnn"``,
        ``"gpu"``, ``"gpu_memory_gib"``, ``"compute_capability"``, ``"bf16_supported"``.
    """
    cpu = cpu_model()
    info: dict[str, Any] = {
        "name": cpu,
        "type": device.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": load_average(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            name=props.name,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    return info


# --------------------------------------------------------------------------- peak
def measure_peak(
    device: torch.device,
    *,
    n: int,
    dtype: torch.dtype,
    inner: int = 1,
    repeats: int = 5,
    warmup: int = 2,
) -> dict[str, Any]:
    """Achieved FLOP/s of an ``n x n`` by ``n x n`` matrix multiply (2 n^3 FLOPs).

    Args:
        device: where to run.
        n: matrix side.
        dtype: ``torch.bfloat16`` or ``torch.float32``.
        inner: multiplies per timed repeat (amortises the timer on fast devices).
        repeats: timed repeats; the median is reported.
        warmup: untimed repeats first.

    Returns:
        ``{"peak_tflops", "dtype", "n", "inner", "repeats", "seconds_per_matmul", "best_tflops"}``
        (TFLOP/s = 1e12 FLOP/s); on CUDA also ``"tf32_matmul"``.
    """
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    c = torch.empty(n, n, device=device, dtype=dtype)

    def step() -> None:
        for _ in range(inner):
            torch.mm(a, b, out=c)

    with torch.inference_mode():
        r = timed_loop(step, device, warmup, repeats)
    flops = 2.0 * n**3 * inner
    out: dict[str, Any] = {
        "peak_tflops": sig(flops / r["median"] / 1e12),
        "best_tflops": sig(flops / min(r["times"]) / 1e12),
        "dtype": str(dtype).removeprefix("torch."),
        "n": n,
        "inner": inner,
        "repeats": repeats,
        "warmup": warmup,
        "seconds_per_matmul": sig(r["median"] / inner),
        "data": "randn",
    }
    if device.type == "cuda":
        out["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return out
