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
- ``scene``: end-to-end :func:`dsen2cr.scene.predict` of a generated georeferenced scene
  (GPU: a full 10980 x 10980 Sentinel-2 tile) with its I/O and ``predict``'s default options, in
  megapixels/s, with the seconds of every stage and (CUDA) the GPU's busy fraction;
- ``io`` (when asked): the same path with the network replaced by an identity of the same
  tiling, per thread count, against GDAL's own COG translation of the same input
  (:func:`dsen2cr.benchmark.io.bench_io`);
- ``compile`` (when asked): ``torch.compile``'s compile time against the time it saves per
  tile window, for one tile and a batch (:func:`dsen2cr.benchmark.model.bench_compile`);
- ``bf16``: correctness of bf16 autocast (and on CUDA of TF32) against IEEE float32 on real
  SEN12MS-CR patches: mean absolute difference in reflectance (target: <= 1e-2);
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

import dataclasses
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dsen2cr.benchmark.io import bench_io
from dsen2cr.benchmark.model import (
    bench_bf16,
    bench_compile,
    bench_infer,
    bench_ladder,
    bench_train,
)
from dsen2cr.benchmark.scene import bench_scene, make_inputs
from dsen2cr.benchmark.timing import (
    WEIGHTS_SEED,
    BenchmarkSizes,
    RunSettings,
    device_info,
    free,
    load_average,
    measure_peak,
    sig,
)
from dsen2cr.errors import DSen2CRError, OptionError, WeightsNotFoundError
from dsen2cr.models import DSen2CR, count_parameters
from dsen2cr.performance import (
    TRAIN_FLOP_FACTOR,
    SpeedOptions,
    conv_flops_per_pixel,
    resolve_device,
    resolve_precision,
)

SECTIONS: tuple[str, ...] = ("peak", "infer", "train", "scene", "io", "compile", "bf16")
"""Every section, in the order they run."""
DEFAULT_SECTIONS: tuple[str, ...] = ("peak", "infer", "train", "scene", "bf16")
"""The sections of a default run (``io`` and ``compile`` run when asked for)."""


def benchmark_sizes(device_type: str, quick: bool = False) -> BenchmarkSizes:
    """The sizes of a run on ``device_type`` (``"cuda"`` or ``"cpu"``).

    CUDA: 8192^2 bf16 matmul, 16 patches of 256^2, 16 crops of 128^2, a full 10980^2 Sentinel-2
    tile (``quick``: 2048^2, 4 real patches). CPU: 2048^2 fp32 matmul, 1 patch of 256^2, 2 crops
    of 128^2, a 512^2 scene; ``quick``: 1536^2, 1 patch of 64^2, 2 crops of 64^2, a 256^2 scene,
    64^2 centre crops of 4 real patches (a run of the paper model takes 75-80 s on 2
    cores). ``io``: a 4096^2 scene (``quick``: 1024^2).
    """
    if device_type == "cuda":
        return BenchmarkSizes(
            peak_n=8192, peak_inner=10, peak_repeats=5 if quick else 10,
            infer_batch=16, infer_size=256, infer_warmup=3, infer_repeats=5 if quick else 20,
            train_batch=16, train_crop=128, train_warmup=5, train_steps=10 if quick else 30,
            scene_size=2048 if quick else 10980, scene_tile=512, io_size=1024 if quick else 4096,
            bf16_crop=None, bf16_patches=4 if quick else None,
        )  # fmt: skip
    if quick:
        return BenchmarkSizes(
            peak_n=1536, peak_inner=1, peak_repeats=5,
            infer_batch=1, infer_size=64, infer_warmup=1, infer_repeats=3,
            train_batch=2, train_crop=64, train_warmup=1, train_steps=2,
            scene_size=256, scene_tile=256, io_size=1024, bf16_crop=64, bf16_patches=4,
        )  # fmt: skip
    return BenchmarkSizes(
        peak_n=2048, peak_inner=1, peak_repeats=5,
        infer_batch=1, infer_size=256, infer_warmup=1, infer_repeats=3,
        train_batch=2, train_crop=128, train_warmup=1, train_steps=3,
        scene_size=512, scene_tile=512, io_size=4096, bf16_crop=None, bf16_patches=None,
    )  # fmt: skip


_SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "peak": lambda r: f"{r['peak_tflops']} TFLOP/s ({r['dtype']}, n={r['n']})",
    "infer": lambda r: f"{r['patches_per_s']} patches/s, {r['tflops']} TFLOP/s, mfu {r['mfu']}",
    "train": lambda r: f"{r['crops_per_s']} crops/s, {r['tflops']} TFLOP/s, mfu {r['mfu']}",
    "scene": lambda r: f"{r['megapixels_per_s']} MP/s on {r['size']}^2 (wall {r['wall_seconds']} s)",
    "io": lambda r: f"{r['megapixels_per_s']} MP/s by threads, {r['ratio_to_gdal']} x GDAL's COG",
    "compile": lambda r: ", ".join(f"batch {b['batch']}: x{b['speedup']} after {b['compile_seconds']} s"
                                   for b in r["batches"]),
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


def _run_io(dev: torch.device, size: int, threads: Sequence[int] | None,
            inputs_dir: str | os.PathLike[str] | None, pairs: int) -> dict[str, Any]:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="dsen2cr-benchmark-") as tmp:
        folder = Path(inputs_dir) if inputs_dir else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        s2, s1 = make_inputs(folder, size)
        gen = time.perf_counter() - t0
        result = bench_io(dev, s2, s1, Path(tmp), threads=list(threads) if threads else None,
                          pairs=pairs)  # fmt: skip
    result["input_generation_seconds"] = sig(gen, 3)
    return result


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
    sections: Sequence[str] = DEFAULT_SECTIONS,
    precision: str | None = None,
    speed: SpeedOptions | None = None,
    ladder: bool = False,
    realdata: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    scene_size: int | None = None,
    io_size: int | None = None,
    features: int = 256,
    blocks: int = 16,
    readers: int | None = None,
    io_threads: Sequence[int] | None = None,
    inputs_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the benchmark sections on one device and return the JSON-serialisable result.

    Args:
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        quick: small sizes (a CPU run of the paper model in under two minutes); see
            :func:`benchmark_sizes`.
        sections: any of :data:`SECTIONS` (also comma-separated); they run in that order.
        precision: one of :data:`~dsen2cr.performance.PRECISIONS`; default bf16 on CUDA, fp32 on
            CPU (bf16 convolutions are slower than fp32 on CPUs without AMX). ``scene`` runs
            ``predict``'s own default unless a precision is given.
        speed: memory format and ``torch.compile`` of the network (compilation counts as
            warm-up); default :class:`~dsen2cr.performance.SpeedOptions`.
        ladder: also measure the optimisation ladder (:func:`bench_ladder`).
        realdata: folder of real SEN12MS-CR triplets for ``bf16`` (``{id}_s2_cloudy.tif``,
            ``{id}_s1.tif``; the section is skipped without it or when it is absent).
        weights: weight file for ``bf16`` (default: random init, seed 0).
        scene_size: side of the ``scene`` in pixels (default from :func:`benchmark_sizes`).
        io_size: side of the ``io`` scene in pixels (default from :func:`benchmark_sizes`).
        features: F of the model; anything but 256 is a smaller model for smoke tests.
        blocks: B of the model; anything but 16 is a smaller model for smoke tests.
        readers: input reader threads of ``scene`` (default: ``predict``'s).
        io_threads: thread counts of ``io`` (default: 1, 2, 4, ... the cores).
        inputs_dir: folder where the generated scenes of ``scene`` and ``io`` are kept and
            reused (default: a temporary folder per section).
        progress: one line on stderr when each section starts and ends.

    Returns:
        ``{"benchmark": "dsen2cr", "device": ..., "settings": ..., "peak": ..., "infer": ...,
        "train": ..., "scene": ..., "bf16": ..., "ladder": ... (when asked),
        "seconds_total"}`` (only the sections run).

    Raises:
        DSen2CRError: an unavailable device, an unknown section, invalid sizes or precision.
    """
    t_start = time.perf_counter()
    dev = resolve_device(device)
    names = _parse_sections(sections)
    run_precision = _check_options(dev, precision, weights, readers, features, blocks)
    sizes = _sizes(dev, quick, scene_size, io_size)
    speed = speed or SpeedOptions()
    settings = RunSettings(run_precision, speed, cudnn_benchmark=dev.type == "cuda")
    result: dict[str, Any] = {
        "benchmark": "dsen2cr",
        "device": device_info(dev),
        "settings": _settings_record(dev, settings, names, quick, features, blocks, weights),
    }
    runner = _Sections(dev, result, progress)
    runner.log(f"{dev} ({result['device']['name']}), precision {run_precision}, sections "
               f"{', '.join(names)}" + (" + ladder" if ladder else ""))  # fmt: skip
    job = _Job(dev, settings, sizes, quick, features, blocks, readers, precision, realdata,
               weights, io_threads, inputs_dir)  # fmt: skip
    _run_sections(runner, job, names, ladder)
    result["device"]["load_average_end"] = load_average()
    result["seconds_total"] = sig(time.perf_counter() - t_start, 4)
    out: dict[str, Any] = _jsonable(result)
    return out


def _check_options(
    dev: torch.device,
    precision: str | None,
    weights: str | os.PathLike[str] | None,
    readers: int | None,
    features: int,
    blocks: int,
) -> str:
    """Validate the options before anything runs; returns the precision of the model sections
    (default bf16 on CUDA, fp32 on CPU)."""
    if precision is None:
        precision = "bf16" if dev.type == "cuda" else "fp32"
    resolve_precision(precision, dev)
    if precision == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise OptionError("precision", f"bf16: {dev} does not support bfloat16, use fp32")
    if weights is not None and not Path(weights).is_file():
        raise WeightsNotFoundError(f"weight file not found: {weights}")
    if readers is not None and readers < 1:
        raise OptionError("readers", f"must be a positive integer, got {readers}")
    if features < 1:
        raise OptionError("features", f"must be >= 1, got {features}")
    if blocks < 0:
        raise OptionError("blocks", f"must be >= 0, got {blocks}")
    return precision


def _sizes(dev: torch.device, quick: bool, scene_size: int | None,
           io_size: int | None) -> BenchmarkSizes:  # fmt: skip
    """:func:`benchmark_sizes` with the scene sides asked for (each at least 16 pixels)."""
    sizes = benchmark_sizes(dev.type, quick)
    if scene_size is not None:
        if scene_size < 16:
            raise OptionError("scene_size", f"must be >= 16, got {scene_size}")
        sizes = dataclasses.replace(sizes, scene_size=scene_size)
    if io_size is not None:
        if io_size < 16:
            raise OptionError("io_size", f"must be >= 16, got {io_size}")
        sizes = dataclasses.replace(sizes, io_size=io_size)
    return sizes


def _settings_record(
    dev: torch.device,
    settings: RunSettings,
    names: list[str],
    quick: bool,
    features: int,
    blocks: int,
    weights: str | os.PathLike[str] | None,
) -> dict[str, Any]:
    """The ``settings`` part of the result: precision, memory format, the model measured."""
    with torch.device("meta"):
        meta = DSen2CR(features=features, blocks=blocks, sar_channels=2)
    paper = (features, blocks) == (256, 16)
    model: dict[str, Any] = {
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
    }
    if not paper:
        model["note"] = "SMALLER than the paper model (F=256, B=16): smoke test"
    out: dict[str, Any] = {
        "quick": quick,
        "sections": names,
        "precision": settings.precision,
        "channels_last": settings.speed.channels_last,
        "compile": settings.speed.compile,
        "cudnn_benchmark": settings.cudnn_benchmark,
        "model": model,
    }
    if dev.type == "cuda":
        out["tf32_convolutions"] = bool(torch.backends.cudnn.allow_tf32)
    return out


@dataclass(frozen=True)
class _Job:
    """Everything the sections of one run need (see :func:`run_benchmark` for each)."""

    dev: torch.device
    settings: RunSettings
    sizes: BenchmarkSizes
    quick: bool
    features: int
    blocks: int
    readers: int | None
    scene_precision: str | None  # None: predict's own default
    realdata: str | os.PathLike[str] | None
    weights: str | os.PathLike[str] | None
    io_threads: Sequence[int] | None
    inputs_dir: str | os.PathLike[str] | None


class _Sections:
    """Runs sections one after the other into ``result``, with a progress line for each."""

    def __init__(self, dev: torch.device, result: dict[str, Any], progress: bool) -> None:
        self.dev, self.result, self.progress = dev, result, progress

    def log(self, msg: str) -> None:
        """One line on stderr (when ``progress``)."""
        if self.progress:
            print(f"dsen2cr benchmark: {msg}", file=sys.stderr, flush=True)

    def run(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run one section, time it, free the device's cached memory, store and log it."""
        self.log(f"{name} ...")
        t0 = time.perf_counter()
        out = fn()
        free(self.dev)
        out["section_seconds"] = sig(time.perf_counter() - t0, 3)
        self.result[name] = out
        self.log(f"{name} done in {out['section_seconds']} s: {_SUMMARIES[name](out)}")
        return out


def _run_sections(runner: _Sections, job: _Job, names: list[str], ladder: bool) -> None:
    """The sections asked for, in :data:`SECTIONS` order (``peak`` first: MFU is relative to it)."""
    dev, settings, sizes = job.dev, job.settings, job.sizes
    peak: float | None = None
    if "peak" in names:
        dtype = torch.bfloat16 if settings.precision == "bf16" else torch.float32
        peak = runner.run("peak", partial(
            measure_peak, dev, n=sizes.peak_n, dtype=dtype, inner=sizes.peak_inner,
            repeats=sizes.peak_repeats,
        ))["peak_tflops"]  # fmt: skip
    model_kw: dict[str, Any] = {"features": job.features, "blocks": job.blocks,
                                "peak_tflops": peak}  # fmt: skip
    if "infer" in names:
        runner.run("infer", partial(
            bench_infer, dev, settings, batch=sizes.infer_batch, size=sizes.infer_size,
            warmup=sizes.infer_warmup, repeats=sizes.infer_repeats, **model_kw,
        ))  # fmt: skip
    if "train" in names:
        runner.run("train", partial(
            bench_train, dev, settings, batch=sizes.train_batch, crop=sizes.train_crop,
            warmup=sizes.train_warmup, steps=sizes.train_steps, **model_kw,
        ))  # fmt: skip
    if "scene" in names:
        runner.run("scene", partial(
            bench_scene, dev, settings, size=sizes.scene_size, tile=sizes.scene_tile,
            readers=job.readers, precision=job.scene_precision, inputs_dir=job.inputs_dir,
            **model_kw,
        ))  # fmt: skip
    if "io" in names:
        runner.run("io", partial(_run_io, dev, sizes.io_size, job.io_threads, job.inputs_dir,
                                 1 if job.quick else 3))  # fmt: skip
    if "compile" in names:
        window = min(sizes.scene_size, sizes.scene_tile) + 2 * (2 * job.blocks + 2)
        runner.run("compile", partial(
            bench_compile, dev, settings, window=window, repeats=2 if job.quick else 5,
            features=job.features, blocks=job.blocks,
        ))  # fmt: skip
    if "bf16" in names:
        runner.run("bf16", partial(
            bench_bf16, dev, realdata=job.realdata, crop=sizes.bf16_crop,
            max_patches=sizes.bf16_patches, channels_last=settings.speed.channels_last,
            weights=job.weights, features=job.features, blocks=job.blocks,
        ))  # fmt: skip
    if ladder:
        runner.run("ladder", partial(bench_ladder, dev, sizes, log=runner.log, **model_kw))
