"""Benchmark of scene prediction (``dsen2cr predict``): throughput and peak host memory.

Generates a large georeferenced scene (:func:`dsen2cr.benchmark.make_inputs`: a 13-band uint16 S2
GeoTIFF and a 20 m S1 GeoTIFF in the same UTM zone, so S1 goes through the bilinear warping path)
in a temporary folder, block by block so that generating it needs little memory, then runs
:func:`dsen2cr.scene.predict` (or, with ``--mask-only``, :func:`dsen2cr.scene.mask_scene`) on it
in a fresh child process and prints one JSON object.

Peak host memory is the child's ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` (peak resident
set size of the prediction process, which includes Python, torch and the model). The same figure
for a child that only imports dsen2cr and builds the model is reported as the baseline, so the
difference is what the tiled prediction itself adds.

Examples::

    # default: full model (F=256, B=16) on a 4096 x 4096 scene, CUDA if available
    python benchmarks/bench_predict.py
    # quick CPU run with a small model (the JSON says which model was used)
    python benchmarks/bench_predict.py --device cpu --size 2048 --features 32 --blocks 4
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path


def _child_predict(args: dict, conn: object) -> None:
    from dsen2cr.scene import PredictOptions, mask_scene, predict

    options = PredictOptions(**args.pop("options"))
    t0 = time.perf_counter()
    if args.pop("mask_only"):
        summary = mask_scene(args["s2"], args["mask_out"], options=options)
        summary.update(precision=None, batch=options.batch or 1)
    else:
        summary = predict(**args, options=options)
    summary["wall_seconds_incl_cog"] = time.perf_counter() - t0
    conn.send(summary)  # type: ignore[attr-defined]


def _child_baseline(weights: str, device: str, conn: object) -> None:
    from dsen2cr.models import load_weights
    from dsen2cr.performance import resolve_device

    load_weights(weights, resolve_device(device))
    conn.send(True)  # type: ignore[attr-defined]


def _run_child(target, *args) -> tuple[object, float]:
    """Run ``target`` in a fresh spawned process; return its result and its peak RSS (MiB)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=target, args=(*args, child))
    p.start()
    result = parent.recv()
    p.join()
    if p.exitcode != 0:
        raise SystemExit(f"child process failed with exit code {p.exitcode}")
    # RUSAGE_CHILDREN gives the largest peak of all finished children (Linux: KiB); the
    # baseline child runs first and is smaller, so after the prediction child this is its peak.
    return result, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=4096, help="scene side in pixels (default 4096)")
    ap.add_argument("--features", type=int, default=256, help="model features F (default 256)")
    ap.add_argument("--blocks", type=int, default=16, help="residual blocks B (default 16)")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--mask", action="store_true", help="also write the cloud/shadow mask")
    ap.add_argument("--mask-only", action="store_true",
                    help="run `dsen2cr mask` (the same tiled path without the network) instead")
    ap.add_argument("--compress", default="DEFLATE", help="output compression (default DEFLATE)")
    ap.add_argument("--readers", type=int, default=None, help="reader threads (predict's default)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep files here (default: temp)")
    a = ap.parse_args(argv)

    import torch

    from dsen2cr.benchmark import make_inputs
    from dsen2cr.models import DSen2CR, count_parameters

    with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        s2_path, s1_path = make_inputs(folder, a.size)
        gen_s = time.perf_counter() - t0
        torch.manual_seed(0)
        model = DSen2CR(features=a.features, blocks=a.blocks)
        weights = str(model.save_pretrained(folder / "bench.safetensors"))
        _, base_rss = _run_child(_child_baseline, weights, a.device)
        out = folder / ("bench_mask.tif" if a.mask_only else "bench_pred.tif")
        job = {
            "s2": str(s2_path), "s1": str(s1_path), "weights_or_model": weights,
            "out": str(out), "mask_only": a.mask_only,
            "mask_out": str(folder / "bench_mask.tif") if a.mask or a.mask_only else None,
            "options": {"tile": a.tile, "batch": a.batch, "device": a.device,
                        "precision": a.precision, "progress": sys.stderr.isatty(),
                        "compress": a.compress, "readers": a.readers},
        }  # fmt: skip
        if a.mask_only:
            for key in ("s1", "weights_or_model", "out"):
                job.pop(key)
        summary, peak_rss = _run_child(_child_predict, job)
        out_mb = os.path.getsize(out) / 2**20
    assert isinstance(summary, dict)
    full = (a.features, a.blocks) == (256, 16)
    report = {
        "benchmark": "dsen2cr mask" if a.mask_only else "dsen2cr predict",
        "device": summary["device"],
        "gpu": torch.cuda.get_device_name(0) if summary["device"].startswith("cuda") else None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "model": {"features": a.features, "blocks": a.blocks, "sar_channels": 2,
                  "parameters": count_parameters(model),
                  "note": "paper model (F=256, B=16)" if full else
                  "SMALLER than the paper model (F=256, B=16), to keep a CPU run short"},
        "scene": {"height": a.size, "width": a.size, "megapixels": a.size * a.size / 1e6,
                  "s2_uncompressed_mib": 13 * 2 * a.size * a.size / 2**20,
                  "s1": "2 bands at 20 m, same CRS: bilinear WarpedVRT path"},
        "tile": summary["tile"], "halo": summary["halo"], "window": summary["window"],
        "batch": summary["batch"], "precision": summary["precision"], "mask": a.mask or a.mask_only,
        "compress": a.compress, "readers": summary["readers"],
        "tiles": summary["tiles"],
        "seconds": round(summary["seconds"], 3),
        "cog_seconds": round(summary["cog_seconds"], 3),
        "wall_seconds_incl_cog": round(summary["wall_seconds_incl_cog"], 3),
        "megapixels_per_s": round(summary["megapixels_per_s"], 4),
        "tiles_per_s": round(summary["tiles_per_s"], 4),
        "peak_rss_mib": round(peak_rss, 1),
        "baseline_rss_mib": round(base_rss, 1),
        "memory_method": "resource.getrusage(RUSAGE_CHILDREN).ru_maxrss of a spawned child "
        "running predict(); baseline = a child that only imports dsen2cr and loads the model",
        "output_mib": round(out_mb, 1),
        "input_generation_seconds": round(gen_s, 1),
    }  # fmt: skip
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
