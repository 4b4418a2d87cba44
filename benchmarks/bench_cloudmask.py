"""Throughput of the cloud/shadow detector in 256 x 256 patches per second.

Measures the numpy/scipy path (one patch at a time), the batched torch path on CPU and, when a
GPU is present, on CUDA (batched, synchronised), and checks that all paths give identical masks
on the benchmark data. Prints one JSON object.

    python benchmarks/bench_cloudmask.py [--patches 64] [--batch 64] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from dsen2cr.benchmark import cpu_model
from dsen2cr.cloudmask import cloud_shadow_mask


def make_patches(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, 13, size, size) uint16 DN patches with land, dark areas and soft clouds."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.array([0.12, 0.09, 0.08, 0.07, 0.1, 0.15, 0.2, 0.25, 0.27, 0.05, 0.004, 0.18, 0.1])
    out = np.empty((n, 13, size, size), np.uint16)
    for i in range(n):
        refl = base[:, None, None] * rng.uniform(0.7, 1.3, size=(13, size, size))
        for _ in range(4):
            (cy, cx), rad = rng.uniform(0, size, 2), rng.uniform(10, size / 4)
            d = np.hypot(yy - cy, xx - cx) / rad
            refl[:, d < 1] *= 0.3
            cy, cx = rng.uniform(0, size, 2)
            cloud = np.clip(1.3 - np.hypot(yy - cy, xx - cx) / rad, 0, 1)[None] * 0.7
            refl = refl * (1 - cloud) + cloud * 0.6
        out[i] = np.clip(refl * 10000, 0, 65535).astype(np.uint16)
    return out


def _rate(fn: object, patches: int, repeat: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return patches / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=64, help="patches per timed run")
    parser.add_argument("--batch", type=int, default=64, help="torch batch size")
    parser.add_argument("--size", type=int, default=256, help="patch size in pixels")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (best is reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = make_patches(args.patches, args.size)
    tensor = torch.from_numpy(data.astype(np.int32))
    batches = [tensor[i : i + args.batch] for i in range(0, args.patches, args.batch)]

    def run_numpy() -> list[np.ndarray]:
        return [cloud_shadow_mask(p) for p in data]

    def run_torch(device: str) -> list[torch.Tensor]:
        out = [cloud_shadow_mask(b.to(device, non_blocking=True)) for b in batches]
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    result: dict[str, object] = {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "patch_size": args.size,
        "patches": args.patches,
        "batch": args.batch,
    }
    ref = np.stack(run_numpy())
    result["numpy_patches_per_s"] = round(_rate(run_numpy, args.patches, args.repeat), 2)
    cpu = torch.cat(run_torch("cpu")).numpy()
    result["torch_cpu_patches_per_s"] = round(
        _rate(lambda: run_torch("cpu"), args.patches, args.repeat), 2
    )
    agree = bool(np.array_equal(cpu, ref))
    if torch.cuda.is_available():
        gpu = torch.cat(run_torch("cuda")).cpu().numpy()
        agree = agree and bool(np.array_equal(gpu, ref))
        # Timed including the host-to-device copy of the uint16-range int32 batch.
        result["torch_cuda_patches_per_s"] = round(
            _rate(lambda: run_torch("cuda"), args.patches, args.repeat), 2
        )
        resident = [b.cuda() for b in batches]

        def run_resident() -> None:
            for b in resident:
                cloud_shadow_mask(b)
            torch.cuda.synchronize()

        result["torch_cuda_resident_patches_per_s"] = round(
            _rate(run_resident, args.patches, args.repeat), 2
        )
    result["masks_identical"] = agree
    print(json.dumps(result))


if __name__ == "__main__":
    main()
