"""Benchmark section ``scene``: end-to-end prediction of a generated georeferenced scene."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import rasterio
import torch
from rasterio.transform import from_origin
from rasterio.windows import Window

from dsen2cr.benchmark.timing import (
    GpuUtilisation,
    RunSettings,
    host_peak_rss_gib,
    make_model,
    ratio,
    sig,
)
from dsen2cr.data.synthetic import make_scene
from dsen2cr.performance import conv_flops_per_pixel
from dsen2cr.scene.predict import PredictOptions, predict

SCENE_BLOCK = 512
"""Block size of the generated scene GeoTIFFs (and of the synthetic blocks they are tiled from)."""


def make_inputs(folder: str | os.PathLike[str], size: int, seed: int = 0) -> tuple[Path, Path]:
    """Write a ``size x size`` georeferenced scene: S2 at 10 m and its S1 at 20 m.

    Tiled from two synthetic blocks of :data:`SCENE_BLOCK` pixels (mirrored alternately), block by
    block, so generating even a full Sentinel-2 tile needs little memory. Both rasters are in
    EPSG:32633 with the same origin, so S1 goes through ``predict``'s bilinear warping path.
    Files that a previous call wrote into ``folder`` with the same size and seed are reused
    (their size and seed are in their metadata).

    Args:
        folder: output folder (created if needed).
        size: scene side in pixels.
        seed: seed of the synthetic blocks.

    Returns:
        ``(s2_path, s1_path)``: ``bench_s2.tif`` (13 bands uint16 DN, deflate, 512 blocks,
        BigTIFF when needed) and ``bench_s1.tif`` (2 bands float32 dB, ``ceil(size / 2)`` px).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    s2_path, s1_path = folder / "bench_s2.tif", folder / "bench_s1.tif"
    made = {"DSEN2CR_BENCH": f"size={size} seed={seed}"}
    if _made(s2_path, made) and _made(s1_path, made):
        return s2_path, s1_path
    s2_path.unlink(missing_ok=True)
    s1_path.unlink(missing_ok=True)
    bs = min(SCENE_BLOCK, size)
    blocks = [make_scene(bs, bs, seed=seed + k, cloud_cover=0.35) for k in range(2)]
    origin = (399960.0, 5600040.0)
    common = {"driver": "GTiff", "tiled": True, "blockxsize": SCENE_BLOCK,
              "blockysize": SCENE_BLOCK, "compress": "deflate", "crs": "EPSG:32633",
              "BIGTIFF": "IF_SAFER", "NUM_THREADS": "ALL_CPUS"}  # fmt: skip
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
        s2.update_tags(**made)
        s1.update_tags(**made)
    return s2_path, s1_path


def _made(path: Path, tags: dict[str, str]) -> bool:
    try:
        with rasterio.open(path) as src:
            return all(src.tags().get(k) == v for k, v in tags.items())
    except rasterio.errors.RasterioError:
        return False


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
    precision: str | None = None,
    inputs_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """End-to-end :func:`dsen2cr.scene.predict` of a generated ``size x size`` scene, with the
    options of ``dsen2cr predict`` (its default precision unless ``precision`` is given).

    The scene (:func:`make_inputs`, reused from ``inputs_dir`` when it holds one of this size)
    and the seeded model's weight file are written first (timed separately,
    ``input_generation_seconds``). ``predict`` reads the weight file, reads and reprojects the
    inputs in row chunks, runs the network tile by tile and writes the Cloud-Optimized GeoTIFF.
    On CUDA the GPU's utilisation is sampled meanwhile (NVML or ``nvidia-smi``).

    Returns:
        ``size``, ``megapixels``, ``tile``, ``halo``, ``window``, ``tiles``, ``batch``,
        ``precision``, ``seconds`` (the tile loop), ``megapixels_per_s`` (from it), ``readers``,
        ``threads``, ``load_seconds`` (weights), ``startup_seconds`` (inputs opened and checked),
        ``cog_seconds`` (the COG layout after the last tile), ``wall_seconds`` (the whole
        ``predict`` call: the end-to-end figure), ``wall_megapixels_per_s``, ``stages`` (seconds
        per stage), ``network_tflops`` / ``mfu`` (network FLOPs of all tile windows, halos
        included, over ``seconds``), ``halo_overhead``, ``gpu_busy_fraction`` (mean utilisation
        during the tile loop, CUDA), ``host_peak_rss_gib``, ``output_mib``.
    """
    tile = min(tile, size)
    with tempfile.TemporaryDirectory(prefix="dsen2cr-benchmark-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        s2_path, s1_path = make_inputs(Path(inputs_dir) if inputs_dir else folder, size)
        model = make_model(features, blocks)
        fpp = conv_flops_per_pixel(model)
        weights = model.save_pretrained(folder / "bench.safetensors")
        del model
        gen_s = time.perf_counter() - t0
        out = folder / "bench_pred.tif"
        options = PredictOptions(tile=tile, device=str(device), precision=precision,
                                 speed=settings.speed, readers=readers, progress=False)  # fmt: skip
        with GpuUtilisation(device) as gpu:
            t0 = time.perf_counter()
            summary = predict(s2_path, weights, out, s1_path, options=options)
            wall = time.perf_counter() - t0
        out_mib = out.stat().st_size / 2**20
    loop = float(summary["seconds"]) - float(summary["statistics_seconds"])
    loop_start = (
        t0 + summary["load_seconds"] + summary["startup_seconds"] + summary["statistics_seconds"]
    )
    win_h, win_w = summary["window"]
    tflops = fpp * summary["tiles"] * win_h * win_w / float(summary["seconds"]) / 1e12
    return {
        "size": size,
        "megapixels": sig(size * size / 1e6),
        "inputs": "generated: 13-band uint16 S2 GeoTIFF (deflate) + 2-band S1 at 20 m (warped)",
        "options": "dsen2cr predict's defaults" + (f", precision {precision}" if precision else ""),
        **_summary_figures(summary, size, wall, options.compress),
        "network_tflops": sig(tflops),
        "mfu": sig(ratio(tflops, peak_tflops), 4),
        "gpu_busy_fraction": sig(gpu.mean(loop_start, loop_start + loop), 3),
        "gpu_sampler": gpu.source,
        "halo_overhead": sig(summary["tiles"] * win_h * win_w / (size * size), 4),
        "host_peak_rss_gib": sig(host_peak_rss_gib(), 4),
        "output_mib": sig(out_mib, 4),
        "input_generation_seconds": sig(gen_s, 3),
    }


def _summary_figures(
    summary: dict[str, Any], size: int, wall: float, compress: str
) -> dict[str, Any]:
    """The figures of ``predict``'s summary a scene benchmark reports (times in seconds)."""
    scene_px = size * size
    return {
        **{k: summary[k] for k in ("tile", "halo", "window", "tiles", "batch", "precision")},
        "compress": compress,
        "seconds": sig(float(summary["seconds"])),
        "megapixels_per_s": sig(float(summary["megapixels_per_s"])),
        "readers": summary["readers"],
        "threads": summary["threads"],
        **{k: sig(float(summary[k])) for k in ("load_seconds", "startup_seconds", "cog_seconds")},
        "wall_seconds": sig(wall),
        "wall_megapixels_per_s": sig(scene_px / wall / 1e6),
        "stages": {k: sig(v, 4) for k, v in summary["stages"].items()},
    }
