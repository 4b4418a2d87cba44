"""Data-loading throughput of the SEN12MS-CR pipeline: triplets per second per worker.

Reads 256 x 256 GeoTIFF triplets from ``--root`` (a synthetic SEN12MS-CR is generated into a
temporary folder if none is given), preprocesses (clip, scale, NaN fill) and augments them in one
process with one thread, i.e. what one DataLoader worker does, for four settings:

* ``crop128_augment``: training (random 128 px windowed read, flips and rotations);
* ``whole_patch``: evaluation (whole 256 px patch, no augmentation);
* the same two with the CPU cloud/shadow mask (``with_mask=True``; it needs the whole cloudy patch).

Prints one JSON object with the rates and the number of workers a GPU consuming 250 crops/s would
need. Usage::

    python benchmarks/bench_dataloading.py [--root DIR] [--samples 96] [--loader-workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from dsen2cr.benchmark import cpu_model


def _rate(dataset: object, samples: int) -> float:
    """Triplets per second of ``dataset[i]`` for ``samples`` indices, after one warm-up read."""
    n = len(dataset)  # type: ignore[arg-type]
    dataset[0]  # type: ignore[index]
    start = time.perf_counter()
    for i in range(samples):
        dataset[(i * 7919) % n + n]  # type: ignore[index]  # spread over files, epoch 1
    return samples / (time.perf_counter() - start)


def _loader_rate(dataset: object, workers: int, samples: int) -> float:
    from dsen2cr.data import EpochRandomSampler, collate

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=8, sampler=EpochRandomSampler(len(dataset), 0),  # type: ignore[arg-type]
        num_workers=workers, collate_fn=collate, persistent_workers=False,
    )  # fmt: skip
    done, start = 0, None
    while done < samples:
        for batch in loader:
            if start is None:  # exclude worker start-up and the first batch
                start, done = time.perf_counter(), 0
                continue
            done += batch["optical"].shape[0]
            if done >= samples:
                break
    return done / (time.perf_counter() - start)  # type: ignore[operator]


def run(root: Path | None, samples: int, loader_workers: int) -> dict[str, object]:
    """Measure and return the JSON-able result (see the module docstring)."""
    from dsen2cr.data import SEN12MSCR
    from dsen2cr.data.synthetic import generate_dataset

    torch.set_num_threads(1)
    tmp = None
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix="dsen2cr-bench-")
        root = generate_dataset(Path(tmp.name) / "data", rois=2, patches=24, size=256, seed=0,
                                progress=False)  # fmt: skip
    try:
        settings = {
            "crop128_augment": dict(crop_size=128, augment=True),
            "whole_patch": dict(crop_size=None, augment=False),
            "crop128_augment_mask": dict(crop_size=128, augment=True, with_mask=True),
            "whole_patch_mask": dict(crop_size=None, augment=False, with_mask=True),
        }
        results: dict[str, dict[str, float]] = {}
        for name, kwargs in settings.items():
            dset = SEN12MSCR(root, split="all", **kwargs)  # type: ignore[arg-type]
            rate = _rate(dset, samples if "mask" not in name else max(8, samples // 3))
            results[name] = {"triplets_per_s": round(rate, 1), "ms_per_triplet": round(1e3 / rate, 2)}
        crop_rate = results["crop128_augment"]["triplets_per_s"]
        out: dict[str, object] = {
            "device": f"CPU: {cpu_model()} ({os.cpu_count()} logical cores); no GPU involved",
            "threads_per_worker": torch.get_num_threads(),
            "root": str(root) if tmp is None else "synthetic (temporary, 48 triplets, uncompressed)",
            "per_worker": results,
            "workers_for_250_crops_per_s": math.ceil(250 / crop_rate),
            "workers_for_250_crops_per_s_with_cpu_mask": math.ceil(
                250 / results["crop128_augment_mask"]["triplets_per_s"]
            ),
        }
        if loader_workers > 0:
            dset = SEN12MSCR(root, split="all", crop_size=128, augment=True)
            out[f"dataloader_{loader_workers}_workers_crop128_triplets_per_s"] = round(
                _loader_rate(dset, loader_workers, samples), 1
            )
        return out
    finally:
        if tmp is not None:
            tmp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="SEN12MS-CR root (256 px patches)")
    parser.add_argument("--samples", type=int, default=96, help="triplets per setting (default 96)")
    parser.add_argument("--loader-workers", type=int, default=2,
                        help="also time a DataLoader with this many workers (0: skip)")
    args = parser.parse_args()
    print(json.dumps(run(args.root, args.samples, args.loader_workers), indent=2))


if __name__ == "__main__":
    main()
