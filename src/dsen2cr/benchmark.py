"""``dsen2cr benchmark``: speed and model FLOP utilisation of DSen2-CR on the device at hand.

One run measures, on one device (``cuda`` or ``cpu``), in the precision used (bf16 autocast on
CUDA, fp32 on CPU by default), and returns one JSON-serialisable dict:

- ``peak``: the achieved FLOP/s of a large square matrix multiply in that precision (random data,
  warm-up, median of repeats), the *measured* peak ``peak_tflops`` that MFU is relative to;
- ``infer``: forward passes of the paper model (F=256, B=16, with SAR) on batches of patches
  (GPU: 16 of 256 x 256) under ``torch.inference_mode``: patches/s, megapixels/s, achieved
  TFLOP/s and ``mfu`` = model FLOP/s / ``peak_tflops``;
- ``train``: the exact training step of :class:`dsen2cr.training.DSen2CRModule` (cloud mask on the
  device, forward under autocast, CARL in float32, backward, NAdam step) on a batch of synthetic
  crops (GPU: 16 of 128 x 128): crops/s, TFLOP/s (``TRAIN_FLOP_FACTOR`` x forward FLOPs), ``mfu``;
- ``scene``: end-to-end :func:`dsen2cr.inference.predict` of a generated georeferenced scene
  (GPU: a full 10980 x 10980 Sentinel-2 tile) with its I/O, in megapixels/s;
- ``bf16``: correctness of bf16 autocast against float32 on real SEN12MS-CR patches: mean
  absolute difference in reflectance (target: <= 1e-2);
- ``ladder`` (when asked): what each optimisation gains, one change at a time, for ``infer`` and
  ``train``: fp32 NCHW -> +channels_last -> +bf16 autocast -> +cudnn.benchmark (CUDA) ->
  +torch.compile.

Model FLOPs are :func:`dsen2cr.performance.conv_flops_per_pixel` (2 FLOPs per multiply-accumulate
of every convolution; 37,877,760 per pixel for the paper model) times the pixels processed.
Timings: warm-up iterations first (they include cuDNN autotuning and compilation), then the median
of per-iteration times; on CUDA those come from CUDA events recorded between iterations, so no
host synchronisation happens inside a timed loop (the loop's wall time, read after a
``torch.cuda.synchronize``, is reported beside them).

``quick=True`` shrinks every size so that a CPU run takes well under two minutes; the sizes used
are stated in each section of the result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dsen2cr.errors import DSen2CRError

__all__ = [
    "DEFAULT_REALDATA",
    "SECTIONS",
    "BenchmarkSizes",
    "RunSettings",
    "bench_bf16",
    "bench_infer",
    "bench_ladder",
    "bench_scene",
    "bench_train",
    "benchmark_sizes",
    "cpu_model",
    "device_info",
    "ladder_rungs",
    "make_inputs",
    "make_train_batch",
    "measure_peak",
    "run_benchmark",
]

SECTIONS: tuple[str, ...] = ("peak", "infer", "train", "scene", "bf16")
"""The sections of a default run, in the order they run."""

DEFAULT_REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "sen12mscr_triplets"
"""Real SEN12MS-CR triplets beside the repository (``{id}_s2_cloudy.tif``, ``{id}_s1.tif``)."""

BF16_MAE_LIMIT = 1e-2
"""Largest acceptable mean |bf16 - fp32| of the prediction, in reflectance."""

SCENE_BLOCK = 512
"""Block size of the generated scene GeoTIFFs (and of the synthetic blocks they are tiled from)."""

WEIGHTS_SEED = 0
"""Seed of the random-init model that every section uses unless weights are given."""


# --------------------------------------------------------------------------- settings & sizes
@dataclass(frozen=True)
class RunSettings:
    """The speed settings one measurement runs with.

    Attributes:
        precision: ``"fp32"`` or ``"bf16"`` (autocast).
        channels_last: NHWC network and inputs.
        compile: ``torch.compile`` of the network.
        cudnn_benchmark: cuDNN autotuning (CUDA only; ignored on CPU).
    """

    precision: str
    channels_last: bool
    compile: bool
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
    bf16_crop: int | None
    bf16_patches: int | None


def benchmark_sizes(device_type: str, quick: bool = False) -> BenchmarkSizes:
    """The sizes of a run on ``device_type`` (``"cuda"`` or ``"cpu"``).

    CUDA: 8192^2 bf16 matmul, 16 patches of 256^2, 16 crops of 128^2, a full 10980^2 Sentinel-2
    tile (``quick``: 2048^2, 4 real patches). CPU: 2048^2 fp32 matmul, 1 patch of 256^2, 2 crops
    of 128^2, a 512^2 scene; ``quick``: 1536^2, 1 patch of 64^2, 2 crops of 64^2, a 256^2 scene,
    64^2 centre crops of 4 real patches (a run of the paper model takes 75-80 s on 2
    cores).
    """
    if device_type == "cuda":
        return BenchmarkSizes(
            peak_n=8192, peak_inner=10, peak_repeats=5 if quick else 10,
            infer_batch=16, infer_size=256, infer_warmup=3, infer_repeats=5 if quick else 20,
            train_batch=16, train_crop=128, train_warmup=5, train_steps=10 if quick else 30,
            scene_size=2048 if quick else 10980, scene_tile=512,
            bf16_crop=None, bf16_patches=4 if quick else None,
        )  # fmt: skip
    if quick:
        return BenchmarkSizes(
            peak_n=1536, peak_inner=1, peak_repeats=5,
            infer_batch=1, infer_size=64, infer_warmup=1, infer_repeats=3,
            train_batch=2, train_crop=64, train_warmup=1, train_steps=2,
            scene_size=256, scene_tile=256, bf16_crop=64, bf16_patches=4,
        )  # fmt: skip
    return BenchmarkSizes(
        peak_n=2048, peak_inner=1, peak_repeats=5,
        infer_batch=1, infer_size=256, infer_warmup=1, infer_repeats=3,
        train_batch=2, train_crop=128, train_warmup=1, train_steps=3,
        scene_size=512, scene_tile=512, bf16_crop=None, bf16_patches=None,
    )  # fmt: skip


# --------------------------------------------------------------------------- helpers
def _sig(x: float | None, digits: int = 5) -> float | None:
    """``x`` rounded to ``digits`` significant digits (None and non-finite values -> None)."""
    if x is None or not math.isfinite(x):
        return None
    if x == 0:
        return 0.0
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0 or not math.isfinite(num):
        return None
    return num / den


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rates(
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
        f"seconds_per_{per}": _sig(sec),
        f"seconds_per_{per}_min": _sig(min(r["times"])),
        "timed_wall_seconds": _sig(r["wall"]),
        f"{items}_per_s": _sig(batch / sec),
        "megapixels_per_s": _sig(pixels / sec / 1e6),
        "tflops": _sig(tflops),
        "mfu": _sig(_ratio(tflops, peak_tflops), 4),
    }


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class _Clock:
    """Per-iteration times without host synchronisation inside the timed loop.

    On CUDA :meth:`mark` records a CUDA event on the current stream (the interval between two
    events is the stream's time, idle gaps included); on CPU it reads ``time.perf_counter``.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.marks: list[Any] = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def intervals(self) -> list[float]:
        """Seconds between consecutive marks (synchronises the device once on CUDA)."""
        if self.cuda:
            _sync(self.device)
            return [a.elapsed_time(b) / 1e3 for a, b in itertools.pairwise(self.marks)]
        return [b - a for a, b in itertools.pairwise(self.marks)]


def _timed_loop(
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
    _sync(device)
    warm = time.perf_counter() - t0
    clock = _Clock(device)
    t0 = time.perf_counter()
    clock.mark()
    for _ in range(repeats):
        step()
        clock.mark()
    _sync(device)
    wall = time.perf_counter() - t0
    times = clock.intervals()
    return {
        "times": times,
        "median": statistics.median(times),
        "wall": wall,
        "warmup_seconds": warm,
    }


@contextlib.contextmanager
def _cudnn_benchmark(device: torch.device, enabled: bool) -> Iterator[None]:
    """cuDNN autotuning on (:func:`dsen2cr.performance.configure_backends`) or off, then restored."""
    from dsen2cr.performance import configure_backends

    old = torch.backends.cudnn.benchmark
    if enabled:
        configure_backends(device)
    else:
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


def _make_model(features: int, blocks: int) -> Any:
    """The seeded random-init DSen2CR with SAR (the global RNG state is left untouched)."""
    from dsen2cr.models import DSen2CR

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHTS_SEED)
        return DSen2CR(features=features, blocks=blocks, sar_channels=2)


def _max_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def _reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform`` elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _load_average() -> list[float] | None:
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
        "load_average": _load_average(),
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
        r = _timed_loop(step, device, warmup, repeats)
    flops = 2.0 * n**3 * inner
    out: dict[str, Any] = {
        "peak_tflops": _sig(flops / r["median"] / 1e12),
        "best_tflops": _sig(flops / min(r["times"]) / 1e12),
        "dtype": str(dtype).removeprefix("torch."),
        "n": n,
        "inner": inner,
        "repeats": repeats,
        "warmup": warmup,
        "seconds_per_matmul": _sig(r["median"] / inner),
        "data": "randn",
    }
    if device.type == "cuda":
        out["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return out


# --------------------------------------------------------------------------- infer
def bench_infer(
    device: torch.device,
    settings: RunSettings,
    *,
    batch: int,
    size: int,
    warmup: int,
    repeats: int,
    features: int = 256,
    blocks: int = 16,
    peak_tflops: float | None = None,
) -> dict[str, Any]:
    """Forward passes of DSen2-CR on ``batch`` random patches of ``size x size``.

    Inputs are random but in the realistic range of the scaled domain: optical (B, 13, H, W)
    ~ U(0, 1.5), SAR (B, 2, H, W) ~ U(0, 2). The model (seeded random init) is prepared with
    :func:`dsen2cr.performance.prepare_model` and run under ``torch.inference_mode`` and
    :func:`dsen2cr.performance.autocast`.

    Returns:
        ``batch``, ``size``, ``flops_per_batch``, ``seconds_per_batch`` (median),
        ``patches_per_s``, ``megapixels_per_s``, ``tflops`` (model FLOPs / time, 1e12/s), ``mfu``
        (``tflops / peak_tflops``, None without a peak), ``warmup_seconds``, ``max_memory_gib``
        (CUDA), ...
    """
    from dsen2cr.performance import autocast, conv_flops_per_pixel, prepare_model, to_memory_format

    model = _make_model(features, blocks).eval()
    fpp = conv_flops_per_pixel(model)
    gen = torch.Generator().manual_seed(1)
    optical = torch.rand(batch, 13, size, size, generator=gen) * 1.5
    sar = torch.rand(batch, 2, size, size, generator=gen) * 2.0
    optical = to_memory_format(optical.to(device), settings.channels_last)
    sar = to_memory_format(sar.to(device), settings.channels_last)
    _reset_memory(device)
    with _cudnn_benchmark(device, settings.cudnn_benchmark):
        prepare_model(model, device, channels_last=settings.channels_last, compile=settings.compile)

        def step() -> None:
            model(optical, sar)

        with torch.inference_mode(), autocast(device, settings.precision):
            r = _timed_loop(step, device, warmup, repeats)
    pixels = batch * size * size
    return {
        "batch": batch,
        "size": size,
        "inputs": "random, scaled domain: optical U(0, 1.5), SAR U(0, 2)",
        "warmup": warmup,
        "repeats": repeats,
        **_rates(r, batch, pixels, fpp * pixels, peak_tflops, "batch", "patches"),
        "warmup_seconds": _sig(r["warmup_seconds"], 3),
        "max_memory_gib": _max_memory_gib(device),
    }


# --------------------------------------------------------------------------- train
def make_train_batch(
    batch_size: int, crop: int, device: torch.device | str, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A training batch of synthetic scenes (30-70 % cloud cover) on ``device``.

    Args:
        batch_size: crops B.
        crop: crop side in pixels.
        device: target device.
        seed: seed of the cloud covers and scenes.

    Returns:
        ``{"optical": (B, 13, crop, crop), "sar": (B, 2, crop, crop),
        "target": (B, 13, crop, crop)}``, float32 in the scaled domain (NCHW, as the data loader
        delivers it).
    """
    from dsen2cr import scaling
    from dsen2cr.synthetic import make_scene

    rng = np.random.default_rng(seed)
    scenes = [
        make_scene(crop, crop, seed=seed + i, cloud_cover=float(rng.uniform(0.3, 0.7)))
        for i in range(batch_size)
    ]

    def stack(key: str, fn: Callable[[Any], Any]) -> torch.Tensor:
        return torch.stack([torch.from_numpy(np.asarray(fn(s[key]))) for s in scenes]).to(device)

    return {
        "optical": stack("s2_cloudy", scaling.s2_to_scaled),
        "sar": stack("s1", scaling.s1_to_scaled),
        "target": stack("s2", scaling.s2_to_scaled),
    }


def bench_train(
    device: torch.device,
    settings: RunSettings,
    *,
    batch: int,
    crop: int,
    warmup: int,
    steps: int,
    features: int = 256,
    blocks: int = 16,
    peak_tflops: float | None = None,
) -> dict[str, Any]:
    """Training steps of :class:`dsen2cr.training.DSen2CRModule` with the CARL loss.

    One step is what ``training_step`` and Lightning's optimisation run: the cloud/shadow mask on
    the device, the forward pass under :func:`dsen2cr.performance.autocast`, the CARL loss in
    float32, backward, and the NAdam step. channels_last and compilation go through the
    module's ``speed`` config (``configure_model`` compiles). Losses stay on the device during
    the timed loop and are read afterwards.

    Returns:
        ``batch``, ``crop``, ``flops_per_step`` (``TRAIN_FLOP_FACTOR`` x forward FLOPs),
        ``seconds_per_step`` (median), ``crops_per_s``, ``megapixels_per_s``, ``tflops``,
        ``mfu``, ``loss_first`` (first warm-up step), ``loss_last``, ``max_memory_gib`` (CUDA),
        ...
    """
    from dsen2cr.performance import TRAIN_FLOP_FACTOR, autocast, conv_flops_per_pixel
    from dsen2cr.training import DSen2CRModule, load_config

    cfg = load_config({
        "model": {"features": features, "blocks": blocks, "sar": True},
        "loss": {"name": "carl"},
        "speed": {"channels_last": settings.channels_last, "compile": settings.compile},
    })  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHTS_SEED)
        module = DSen2CRModule(cfg)
    fpp = conv_flops_per_pixel(module.model)
    module.to(device)
    module.configure_model()
    module.train()
    optimizer = module.configure_optimizers()
    data = make_train_batch(batch, crop, device)
    optical, sar, target = data["optical"], data["sar"], data["target"]
    losses: list[torch.Tensor] = []

    def step() -> None:
        mask = module.cloud_mask(data, optical)
        with autocast(device, settings.precision):
            pred = module(optical, sar)
        loss = module.compute_loss(pred, target, optical, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())

    _reset_memory(device)
    with _cudnn_benchmark(device, settings.cudnn_benchmark):
        r = _timed_loop(step, device, warmup, steps)
    loss_values = torch.stack(losses).float().cpu().tolist()
    pixels = batch * crop * crop
    return {
        "batch": batch,
        "crop": crop,
        "data": "synthetic scenes (dsen2cr.synthetic.make_scene), 30-70 % cloud cover",
        "loss": "carl",
        "optimizer": "NAdam",
        "warmup": warmup,
        "steps": steps,
        **_rates(r, batch, pixels, TRAIN_FLOP_FACTOR * fpp * pixels, peak_tflops, "step", "crops"),
        "loss_first": _sig(loss_values[0]),
        "loss_last": _sig(loss_values[-1]),
        "warmup_seconds": _sig(r["warmup_seconds"], 3),
        "max_memory_gib": _max_memory_gib(device),
    }


# --------------------------------------------------------------------------- scene
def make_inputs(folder: str | os.PathLike[str], size: int, seed: int = 0) -> tuple[Path, Path]:
    """Write a ``size x size`` georeferenced scene: S2 at 10 m and its S1 at 20 m.

    Tiled from two synthetic blocks of :data:`SCENE_BLOCK` pixels (mirrored alternately), block by
    block, so generating even a full Sentinel-2 tile needs little memory. Both rasters are in
    EPSG:32633 with the same origin, so S1 goes through ``predict``'s bilinear warping path.

    Args:
        folder: existing output folder.
        size: scene side in pixels.
        seed: seed of the synthetic blocks.

    Returns:
        ``(s2_path, s1_path)``: ``bench_s2.tif`` (13 bands uint16 DN, deflate, 512 blocks,
        BigTIFF when needed) and ``bench_s1.tif`` (2 bands float32 dB, ``ceil(size / 2)`` px).
    """
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from dsen2cr.synthetic import make_scene

    folder = Path(folder)
    bs = min(SCENE_BLOCK, size)
    blocks = [make_scene(bs, bs, seed=seed + k, cloud_cover=0.35) for k in range(2)]
    s2_path, s1_path = folder / "bench_s2.tif", folder / "bench_s1.tif"
    origin = (399960.0, 5600040.0)
    common = {"driver": "GTiff", "tiled": True, "blockxsize": SCENE_BLOCK,
              "blockysize": SCENE_BLOCK, "compress": "deflate", "crs": "EPSG:32633",
              "BIGTIFF": "IF_SAFER"}  # fmt: skip
    s1_size = (size + 1) // 2
    with rasterio.open(s2_path, "w", width=size, height=size, count=13, dtype="uint16",
                       transform=from_origin(*origin, 10, 10), **common) as s2, \
         rasterio.open(s1_path, "w", width=s1_size, height=s1_size, count=2, dtype="float32",
                       transform=from_origin(*origin, 20, 20), **common) as s1:  # fmt: skip
        for i, r in enumerate(range(0, size, SCENE_BLOCK)):
            for j, c in enumerate(range(0, size, SCENE_BLOCK)):
                sc = blocks[(i + j) % 2]
                h, w = min(SCENE_BLOCK, size - r), min(SCENE_BLOCK, size - c)
                flip = (slice(None), slice(None, None, -1 if i % 2 else 1),
                        slice(None, None, -1 if j % 2 else 1))  # fmt: skip
                s2.write(sc["s2_cloudy"][flip][:, :h, :w], window=Window(c, r, w, h))
                sar = sc["s1"][flip][:, ::2, ::2]
                s1.write(sar[:, : (h + 1) // 2, : (w + 1) // 2],
                         window=Window(c // 2, r // 2, (w + 1) // 2, (h + 1) // 2))  # fmt: skip
    return s2_path, s1_path


def bench_scene(
    device: torch.device,
    settings: RunSettings,
    *,
    size: int,
    tile: int,
    features: int = 256,
    blocks: int = 16,
    peak_tflops: float | None = None,
    readers: int | None = None,
) -> dict[str, Any]:
    """End-to-end :func:`dsen2cr.inference.predict` of a generated ``size x size`` scene.

    The scene (:func:`make_inputs`) and the seeded model's weight file are written to a temporary
    folder first (timed separately, ``input_generation_seconds``). ``predict`` reads the weight
    file, reads and reprojects the inputs in row chunks, runs the network tile by tile and writes the
    Cloud-Optimized GeoTIFF.

    Returns:
        ``size``, ``megapixels``, ``tile``, ``halo``, ``window``, ``tiles``, ``batch``,
        ``seconds`` (predict's own timing: tiles read, predicted, written),
        ``megapixels_per_s`` (from it), ``readers``, ``cog_seconds`` (overviews and COG
        translation), ``wall_seconds`` (the whole ``predict`` call: model loading, tiles and the
        COG translation: the end-to-end figure), ``wall_megapixels_per_s``,
        ``network_tflops`` / ``mfu`` (network FLOPs of all tile windows, halos included, over
        ``seconds``), ``halo_overhead`` (network pixels / scene pixels), ``output_mib``.
    """
    from dsen2cr.inference import predict
    from dsen2cr.performance import conv_flops_per_pixel

    tile = min(tile, size)
    with tempfile.TemporaryDirectory(prefix="dsen2cr-benchmark-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        s2_path, s1_path = make_inputs(folder, size)
        model = _make_model(features, blocks)
        fpp = conv_flops_per_pixel(model)
        weights = model.save_pretrained(folder / "bench.safetensors")
        del model
        gen_s = time.perf_counter() - t0
        out = folder / "bench_pred.tif"
        t0 = time.perf_counter()
        summary = predict(
            s2_path, weights, out, s1_path, tile=tile, batch=None, device=str(device),
            precision=settings.precision, progress=False,
            channels_last=settings.channels_last, compile=settings.compile, readers=readers,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        out_mib = out.stat().st_size / 2**20
    scene_px = size * size
    win_h, win_w = summary["window"]
    net_px = summary["tiles"] * win_h * win_w
    sec = float(summary["seconds"])
    tflops = fpp * net_px / sec / 1e12
    return {
        "size": size,
        "megapixels": _sig(scene_px / 1e6),
        "inputs": "generated: 13-band uint16 S2 GeoTIFF (deflate) + 2-band S1 at 20 m (warped)",
        "tile": summary["tile"],
        "halo": summary["halo"],
        "window": summary["window"],
        "tiles": summary["tiles"],
        "batch": summary["batch"],
        "precision": summary["precision"],
        "seconds": _sig(sec),
        "megapixels_per_s": _sig(float(summary["megapixels_per_s"])),
        "readers": summary["readers"],
        "cog_seconds": _sig(float(summary["cog_seconds"])),
        "wall_seconds": _sig(wall),
        "wall_megapixels_per_s": _sig(scene_px / wall / 1e6),
        "network_tflops": _sig(tflops),
        "mfu": _sig(_ratio(tflops, peak_tflops), 4),
        "halo_overhead": _sig(net_px / scene_px, 4),
        "output_mib": _sig(out_mib, 4),
        "input_generation_seconds": _sig(gen_s, 3),
    }


# --------------------------------------------------------------------------- bf16
def _read_patch(path: Path, bands: int, what: str) -> np.ndarray:
    from rasterio.errors import NotGeoreferencedWarning

    from dsen2cr.io import read_raster

    with warnings.catch_warnings():  # SEN12MS-CR copies without georeferencing are fine
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        data, _ = read_raster(path, expected_bands=bands, what=what)
    return data


def bench_bf16(
    device: torch.device,
    *,
    realdata: str | os.PathLike[str] | None = None,
    crop: int | None = None,
    max_patches: int | None = None,
    channels_last: bool = True,
    weights: str | os.PathLike[str] | None = None,
    features: int = 256,
    blocks: int = 16,
) -> dict[str, Any]:
    """bf16 autocast against float32 on real SEN12MS-CR patches.

    For each ``*_s2_cloudy.tif`` (13 bands DN) with its ``*_s1.tif`` (VV, VH dB) in ``realdata``
    (sorted by name; the first ``max_patches``; the centre ``crop x crop`` when given), the model
    runs once in float32 (on CUDA with TF32 convolutions off) and once under bf16 autocast; the
    difference of the predictions is taken in reflectance (scaled x 0.2).

    Args:
        device: where to run.
        realdata: folder of the triplets (default :data:`DEFAULT_REALDATA`).
        crop: centre crop side (None: whole patches).
        max_patches: patches used (None: all).
        channels_last: NHWC network and inputs.
        weights: a weight file (``DSen2CR.from_pretrained``); default a random-init model
            (seed 0) of ``features`` x ``blocks``.
        features: F of the random-init model.
        blocks: B of the random-init model.

    Returns:
        ``{"mae_reflectance" (mean over patches of the mean |bf16 - fp32|), "max_abs_reflectance",
        "patches", "within_1e-2", "per_patch", ...}``, or ``{"skipped": reason}`` when the folder
        or its patches are absent.
    """
    from dsen2cr.models import DSen2CR
    from dsen2cr.performance import autocast, prepare_model, to_memory_format
    from dsen2cr.scaling import s1_to_scaled, s2_to_scaled, scaled_to_reflectance

    folder = Path(realdata) if realdata is not None else DEFAULT_REALDATA
    if not folder.is_dir():
        return {"skipped": f"real-data folder not found: {folder}"}
    files = sorted(folder.glob("*_s2_cloudy.tif"))
    if not files:
        return {"skipped": f"no *_s2_cloudy.tif in {folder}"}
    if max_patches is not None:
        files = files[:max_patches]
    if weights is not None:
        model = DSen2CR.from_pretrained(weights)
        weights_desc = str(weights)
    else:
        model = _make_model(features, blocks)
        weights_desc = f"random init, seed {WEIGHTS_SEED}"
    prepare_model(model.eval(), device, channels_last=channels_last)
    cuda = device.type == "cuda"
    per_patch: list[dict[str, Any]] = []
    maes: list[float] = []
    maxes: list[float] = []
    for s2_path in files:
        pid = s2_path.name.removesuffix("_s2_cloudy.tif")
        s1_path = s2_path.with_name(f"{pid}_s1.tif")
        s2 = _read_patch(s2_path, 13, "S2 patch").astype(np.float32)
        s1 = _read_patch(s1_path, 2, "S1 patch").astype(np.float32)
        if s1.shape[1:] != s2.shape[1:]:
            raise DSen2CRError(f"{s1_path} is {s1.shape[1:]} pixels, {s2_path} {s2.shape[1:]}")
        h, w = s2.shape[1:]
        if crop is not None and crop < min(h, w):
            r, c = (h - crop) // 2, (w - crop) // 2
            s2, s1 = s2[:, r : r + crop, c : c + crop], s1[:, r : r + crop, c : c + crop]
        optical = to_memory_format(s2_to_scaled(torch.from_numpy(s2))[None].to(device), channels_last)
        sar = torch.nan_to_num(s1_to_scaled(torch.from_numpy(s1)), nan=0.0)[None].to(device)
        sar = to_memory_format(sar, channels_last)
        with torch.inference_mode():
            old_tf32 = torch.backends.cudnn.allow_tf32
            torch.backends.cudnn.allow_tf32 = False
            try:
                ref = model(optical, sar).float()
            finally:
                torch.backends.cudnn.allow_tf32 = old_tf32
            with autocast(device, "bf16"):
                low = model(optical, sar).float()
            diff = scaled_to_reflectance((low - ref).abs())
            mae, mx = float(diff.mean()), float(diff.max())
        maes.append(mae)
        maxes.append(mx)
        per_patch.append({
            "id": pid, "size": list(s2.shape[1:]),
            "mae_reflectance": _sig(mae, 4), "max_abs_reflectance": _sig(mx, 4),
        })  # fmt: skip
    mae = statistics.fmean(maes)
    return {
        "folder": str(folder),
        "weights": weights_desc,
        "patches": len(per_patch),
        "crop": crop,
        "fp32_reference": "float32, TF32 convolutions off" if cuda else "float32",
        "mae_reflectance": _sig(mae, 4),
        "max_abs_reflectance": _sig(max(maxes), 4),
        "limit": BF16_MAE_LIMIT,
        "within_1e-2": bool(mae <= BF16_MAE_LIMIT),
        "per_patch": per_patch,
    }


# --------------------------------------------------------------------------- ladder
def ladder_rungs(device_type: str) -> list[tuple[str, RunSettings]]:
    """The optimisation ladder: each rung adds one change to the previous one.

    ``fp32 NCHW`` -> ``+channels_last`` -> ``+bf16 autocast`` -> ``+cudnn.benchmark`` (CUDA
    only) -> ``+torch.compile``.
    """
    s = RunSettings(precision="fp32", channels_last=False, compile=False, cudnn_benchmark=False)
    rungs = [("fp32 NCHW", s)]
    s = dataclasses.replace(s, channels_last=True)
    rungs.append(("+channels_last", s))
    s = dataclasses.replace(s, precision="bf16")
    rungs.append(("+bf16 autocast", s))
    if device_type == "cuda":
        s = dataclasses.replace(s, cudnn_benchmark=True)
        rungs.append(("+cudnn.benchmark", s))
    s = dataclasses.replace(s, compile=True)
    rungs.append(("+torch.compile", s))
    return rungs


def bench_ladder(
    device: torch.device,
    sizes: BenchmarkSizes,
    *,
    features: int = 256,
    blocks: int = 16,
    peak_tflops: float | None = None,
    rungs: Sequence[tuple[str, RunSettings]] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Throughput of ``infer`` and ``train`` on every rung of :func:`ladder_rungs`.

    Returns:
        ``{"infer": [...], "train": [...], ...}``: per rung its settings, throughput
        (``patches_per_s`` / ``crops_per_s``), ``tflops``, ``mfu`` and ``gain`` (throughput over
        the previous rung's; None for the first rung or after a failed one). A rung that fails
        (e.g. compilation without a compiler) records ``"error"``.
    """
    rungs = list(rungs) if rungs is not None else ladder_rungs(device.type)
    result: dict[str, Any] = {
        "rungs": [name for name, _ in rungs],
        "note": "each rung adds one change to the previous one; gain = throughput / previous",
        "mfu_reference": "peak_tflops of the 'peak' section",
    }
    for section, key in (("infer", "patches_per_s"), ("train", "crops_per_s")):
        rows: list[dict[str, Any]] = []
        previous: float | None = None
        for name, st in rungs:
            row: dict[str, Any] = {"rung": name, **dataclasses.asdict(st)}
            if device.type != "cuda":
                row["cudnn_benchmark"] = None
            t0 = time.perf_counter()
            try:
                if section == "infer":
                    r = bench_infer(
                        device, st, batch=sizes.infer_batch, size=sizes.infer_size,
                        warmup=sizes.infer_warmup, repeats=sizes.infer_repeats,
                        features=features, blocks=blocks, peak_tflops=peak_tflops,
                    )  # fmt: skip
                else:
                    r = bench_train(
                        device, st, batch=sizes.train_batch, crop=sizes.train_crop,
                        warmup=sizes.train_warmup, steps=sizes.train_steps,
                        features=features, blocks=blocks, peak_tflops=peak_tflops,
                    )  # fmt: skip
            except Exception as exc:  # a failed rung is a result, not the end of the run
                row["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
                previous = None
            else:
                row.update({key: r[key], "tflops": r["tflops"], "mfu": r["mfu"],
                            "gain": _sig(_ratio(r[key], previous), 4),
                            "warmup_seconds": r["warmup_seconds"]})  # fmt: skip
                previous = r[key]
            finally:
                if st.compile:
                    torch._dynamo.reset()
                _free(device)
            if log is not None:
                shown = row.get(key, row.get("error"))
                log(f"ladder {section} {name}: {shown} ({time.perf_counter() - t0:.1f} s)")
            rows.append(row)
        result[section] = rows
    return result


# --------------------------------------------------------------------------- run
_SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "peak": lambda r: f"{r['peak_tflops']} TFLOP/s ({r['dtype']}, n={r['n']})",
    "infer": lambda r: f"{r['patches_per_s']} patches/s, {r['tflops']} TFLOP/s, mfu {r['mfu']}",
    "train": lambda r: f"{r['crops_per_s']} crops/s, {r['tflops']} TFLOP/s, mfu {r['mfu']}",
    "scene": lambda r: f"{r['megapixels_per_s']} MP/s on {r['size']}^2 (wall {r['wall_seconds']} s)",
    "bf16": lambda r: r.get("skipped") or f"MAE {r['mae_reflectance']} over {r['patches']} patches",
    "ladder": lambda r: f"{len(r['rungs'])} rungs",
}
"""One-line progress summary of each finished section."""


def _parse_sections(sections: Sequence[str]) -> list[str]:
    names = [s.strip() for item in sections for s in str(item).split(",") if s.strip()]
    if not names:
        raise DSen2CRError(f"no section given: choose from {', '.join(SECTIONS)}")
    for s in names:
        if s not in SECTIONS:
            raise DSen2CRError(f"unknown section {s!r}: choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names]


def _jsonable(obj: Any) -> Any:
    """Plain JSON values: non-finite floats -> None, numpy scalars -> Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def run_benchmark(
    device: str | torch.device = "auto",
    *,
    quick: bool = False,
    sections: Sequence[str] = SECTIONS,
    precision: str | None = None,
    channels_last: bool = True,
    compile: bool = False,
    ladder: bool = False,
    realdata: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    scene_size: int | None = None,
    features: int = 256,
    blocks: int = 16,
    readers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the benchmark sections on one device and return the JSON-serialisable result.

    Args:
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        quick: small sizes (a CPU run of the paper model in under two minutes); see
            :func:`benchmark_sizes`.
        sections: any of :data:`SECTIONS` (also comma-separated); they run in that order.
        precision: ``"fp32"`` or ``"bf16"``; default bf16 on CUDA, fp32 on CPU (bf16 convolutions
            are slower than fp32 on CPUs without AMX).
        channels_last: NHWC network and inputs.
        compile: ``torch.compile`` the network (compilation counts as warm-up).
        ladder: also measure the optimisation ladder (:func:`bench_ladder`).
        realdata: folder of real SEN12MS-CR triplets for ``bf16`` (default
            :data:`DEFAULT_REALDATA`; the section is skipped when it is absent).
        weights: weight file for ``bf16`` (default: random init, seed 0).
        scene_size: side of the ``scene`` in pixels (default from :func:`benchmark_sizes`).
        features: F of the model; anything but 256 is a smaller model for smoke tests.
        blocks: B of the model; anything but 16 is a smaller model for smoke tests.
        readers: input reader threads of ``scene`` (default: ``predict``'s).
        progress: one line on stderr when each section starts and ends.

    Returns:
        ``{"benchmark": "dsen2cr", "device": ..., "settings": ..., "peak": ..., "infer": ...,
        "train": ..., "scene": ..., "bf16": ..., "ladder": ... (when asked),
        "seconds_total"}`` (only the sections run).

    Raises:
        DSen2CRError: an unavailable device, an unknown section, invalid sizes or precision.
    """
    from dsen2cr.inference import resolve_device
    from dsen2cr.models import DSen2CR, count_parameters
    from dsen2cr.performance import TRAIN_FLOP_FACTOR, conv_flops_per_pixel

    t_start = time.perf_counter()
    dev = resolve_device(device)
    names = _parse_sections(sections)
    if precision is None:
        precision = "bf16" if dev.type == "cuda" else "fp32"
    if precision not in ("fp32", "bf16"):
        raise DSen2CRError(f"--precision must be fp32 or bf16, got {precision!r}")
    if precision == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DSen2CRError(f"{dev} does not support bfloat16: use --precision fp32")
    if weights is not None and not Path(weights).is_file():
        raise DSen2CRError(f"weight file not found: {weights}")
    if readers is not None and readers < 1:
        raise DSen2CRError(f"--readers must be a positive integer, got {readers}")
    if features < 1 or blocks < 0:
        raise DSen2CRError(f"--features must be >= 1 and --blocks >= 0, got {features}, {blocks}")
    sizes = benchmark_sizes(dev.type, quick)
    if scene_size is not None:
        if scene_size < 16:
            raise DSen2CRError(f"--scene-size must be >= 16, got {scene_size}")
        sizes = dataclasses.replace(sizes, scene_size=scene_size)
    settings = RunSettings(precision, channels_last, compile, cudnn_benchmark=dev.type == "cuda")

    def log(msg: str) -> None:
        if progress:
            print(f"dsen2cr benchmark: {msg}", file=sys.stderr, flush=True)

    with torch.device("meta"):
        meta = DSen2CR(features=features, blocks=blocks, sar_channels=2)
    paper = (features, blocks) == (256, 16)
    settings_out: dict[str, Any] = {
        "quick": quick,
        "sections": names,
        "precision": precision,
        "channels_last": channels_last,
        "compile": compile,
        "cudnn_benchmark": settings.cudnn_benchmark,
        "model": {
            "features": features,
            "blocks": blocks,
            "sar": True,
            "res_scale": meta.res_scale,
            "parameters": count_parameters(meta),
            "forward_flops_per_pixel": conv_flops_per_pixel(meta),
            "train_flop_factor": TRAIN_FLOP_FACTOR,
            "paper_model": paper,
            "weights": f"random init, seed {WEIGHTS_SEED}"
            + (f" ('bf16' section: {weights})" if weights is not None else ""),
        },
    }
    if not paper:
        settings_out["model"]["note"] = "SMALLER than the paper model (F=256, B=16): smoke test"
    if dev.type == "cuda":
        settings_out["tf32_convolutions"] = bool(torch.backends.cudnn.allow_tf32)
    del meta
    result: dict[str, Any] = {
        "benchmark": "dsen2cr",
        "device": device_info(dev),
        "settings": settings_out,
    }
    log(f"{dev} ({result['device']['name']}), precision {precision}, sections {', '.join(names)}"
        + (" + ladder" if ladder else ""))  # fmt: skip
    peak: float | None = None

    def run(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        log(f"{name} ...")
        t0 = time.perf_counter()
        out = fn()
        _free(dev)
        out["section_seconds"] = _sig(time.perf_counter() - t0, 3)
        result[name] = out
        log(f"{name} done in {out['section_seconds']} s: {_SUMMARIES[name](out)}")
        return out

    if "peak" in names:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        peak = run("peak", partial(
            measure_peak, dev, n=sizes.peak_n, dtype=dtype, inner=sizes.peak_inner,
            repeats=sizes.peak_repeats,
        ))["peak_tflops"]  # fmt: skip
    model_kw: dict[str, Any] = {"features": features, "blocks": blocks, "peak_tflops": peak}
    if "infer" in names:
        run("infer", partial(
            bench_infer, dev, settings, batch=sizes.infer_batch, size=sizes.infer_size,
            warmup=sizes.infer_warmup, repeats=sizes.infer_repeats, **model_kw,
        ))  # fmt: skip
    if "train" in names:
        run("train", partial(
            bench_train, dev, settings, batch=sizes.train_batch, crop=sizes.train_crop,
            warmup=sizes.train_warmup, steps=sizes.train_steps, **model_kw,
        ))  # fmt: skip
    if "scene" in names:
        run("scene", partial(
            bench_scene, dev, settings, size=sizes.scene_size, tile=sizes.scene_tile,
            readers=readers, **model_kw,
        ))  # fmt: skip
    if "bf16" in names:
        run("bf16", partial(
            bench_bf16, dev, realdata=realdata, crop=sizes.bf16_crop,
            max_patches=sizes.bf16_patches, channels_last=channels_last, weights=weights,
            features=features, blocks=blocks,
        ))  # fmt: skip
    if ladder:
        run("ladder", partial(bench_ladder, dev, sizes, log=log, **model_kw))
    result["device"]["load_average_end"] = _load_average()
    result["seconds_total"] = _sig(time.perf_counter() - t_start, 4)
    return _jsonable(result)

