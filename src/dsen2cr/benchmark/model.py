"""Benchmark sections of the network: inference, the training step, bf16 error, the ladder.

Model FLOPs are :func:`dsen2cr.performance.conv_flops_per_pixel` (2 FLOPs per multiply-accumulate
of every convolution; 37,877,760 per pixel for the paper model) times the pixels processed.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dsen2cr import scaling
from dsen2cr.benchmark.timing import (
    WEIGHTS_SEED,
    BenchmarkSizes,
    RunSettings,
    cudnn_benchmark,
    free,
    make_model,
    max_memory_gib,
    rates,
    ratio,
    reset_memory,
    sig,
    timed_loop,
)
from dsen2cr.data.synthetic import make_scene
from dsen2cr.errors import DSen2CRError, Text
from dsen2cr.io import read_raster
from dsen2cr.models import DSen2CR
from dsen2cr.performance import (
    TRAIN_FLOP_FACTOR,
    SpeedOptions,
    autocast,
    conv_flops_per_pixel,
    precision_mode,
    prepare_model,
    to_memory_format,
)
from dsen2cr.scaling import s1_to_scaled, s2_to_scaled, scaled_to_reflectance
from dsen2cr.training import DSen2CRModule, load_config

BF16_MAE_LIMIT = 1e-2
"""Largest acceptable mean |bf16 - fp32| of the prediction, in reflectance."""


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
    model = make_model(features, blocks).eval()
    fpp = conv_flops_per_pixel(model)
    gen = torch.Generator().manual_seed(1)
    optical = torch.rand(batch, 13, size, size, generator=gen) * 1.5
    sar = torch.rand(batch, 2, size, size, generator=gen) * 2.0
    optical = to_memory_format(optical.to(device), settings.speed.channels_last)
    sar = to_memory_format(sar.to(device), settings.speed.channels_last)
    reset_memory(device)
    with cudnn_benchmark(device, settings.cudnn_benchmark):
        prepare_model(model, device, settings.speed)

        def step() -> None:
            model(optical, sar)

        with torch.inference_mode(), autocast(device, settings.precision):
            r = timed_loop(step, device, warmup, repeats)
    pixels = batch * size * size
    return {
        "batch": batch,
        "size": size,
        "inputs": "random, scaled domain: optical U(0, 1.5), SAR U(0, 2)",
        "warmup": warmup,
        "repeats": repeats,
        **rates(r, batch, pixels, fpp * pixels, peak_tflops, "batch", "patches"),
        "warmup_seconds": sig(r["warmup_seconds"], 3),
        "max_memory_gib": max_memory_gib(device),
    }


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
    rng = np.random.default_rng(seed)
    scenes = [
        make_scene(crop, crop, seed=seed + i, cloud_cover=float(rng.uniform(0.3, 0.7)))
        for i in range(batch_size)
    ]

    def stack(key: str, fn: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
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
    cfg = load_config({
        "model": {"features": features, "blocks": blocks, "sar": True},
        "loss": {"name": "carl"},
        "speed": {"channels_last": settings.speed.channels_last, "compile": settings.speed.compile},
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

    reset_memory(device)
    with cudnn_benchmark(device, settings.cudnn_benchmark):
        r = timed_loop(step, device, warmup, steps)
    loss_values = torch.stack(losses).float().cpu().tolist()
    pixels = batch * crop * crop
    return {
        "batch": batch,
        "crop": crop,
        "data": "synthetic scenes (dsen2cr.data.synthetic.make_scene), 30-70 % cloud cover",
        "loss": "carl",
        "optimizer": "NAdam",
        "warmup": warmup,
        "steps": steps,
        **rates(r, batch, pixels, TRAIN_FLOP_FACTOR * fpp * pixels, peak_tflops, "step", "crops"),
        "loss_first": sig(loss_values[0]),
        "loss_last": sig(loss_values[-1]),
        "warmup_seconds": sig(r["warmup_seconds"], 3),
        "max_memory_gib": max_memory_gib(device),
    }


def _read_patch(path: Path, bands: int, what: str) -> np.ndarray:
    return read_raster(path, expected_bands=bands, what=what)[0]


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
    runs once in IEEE float32 (TF32 off) and once under bf16 autocast (on CUDA also in TF32); the
    differences of the predictions are taken in reflectance (scaled x 0.2).

    Args:
        device: where to run.
        realdata: folder of the triplets (None: the section is skipped).
        crop: centre crop side (None: whole patches).
        max_patches: patches used (None: all).
        channels_last: NHWC network and inputs.
        weights: a weight file (``DSen2CR.from_pretrained``); default a random-init model
            (seed 0) of ``features`` x ``blocks``.
        features: F of the random-init model.
        blocks: B of the random-init model.

    Returns:
        ``{"mae_reflectance" (mean over patches of the mean |bf16 - fp32|), "max_abs_reflectance",
        "patches", "within_1e-2", "tf32" (the same for TF32, CUDA), "per_patch", ...}``, or
        ``{"skipped": reason}`` when the folder or its patches are absent.
    """
    files = _real_patches(realdata, max_patches)
    if isinstance(files, str):
        return {"skipped": files}
    if weights is not None:
        model = DSen2CR.from_pretrained(weights)
        weights_desc = str(weights)
    else:
        model = make_model(features, blocks)
        weights_desc = f"random init, seed {WEIGHTS_SEED}"
    prepare_model(model.eval(), device, SpeedOptions(channels_last=channels_last))
    cuda = device.type == "cuda"
    per_patch = [
        _patch_errors(model, device, s2_path, crop, channels_last) for s2_path in files
    ]
    maes = [p["mae"] for p in per_patch]
    mae = statistics.fmean(maes)
    return {
        "folder": str(files[0].parent),
        "weights": weights_desc,
        "patches": len(per_patch),
        "crop": crop,
        "fp32_reference": "float32, TF32 convolutions off" if cuda else "float32",
        "mae_reflectance": sig(mae, 4),
        "max_abs_reflectance": sig(max(p["max"] for p in per_patch), 4),
        "limit": BF16_MAE_LIMIT,
        "within_1e-2": bool(mae <= BF16_MAE_LIMIT),
        "tf32": _tf32_errors([p["tf32_mae"] for p in per_patch],
                             [p["tf32_max"] for p in per_patch]) if cuda else "CUDA only",
        "per_patch": [p["record"] for p in per_patch],
    }  # fmt: skip


def _real_patches(
    realdata: str | os.PathLike[str] | None, max_patches: int | None
) -> list[Path] | str:
    """The ``*_s2_cloudy.tif`` of ``realdata`` (sorted, the first ``max_patches``), or why the
    section is skipped."""
    if realdata is None:
        return str(Text("no folder of real patches given ({realdata})", realdata=None))
    folder = Path(realdata)
    if not folder.is_dir():
        return f"real-data folder not found: {folder}"
    files = sorted(folder.glob("*_s2_cloudy.tif"))
    if not files:
        return f"no *_s2_cloudy.tif in {folder}"
    return files[:max_patches] if max_patches is not None else files


def _patch_errors(
    model: torch.nn.Module, device: torch.device, s2_path: Path, crop: int | None,
    channels_last: bool,
) -> dict[str, Any]:  # fmt: skip
    """bf16 (and on CUDA TF32) against IEEE float32 on one real patch, in reflectance:
    ``{"mae", "max", "tf32_mae", "tf32_max", "record"}`` (``record``: the JSON entry)."""
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
    optical = s2_to_scaled(torch.from_numpy(s2))[None].to(device)
    optical = to_memory_format(optical, channels_last)
    sar = torch.nan_to_num(s1_to_scaled(torch.from_numpy(s1)), nan=0.0)[None].to(device)
    sar = to_memory_format(sar, channels_last)
    out: dict[str, Any] = {}
    with torch.inference_mode():
        with precision_mode(device, "fp32"):
            ref = model(optical, sar).float()
        with precision_mode(device, "bf16"):
            diff = scaled_to_reflectance((model(optical, sar).float() - ref).abs())
        out["mae"], out["max"] = float(diff.mean()), float(diff.max())
        if device.type == "cuda":
            with precision_mode(device, "tf32"):
                d32 = scaled_to_reflectance((model(optical, sar).float() - ref).abs())
            out["tf32_mae"], out["tf32_max"] = float(d32.mean()), float(d32.max())
    out["record"] = {
        "id": pid, "size": list(s2.shape[1:]),
        "mae_reflectance": sig(out["mae"], 4), "max_abs_reflectance": sig(out["max"], 4),
        **({"tf32_mae_reflectance": sig(out["tf32_mae"], 4)} if "tf32_mae" in out else {}),
    }  # fmt: skip
    return out


def _tf32_errors(maes: list[float], maxes: list[float]) -> dict[str, Any]:
    return {"mae_reflectance": sig(statistics.fmean(maes), 4), "max_abs_reflectance": sig(max(maxes), 4)}


def bench_compile(
    device: torch.device,
    settings: RunSettings,
    *,
    window: int,
    batches: Sequence[int] = (1, 4),
    repeats: int = 3,
    features: int = 256,
    blocks: int = 16,
) -> dict[str, Any]:
    """Whether ``torch.compile`` pays for a scene: compile time against the time it saves.

    For each batch size, the network runs on batches of ``window x window`` tile windows (what
    ``predict`` feeds it: a 512 tile plus the halo on each side) eager, then compiled: the first
    compiled call's extra time is the compile time, the medians of the following calls the
    gain. ``break_even_tiles`` = compile seconds / seconds saved per tile; a 10980 x 10980
    Sentinel-2 tile has 484 tiles of 512.

    Returns:
        ``window``, ``tiles_per_10980_scene`` and per batch size ``eager_seconds_per_tile``,
        ``compiled_seconds_per_tile``, ``compile_seconds``, ``speedup``, ``break_even_tiles``,
        ``pays_for_a_10980_scene``.
    """
    fpp = conv_flops_per_pixel(make_model(features, blocks))
    rows = []
    for b in batches:
        gen = torch.Generator().manual_seed(1)
        optical = to_memory_format((torch.rand(b, 13, window, window, generator=gen) * 1.5).to(device),
                                   settings.speed.channels_last)  # fmt: skip
        sar = to_memory_format((torch.rand(b, 2, window, window, generator=gen) * 2).to(device),
                               settings.speed.channels_last)  # fmt: skip
        row: dict[str, Any] = {"batch": b}
        times = {}
        for compiled in (False, True):
            model = make_model(features, blocks).eval()
            speed = dataclasses.replace(settings.speed, compile=compiled)
            with cudnn_benchmark(device, settings.cudnn_benchmark), torch.inference_mode(), \
                 precision_mode(device, settings.precision):  # fmt: skip
                prepare_model(model, device, speed)
                r = timed_loop(lambda m=model, x=optical, y=sar: m(x, y), device, 1, repeats)  # type: ignore[misc]
            times[compiled] = (r["warmup_seconds"], r["median"])
            if compiled:
                torch._dynamo.reset()
            free(device)
        (eager_first, eager), (compiled_first, fast) = times[False], times[True]
        compile_s = max(0.0, compiled_first - eager_first)
        saved = (eager - fast) / b
        row.update(
            eager_seconds_per_tile=sig(eager / b, 4), compiled_seconds_per_tile=sig(fast / b, 4),
            compile_seconds=sig(compile_s, 4), speedup=sig(eager / fast, 4),
            eager_tflops=sig(fpp * b * window**2 / eager / 1e12, 4),
            compiled_tflops=sig(fpp * b * window**2 / fast / 1e12, 4),
            break_even_tiles=sig(compile_s / saved, 4) if saved > 0 else None,
            pays_for_a_10980_scene=bool(saved > 0 and compile_s / saved < 484),
        )  # fmt: skip
        rows.append(row)
    return {"window": window, "tiles_per_10980_scene": 484, "precision": settings.precision,
            "batches": rows}  # fmt: skip


def ladder_rungs(device_type: str) -> list[tuple[str, RunSettings]]:
    """The optimisation ladder: each rung adds one change to the previous one.

    ``fp32 NCHW`` -> ``+channels_last`` -> ``+bf16 autocast`` -> ``+cudnn.benchmark`` (CUDA
    only) -> ``+torch.compile``.
    """
    s = RunSettings("fp32", SpeedOptions(channels_last=False, compile=False), cudnn_benchmark=False)
    rungs = [("fp32 NCHW", s)]
    s = dataclasses.replace(s, speed=dataclasses.replace(s.speed, channels_last=True))
    rungs.append(("+channels_last", s))
    s = dataclasses.replace(s, precision="bf16")
    rungs.append(("+bf16 autocast", s))
    if device_type == "cuda":
        s = dataclasses.replace(s, cudnn_benchmark=True)
        rungs.append(("+cudnn.benchmark", s))
    s = dataclasses.replace(s, speed=dataclasses.replace(s.speed, compile=True))
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
            row: dict[str, Any] = {"rung": name, "precision": st.precision,
                                   **dataclasses.asdict(st.speed),
                                   "cudnn_benchmark": st.cudnn_benchmark}  # fmt: skip
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
                            "gain": sig(ratio(r[key], previous), 4),
                            "warmup_seconds": r["warmup_seconds"]})  # fmt: skip
                previous = r[key]
            finally:
                if st.speed.compile:
                    torch._dynamo.reset()
                free(device)
            if log is not None:
                shown = row.get(key, row.get("error"))
                log(f"ladder {section} {name}: {shown} ({time.perf_counter() - t0:.1f} s)")
            rows.append(row)
        result[section] = rows
    return result
