"""Training throughput of DSen2-CR in crops per second (forward + CARL loss + backward + NAdam).

Measures the model, not the data loader: one synthetic batch of scenes (dsen2cr.synthetic,
``--crop`` x ``--crop`` px) lives on the device, and every step runs exactly what
:class:`dsen2cr.training.DSen2CRModule` runs in ``training_step``: the batched cloud/shadow detector
on the device, the network (under bf16 autocast for ``bf16``), the loss in float32, backward and
the optimiser step. Prints one JSON object with the device description and, per precision,
seconds per step and crops/s.

Examples::

    python benchmarks/bench_training.py                       # paper model F=256 B=16, batch 16
    python benchmarks/bench_training.py --batch-size 2 --steps 2 --warmup 1   # CPU: keep it short
    python benchmarks/bench_training.py --features 64 --blocks 4 --precision fp32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np
import torch

from dsen2cr import scaling
from dsen2cr.models import count_parameters
from dsen2cr.synthetic import make_scene
from dsen2cr.training import DSen2CRModule, load_config


def device_info(device: torch.device) -> dict[str, Any]:
    """Torch version, device name, CPU threads and (on CUDA) GPU name and memory."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "device": str(device),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    try:
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info


def make_batch(batch_size: int, crop: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A batch of synthetic scenes (30-70 % cloud cover) as scaled tensors on ``device``."""
    rng = np.random.default_rng(0)
    scenes = [
        make_scene(crop, crop, seed=i, cloud_cover=float(rng.uniform(0.3, 0.7)))
        for i in range(batch_size)
    ]

    def stack(key: str, fn: Any) -> torch.Tensor:
        return torch.stack([torch.from_numpy(np.asarray(fn(s[key]))) for s in scenes]).to(device)

    return {
        "optical": stack("s2_cloudy", scaling.s2_to_scaled),
        "sar": stack("s1", scaling.s1_to_scaled),
        "target": stack("s2", scaling.s2_to_scaled),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    module: DSen2CRModule,
    batch: dict[str, torch.Tensor],
    precision: str,
    steps: int,
    warmup: int,
) -> dict[str, Any]:
    """Time ``steps`` training steps after ``warmup`` untimed ones.

    Returns:
        ``{"seconds_per_step", "crops_per_s", "mask_seconds_per_step", "loss_first", "loss_last"}``.
    """
    device = batch["optical"].device
    optimizer = module.configure_optimizers()
    optical, sar, target = batch["optical"], batch["sar"], batch["target"]
    bf16 = precision == "bf16"
    mask_time = 0.0
    losses: list[float] = []

    def step(timed: bool) -> None:
        nonlocal mask_time
        t0 = time.perf_counter()
        mask = module.cloud_mask(batch, optical)
        if timed:
            _sync(device)
            mask_time += time.perf_counter() - t0
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = module(optical, sar)
        loss = module.compute_loss(pred, target, optical, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))

    module.train()
    for _ in range(warmup):
        step(False)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(True)
    _sync(device)
    elapsed = time.perf_counter() - t0
    n = optical.shape[0]
    return {
        "seconds_per_step": elapsed / steps,
        "crops_per_s": n * steps / elapsed,
        "mask_seconds_per_step": mask_time / steps,
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--features", type=int, default=256, help="F (default 256, the paper)")
    p.add_argument("--blocks", type=int, default=16, help="B (default 16, the paper)")
    p.add_argument("--batch-size", type=int, default=16, help="crops per step (default 16)")
    p.add_argument("--crop", type=int, default=128, help="crop size in pixels (default 128)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps (default 2)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if any)")
    p.add_argument("--precision", choices=["both", "fp32", "bf16"], default="both",
                   help="fp32, bf16 autocast, or both (default)")  # fmt: skip
    p.add_argument("--no-sar", action="store_true", help="optical-only model")
    a = p.parse_args(argv)

    if a.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    cfg = load_config(
        {"model": {"features": a.features, "blocks": a.blocks, "sar": not a.no_sar}},
    )
    batch = make_batch(a.batch_size, a.crop, device)
    result: dict[str, Any] = {
        "benchmark": "dsen2cr training step (mask on device + forward + CARL + backward + NAdam)",
        "model": {"features": a.features, "blocks": a.blocks, "sar": not a.no_sar},
        "batch_size": a.batch_size,
        "crop": a.crop,
        "steps": a.steps,
        "warmup": a.warmup,
        "device_info": device_info(device),
        "results": {},
    }
    precisions = ["fp32", "bf16"] if a.precision == "both" else [a.precision]
    for prec in precisions:
        torch.manual_seed(0)
        module = DSen2CRModule(cfg).to(device)
        result["model"]["parameters"] = count_parameters(module.model)
        try:
            result["results"][prec] = measure(module, batch, prec, a.steps, a.warmup)
        except RuntimeError as exc:  # e.g. bf16 autocast unsupported on this device
            result["results"][prec] = {"error": str(exc).splitlines()[0]}
        del module
        if device.type == "cuda":
            result["results"][prec]["max_memory_gib"] = round(
                torch.cuda.max_memory_allocated(device) / 2**30, 2
            )
            torch.cuda.reset_peak_memory_stats(device)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
