"""Several scenes in one call: outputs named after the inputs, one process per GPU.

``dsen2cr predict`` with several S2 inputs (a list or quoted globs) writes into folders:
``<name>_dsen2cr.tif``, ``<name>_mask.tif``, ``<name>_preview.png``. With several CUDA devices
the scenes are shared among spawned worker processes, one per device.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from dsen2cr.errors import DataError, DSen2CRError, OptionError
from dsen2cr.io import guard_outputs
from dsen2cr.models import DSen2CR
from dsen2cr.performance import resolve_device
from dsen2cr.scene.predict import PredictOptions, predict
from dsen2cr.scene.sentinel2 import open_s2


def expand_inputs(items: Sequence[str | os.PathLike[str]], what: str) -> list[Path]:
    """Expand glob patterns (sorted) and keep plain paths; a pattern without matches is an error."""
    out: list[Path] = []
    for item in items:
        s = str(item)
        if any(ch in s for ch in "*?["):
            matches = sorted(glob.glob(s))
            if not matches:
                raise DataError(f"no {what} matches the pattern {s}")
            out.extend(Path(m) for m in matches)
        else:
            out.append(Path(s))
    return out


def scene_name(path: Path) -> str:
    """The name of a scene's outputs: the input's file name without its suffixes."""
    name = path.name
    for suffix in (".zip", ".SAFE", ".tiff", ".tif", ".TIF", ".TIFF"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _worker_init(device_queue: Any) -> None:
    global _WORKER_DEVICE
    _WORKER_DEVICE = device_queue.get()
    if _WORKER_DEVICE is not None and _WORKER_DEVICE.startswith("cuda"):
        torch.cuda.set_device(_WORKER_DEVICE)  # no context on GPU 0 from every worker


_WORKER_DEVICE: str | None = None


def _worker_predict(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`predict` in a pool worker on the worker's device."""
    model = kwargs.pop("weights_or_model")
    if isinstance(model, tuple):  # (config, state_dict) of an in-memory model
        config, state = model
        net = DSen2CR(**config)
        net.load_state_dict(state)
        model = net
    options = replace(kwargs.pop("options"), device=_WORKER_DEVICE or "cpu", progress=False)
    return predict(weights_or_model=model, options=options, **kwargs)


def predict_many(
    s2: Sequence[str | os.PathLike[str]],
    weights_or_model: Any,
    out_dir: str | os.PathLike[str],
    s1: Sequence[str | os.PathLike[str]] | None = None,
    *,
    mask_dir: str | os.PathLike[str] | None = None,
    preview_dir: str | os.PathLike[str] | None = None,
    devices: Sequence[str] | None = None,
    options: PredictOptions | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Predict several scenes; with several devices, scenes are shared among them.

    Outputs are named after the inputs: ``<name>_dsen2cr.tif`` in ``out_dir``,
    ``<name>_mask.tif`` in ``mask_dir``, ``<name>_preview.png`` in ``preview_dir``.

    Args:
        s2: S2 inputs (paths or glob patterns, expanded and sorted).
        weights_or_model: weight file or model.
        out_dir: folder for the predictions.
        s1: S1 inputs, paired with the S2 inputs in the same (sorted) order; required for SAR
            models.
        mask_dir: folder for cloud/shadow masks (None: no masks).
        preview_dir: folder for previews (None: no previews).
        devices: explicit devices, e.g. ``["cuda:0", "cuda:1"]``; one worker process per device
            (``torch.multiprocessing`` spawn), each scene goes to the next free one. Default:
            every CUDA device when ``options.device`` is auto/cuda and there are several, else
            ``options.device`` alone (sequential, in this process).
        options: the options of :func:`~dsen2cr.scene.predict.predict`.
        overwrite: replace outputs that exist (else that is an error, before any scene runs).

    Returns:
        One summary per scene (see :func:`predict`), in input order.
    """
    opts = options or PredictOptions()
    scenes = expand_inputs(s2, "S2 image")
    sars: list[Path | None] = [None] * len(scenes)
    if s1:
        s1_paths = expand_inputs(s1, "S1 image")
        if len(s1_paths) != len(scenes):
            raise DSen2CRError(
                f"{len(scenes)} S2 scene(s) but {len(s1_paths)} S1 image(s): give one S1 per S2 "
                "(paired in sorted order)"
            )
        sars = list(s1_paths)
    names = [scene_name(p) for p in scenes]
    if len(set(names)) != len(names):
        raise DSen2CRError("several S2 inputs have the same name; outputs would collide")
    for p in scenes:  # fail early, before any output is written
        open_s2(p)
    out_dir = Path(out_dir)
    jobs: list[dict[str, Any]] = []
    for p, sar, name in zip(scenes, sars, names, strict=True):
        jobs.append(
            {
                "s2": p,
                "s1": sar,
                "out": out_dir / f"{name}_dsen2cr.tif",
                "mask_out": Path(mask_dir) / f"{name}_mask.tif" if mask_dir else None,
                "preview": Path(preview_dir) / f"{name}_preview.png" if preview_dir else None,
                "options": opts,
                "overwrite": overwrite,
            }
        )
    for job in jobs:  # fail early, before any output is written
        guard_outputs({k: job[k] for k in ("out", "mask_out", "preview")}, [job["s2"], job["s1"]],
                      overwrite=overwrite)  # fmt: skip
    if devices is None:
        d = opts.device.lower()
        n = torch.cuda.device_count() if d in ("auto", "cuda") else 0
        devices = [f"cuda:{i}" for i in range(n)] if n > 1 else [opts.device]
    devices = list(devices)
    if len(devices) <= 1 or len(jobs) <= 1:
        one = replace(opts, device=devices[0]) if devices else opts
        return [predict(weights_or_model=weights_or_model, **{**job, "options": one}) for job in jobs]
    return _predict_pool(jobs, weights_or_model, devices)


def _predict_pool(jobs: list[dict[str, Any]], weights_or_model: Any, devices: list[str]) -> list:
    """One spawned worker process per device; each scene goes to one device."""
    for d in devices:
        if d.startswith("cuda"):
            resolve_device(d)
    if isinstance(weights_or_model, DSen2CR):
        state = {k: v.detach().cpu() for k, v in weights_or_model.state_dict().items()}
        model_arg: Any = (weights_or_model.config, state)
    else:
        model_arg = str(weights_or_model)
    ctx = mp.get_context("spawn")
    dq = ctx.Queue()
    for d in devices:
        dq.put(d)
    workers = min(len(devices), len(jobs))
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(dq,)
    ) as pool:
        futures = [
            pool.submit(_worker_predict, {**job, "weights_or_model": model_arg})
            for job in jobs
        ]
        return [f.result() for f in futures]


def predict_scenes(
    s2: Sequence[str | os.PathLike[str]],
    weights_or_model: Any,
    out: str | os.PathLike[str],
    s1: Sequence[str | os.PathLike[str]] | None = None,
    *,
    mask_out: str | os.PathLike[str] | None = None,
    preview: str | os.PathLike[str] | None = None,
    options: PredictOptions | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """What ``dsen2cr predict`` does: one scene to a file, or several scenes to folders.

    One S2 input (after glob expansion) and an ``out`` that is not an existing folder: ``out``,
    ``mask_out`` and ``preview`` are files (:func:`predict`). Otherwise they are folders
    (:func:`predict_many`).

    Args:
        s2: S2 paths or glob patterns.
        weights_or_model: weight file or model.
        out: output file (one scene) or folder.
        s1: S1 paths or glob patterns (one per S2, sorted order), or None.
        mask_out: mask file or folder, or None.
        preview: preview PNG or folder, or None.
        options: the options of :func:`~dsen2cr.scene.predict.predict`.
        overwrite: replace outputs that exist.

    Returns:
        One summary per scene.
    """
    scenes = expand_inputs(s2, "S2 image")
    out = Path(out)
    if len(scenes) == 1 and not out.is_dir():
        sars = expand_inputs(s1, "S1 image") if s1 else []
        if len(sars) > 1:
            raise DSen2CRError(f"one S2 scene but {len(sars)} S1 images: give one S1 per S2")
        sar = sars[0] if sars else None
        weights = weights_or_model if isinstance(weights_or_model, (str, os.PathLike)) else None
        guard_outputs({"out": out, "mask_out": mask_out, "preview": preview},
                      [scenes[0], sar, weights], overwrite=overwrite)  # fmt: skip
        if out.suffix.lower() not in (".tif", ".tiff"):
            raise OptionError("out", f"{out}: expected a .tif file name (or an existing folder)")
        one = predict(
            scenes[0], weights_or_model, out, sar, mask_out=mask_out, preview=preview,
            options=options, overwrite=overwrite,
        )
        return [one]
    if out.suffix.lower() in (".tif", ".tiff"):
        raise OptionError("out", f"must be a folder for {len(scenes)} S2 scenes, not {out}")
    return predict_many(
        scenes, weights_or_model, out, s1, mask_dir=mask_out, preview_dir=preview,
        options=options, overwrite=overwrite,
    )
