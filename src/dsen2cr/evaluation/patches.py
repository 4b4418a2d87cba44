"""Evaluation on the patches of a SEN12MS-CR split: the paper's Table 1, Fig. 11, Figs. 6-8.

:func:`evaluate` runs one or more trained models (native safetensors, the authors' Keras HDF5
weights, pix2pix generators, Lightning checkpoints: anything :func:`dsen2cr.models.load_weights`
reads, without importing Lightning) over every whole patch of a split, together with the
``identity`` baseline (the cloudy input returned unchanged, the floor every model must beat),
and writes to ``out_dir``:

* ``metrics.json`` - ``{"models": {name: {metric: mean, ..., "band_nrmse": [13 values],
  "images": N, "undefined": {metric: count}}}, "protocol": {...}, "split", "data", "images",
  "device", ...}``;
* ``metrics.csv`` - one row per image and model (model, season, roi, patch, cloud_fraction,
  every metric);
* ``table.md`` - the means laid out like the paper's Table 1;
* ``band_nrmse.png`` (paper Fig. 11) and ``examples.png`` (paper Figs. 6-8);
* with ``scenes=True``, ``scenes/``: the large-scene evaluation of :mod:`dsen2cr.evaluation.scenes`.

It is a pipeline of steps that can be composed on their own: :func:`score_patches` (one row per
patch and model, and the running means), :func:`summarize_patches` (the ``metrics.json``
content), :func:`~dsen2cr.evaluation.scenes.evaluate_scenes` (the sibling scene step, its
reference recorded by :func:`scene_reference`), :func:`write_patch_report` (through the one
report writer :func:`dsen2cr.evaluation.report.write_report`) and :func:`patch_figures`.

Every value follows one declared metric protocol (:mod:`dsen2cr.metrics.protocols`, default
``dsen2cr``): its crop is applied to the inputs before the models run (GLF-CR scores the centre
128 x 128 of each patch, as its test loader feeds the network), its clipping, PSNR, SSIM and SAM
conventions inside :func:`~dsen2cr.metrics.batch_metrics`, and its averaging in the means. An
infinite mean (the ``uncrtaints`` PSNR when one image is perfect) is written as JSON
``Infinity``, as Python's ``json`` does.

All metrics are computed on top-of-atmosphere reflectance (DN / 10000). The cloud/shadow mask
that splits *reproduction* (clear pixels of the cloudy input) from *reconstruction* (pixels under
clouds and shadows, compared with the target) is computed from the cloudy input by
:func:`dsen2cr.cloudmask.binary_mask`, batched on the evaluation device. Metrics that are
undefined for an image (reconstruction on a cloud-free patch, reproduction on a fully covered
one) are left out of that metric's mean and counted under ``"undefined"``. The mask is computed
on the whole patch and then cropped with it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dsen2cr.cloudmask import DEFAULT_THRESHOLD, binary_mask
from dsen2cr.data.dataset import SEN12MSCR, collate, is_empty_batch
from dsen2cr.errors import DSen2CRError, InputNotFoundError, OptionError
from dsen2cr.evaluation.report import (
    IDENTITY,
    UNITS,
    CsvRow,
    JSONObject,
    json_value,
    write_report,
)
from dsen2cr.evaluation.scenes import evaluate_scenes
from dsen2cr.figures import band_nrmse_plot, example_grid, pick_examples
from dsen2cr.io import atomic_output, guard_outputs
from dsen2cr.metrics import (
    DEFAULT_PROTOCOL,
    METRIC_KEYS,
    MetricAccumulator,
    Protocol,
    batch_band_nrmse,
    batch_metrics,
    format_table1,
    get_protocol,
    protocol_names,
    protocol_view,
)
from dsen2cr.models import load_weights
from dsen2cr.performance import resolve_device
from dsen2cr.scaling import scaled_to_reflectance, scaled_to_s1, scaled_to_s2


# --------------------------------------------------------------------------- models
class _Identity(nn.Module):
    """The baseline: the prediction is the cloudy input."""

    name = IDENTITY
    uses_sar = False

    def forward(self, optical: torch.Tensor, sar: torch.Tensor | None = None) -> torch.Tensor:
        return optical


def _model_names(weights: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    if names is not None and len(names) != len(weights):
        raise DSen2CRError(
            f"got {len(names)} name(s) for {len(weights)} weight file(s); give one name per file"
        )
    out: list[str] = []
    for i, w in enumerate(weights):
        base = names[i] if names is not None else w.stem
        if not base or base == IDENTITY:
            raise DSen2CRError(f"model name {base!r} for {w} is reserved or empty; pick another")
        name, k = base, 2
        while name in out:
            if names is not None:
                raise DSen2CRError(f"model name {base!r} is given twice; names must be unique")
            name, k = f"{base}_{k}", k + 1
        out.append(name)
    return out


# --------------------------------------------------------------------------- data
def _open_split(
    data_root: Path, split: str, split_file: str | os.PathLike[str] | None
) -> SEN12MSCR:
    if not data_root.exists():
        raise InputNotFoundError(f"data folder not found: {data_root}")
    if not data_root.is_dir():
        raise DSen2CRError(f"data root {data_root} is not a folder")
    ds = SEN12MSCR(data_root, split=split, crop_size=None, augment=False, split_file=split_file)
    if len(ds) == 0:
        raise DSen2CRError(f"the {split!r} split of {data_root} has no images")
    return ds


def _to_list(x: object, n: int) -> list[Any]:
    """Per-sample batch metadata (a tensor, list or tuple, or one value for all) as a list."""
    if isinstance(x, torch.Tensor):
        return list(x.tolist())
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x] * n


def _mask_of(optical_scaled: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B, H, W) float {0, 1} cloud-or-shadow mask of a scaled cloudy batch."""
    mask: torch.Tensor = binary_mask(scaled_to_s2(optical_scaled), threshold=threshold)
    return mask.to(optical_scaled.dtype)


# --------------------------------------------------------------------------- evaluation
def evaluate(
    weights: Sequence[str | os.PathLike[str]],
    data_root: str | os.PathLike[str],
    split: str = "test",
    out_dir: str | os.PathLike[str] = "evaluation",
    names: Sequence[str] | None = None,
    *,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    max_images: int | None = None,
    examples: int = 4,
    cloud_threshold: float = DEFAULT_THRESHOLD,
    split_file: str | os.PathLike[str] | None = None,
    stretch: str | tuple[float, float] = (0.0, 3000.0),
    progress: bool = True,
    overwrite: bool = False,
    protocol: str | Protocol | None = None,
    scenes: bool = False,
) -> JSONObject:
    """Evaluate models on a SEN12MS-CR split and write the report files.

    The steps: :func:`score_patches` (the rows), :func:`summarize_patches` (the means),
    :func:`dsen2cr.evaluation.scenes.evaluate_scenes` (with ``scenes``), :func:`write_patch_report`
    and :func:`patch_figures`.

    Args:
        weights: weight files (native ``.safetensors``, Keras ``.hdf5``, pix2pix generator,
            Lightning ``.ckpt``); may be empty, then only ``identity`` is scored.
        data_root: SEN12MS-CR root folder (the ``ROIs*_<season>`` folders).
        split: ``"test"``, ``"val"``, ``"train"`` or ``"all"``.
        out_dir: output folder (created; a folder that is not empty only with ``overwrite``).
        names: one name per weight file (default: the file stems, made unique).
        batch_size: patches per forward pass.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available.
        num_workers: data-loader worker processes.
        max_images: evaluate only the first N patches of the split (in dataset order).
        examples: rows of the example grid (0 for none), spread over the cloud fractions.
        cloud_threshold: threshold of the cloud detector that makes the evaluation mask.
        split_file: optional split definition passed to the dataset.
        stretch: RGB stretch of the example grid in DN (default reflectance 0-0.3), or
            ``"percentile"``.
        progress: show a progress bar (on a terminal).
        overwrite: write into an ``out_dir`` that is not empty (its report files are replaced).
        protocol: the metric protocol, a name (``"dsen2cr"``, ``"uncrtaints"``, ``"glf-cr"``) or
            a :class:`~dsen2cr.metrics.Protocol` (default ``"dsen2cr"``).
        scenes: also mosaic, predict and score every (season, ROI) of the split as a large
            scene (:func:`dsen2cr.evaluation.scenes.evaluate_scenes`, into ``out_dir/scenes``).

    Returns:
        The content of ``metrics.json`` (with ``"scenes"``: the scene results, when asked).

    Raises:
        DSen2CRError: a weight file is missing or unreadable, the data folder is missing, the
            split has no images, or ``out_dir`` is not empty (without ``overwrite``).
    """
    run = _prepare(weights, data_root, split, out_dir, names, batch_size=batch_size,
                   max_images=max_images, protocol=protocol, device=device,
                   split_file=split_file, overwrite=overwrite)  # fmt: skip
    scores = score_patches(run.models, run.dataset, run.protocol, run.device,
                           batch_size=batch_size, num_workers=num_workers, max_images=max_images,
                           cloud_threshold=cloud_threshold, progress=progress,
                           desc=f"evaluate {split}")  # fmt: skip
    if not scores.images:
        raise DSen2CRError(f"no readable image in the {split!r} split of {run.root}")
    result = summarize_patches(scores, run.weights, split=split, data=run.root, device=run.device,
                               protocol=run.protocol, cloud_threshold=cloud_threshold)  # fmt: skip
    if scenes:
        result["scenes"] = scene_reference(evaluate_scenes(
            run.models, run.weights, run.root, run.out / "scenes", split=split,
            split_file=split_file, device=run.device, protocol=run.protocol,
            cloud_threshold=cloud_threshold, examples=max(examples, 1), stretch=stretch,
            progress=progress, overwrite=overwrite))  # fmt: skip
    write_patch_report(run.out, result, scores.rows)
    patch_figures(run.out, result, scores, run.dataset, run.models, run.device,
                  examples=examples, stretch=stretch, cloud_threshold=cloud_threshold)  # fmt: skip
    return result


@dataclass
class _Run:
    """What :func:`evaluate` checked and loaded before scoring anything."""

    out: Path
    root: Path
    protocol: Protocol
    device: torch.device
    models: dict[str, nn.Module]
    """Model name -> network, the weight files' in order, then ``identity``."""
    weights: dict[str, Path]
    """Model name -> its weight file (every model but ``identity``)."""
    dataset: SEN12MSCR


def _prepare(
    weights: Sequence[str | os.PathLike[str]],
    data_root: str | os.PathLike[str],
    split: str,
    out_dir: str | os.PathLike[str],
    names: Sequence[str] | None,
    *,
    batch_size: int,
    max_images: int | None,
    protocol: str | Protocol | None,
    device: str | torch.device | None,
    split_file: str | os.PathLike[str] | None,
    overwrite: bool,
) -> _Run:
    """Check the options and outputs, load the models and open the split (in that order)."""
    weight_paths = [Path(w) for w in weights]
    out = guard_outputs({"out": out_dir}, [*weight_paths, data_root], overwrite=overwrite,
                        folders=["out"])["out"]  # fmt: skip
    model_names = _model_names(weight_paths, names)
    if batch_size < 1:
        raise OptionError("batch_size", f"must be at least 1, got {batch_size}")
    if max_images is not None and max_images < 1:
        raise OptionError("max_images", f"must be at least 1, got {max_images}")
    try:
        proto = get_protocol(protocol)
    except ValueError as exc:
        raise OptionError("protocol", f"must be one of {', '.join(protocol_names())}, got "
                          f"{protocol!r}") from exc  # fmt: skip
    dev = resolve_device(device)
    files = dict(zip(model_names, weight_paths, strict=True))
    models: dict[str, nn.Module] = {name: load_weights(path, dev) for name, path in files.items()}
    models[IDENTITY] = _Identity()
    root = Path(data_root)
    dataset = _open_split(root, split, split_file)
    return _Run(out, root, proto, dev, models, files, dataset)


class PatchImage(TypedDict):
    """One scored patch: its place in the dataset, its metadata and its cloud cover.

    Keys: ``index`` (dataset index), ``season``, ``roi``, ``patch`` and ``cloud_fraction``
    (fraction of the scored pixels under cloud or shadow, 0-1).
    """

    index: int
    season: str
    roi: int
    patch: int
    cloud_fraction: float


@dataclass
class PatchScores:
    """What scoring the patches of a split produced (:func:`score_patches`).

    Attributes:
        images: one entry per scored patch, in dataset order.
        rows: one ``metrics.csv`` row per patch and model: ``model``, ``season``, ``roi``,
            ``patch``, ``cloud_fraction`` and every metric of the patch (reflectance, dB,
            degrees; NaN where undefined).
        accumulators: model name -> the running means of its metrics and ``band_nrmse``.
    """

    images: list[PatchImage] = field(default_factory=list)
    rows: list[dict[str, object]] = field(default_factory=list)
    accumulators: dict[str, MetricAccumulator] = field(default_factory=dict)


def score_patches(
    models: Mapping[str, nn.Module],
    dataset: SEN12MSCR,
    protocol: Protocol,
    device: torch.device,
    *,
    batch_size: int = 8,
    num_workers: int = 0,
    max_images: int | None = None,
    cloud_threshold: float = DEFAULT_THRESHOLD,
    progress: bool = True,
    desc: str = "evaluate",
) -> PatchScores:
    """Score every model on the whole patches of a split: the rows of the patch evaluation.

    Each batch is moved to ``device``; its cloud/shadow mask is computed on the whole patch,
    then the protocol's crop is applied to everything, and every model predicts it (scaled
    domain) and is scored in TOA reflectance by :func:`~dsen2cr.metrics.batch_metrics`.

    Args:
        models: model name -> network taking scaled optical (B, 13, H, W) and SAR (B, 2, H, W)
            and predicting scaled (B, 13, H, W).
        dataset: the split (whole patches, no augmentation).
        protocol: the metric protocol.
        device: where the models run.
        batch_size: patches per forward pass.
        num_workers: data-loader worker processes.
        max_images: score only the first N patches (in dataset order).
        cloud_threshold: threshold of the cloud detector that makes the mask.
        progress: show a progress bar (on a terminal).
        desc: the progress bar's label.

    Returns:
        The :class:`PatchScores` (empty when no patch could be read).
    """
    indices = list(range(len(dataset)))
    if max_images is not None:
        indices = indices[:max_images]
    subset = torch.utils.data.Subset(dataset, indices)
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers, collate_fn=collate,
                                         pin_memory=device.type == "cuda")  # fmt: skip
    scores = PatchScores(accumulators={name: MetricAccumulator(averaging=protocol.averaging)
                                       for name in models})  # fmt: skip
    position = 0
    bar = tqdm(total=len(subset), desc=desc, unit="img", disable=None if progress else True)
    with torch.inference_mode():
        for batch in loader:
            if is_empty_batch(batch):
                continue  # every sample of the batch was skipped
            n = _score_batch(batch, indices[position : position + batch_size], models, scores,
                             protocol, device, cloud_threshold)  # fmt: skip
            position += n
            bar.update(n)
    bar.close()
    return scores


def _score_batch(
    batch: Mapping[str, Any],
    indices: Sequence[int],
    models: Mapping[str, nn.Module],
    scores: PatchScores,
    proto: Protocol,
    dev: torch.device,
    threshold: float,
) -> int:
    """Score one batch (its dataset indices first in ``indices``) into ``scores``.

    Returns:
        The number of patches in the batch.
    """
    optical = batch["optical"].to(dev, non_blocking=True).float()
    sar = batch["sar"].to(dev, non_blocking=True).float()
    target = batch["target"].to(dev, non_blocking=True).float()
    n = int(optical.shape[0])
    # the mask of the whole patch, then the protocol's crop of everything
    mask = protocol_view(_mask_of(optical, threshold), proto)
    optical, sar, target = (protocol_view(x, proto).contiguous()
                            for x in (optical, sar, target))  # fmt: skip
    cloud_fraction = mask.flatten(1).mean(1).tolist()
    cloudy_r = scaled_to_reflectance(optical)
    target_r = scaled_to_reflectance(target)
    meta = {k: _to_list(batch.get(k), n) for k in ("season", "roi", "patch")}
    images = [PatchImage(index=indices[i], season=meta["season"][i], roi=meta["roi"][i],
                         patch=meta["patch"][i], cloud_fraction=cloud_fraction[i])
              for i in range(n)]  # fmt: skip
    scores.images.extend(images)
    for name, model in models.items():
        pred_r = scaled_to_reflectance(model(optical, sar).float())
        values = batch_metrics(pred_r, target_r, cloudy_r, mask, protocol=proto)
        scores.accumulators[name].update(
            {**values, "band_nrmse": batch_band_nrmse(pred_r, target_r, protocol=proto)}
        )
        keys = [k for k in METRIC_KEYS if k in values]
        # one device-to-host copy per batch and model, not one per metric
        table = torch.stack([values[k] for k in keys], 1).cpu().tolist()
        for image, row_values in zip(images, table, strict=True):
            row: dict[str, object] = {"model": name, **image}
            row.pop("index")
            row.update(zip(keys, row_values, strict=True))
            scores.rows.append(row)
    return n


def summarize_patches(
    scores: PatchScores,
    weights: Mapping[str, Path],
    *,
    split: str,
    data: Path,
    device: torch.device,
    protocol: Protocol,
    cloud_threshold: float,
) -> JSONObject:
    """The content of ``metrics.json``: the means of every model, then what was evaluated.

    Args:
        scores: the rows and running means (:func:`score_patches`).
        weights: model name -> its weight file (every model but ``identity``).
        split: the split's name.
        data: the SEN12MS-CR root.
        device: the evaluation device.
        protocol: the metric protocol.
        cloud_threshold: threshold of the cloud detector.

    Returns:
        ``{"models": {name: {metric: mean, ..., "band_nrmse": [13 percent values], "images": N,
        "undefined": {metric: count}, "weights": file}}, "split", "data", "images", "device",
        "protocol", "cloud_threshold", "units"}`` (JSON values; undefined means are None).
    """
    images = len(scores.images)
    result: JSONObject = {"models": {}}
    for name, acc in scores.accumulators.items():
        stats = acc.compute()
        entry: JSONObject = {k: json_value(stats.get(k)) for k in METRIC_KEYS}
        entry["band_nrmse"] = json_value(np.asarray(stats["band_nrmse"]).tolist())
        entry["images"] = images
        entry["undefined"] = {k: int(stats.get(f"{k}_undefined", 0)) for k in METRIC_KEYS}
        if name in weights:
            entry["weights"] = str(weights[name])
        result["models"][name] = entry
    result.update(
        {
            "split": split,
            "data": str(data),
            "images": images,
            "device": str(device),
            "protocol": protocol.to_dict(),
            "cloud_threshold": cloud_threshold,
            "units": {k: v for k, v in UNITS.items() if k != "spectrum"},
        }
    )
    return result


def scene_reference(scene_result: JSONObject) -> JSONObject:
    """What the patch ``metrics.json`` records of a scene evaluation (under ``"scenes"``).

    Args:
        scene_result: the return value of :func:`~dsen2cr.evaluation.scenes.evaluate_scenes`.

    Returns:
        ``{"metrics": "scenes/metrics.json", "scenes": [names], "models", "skipped"}``.
    """
    return {
        "metrics": "scenes/metrics.json",
        "scenes": list(scene_result["scenes"]),
        "models": scene_result["models"],
        "skipped": scene_result["skipped"],
    }


PATCH_FIELDS = ("model", "season", "roi", "patch", "cloud_fraction", *METRIC_KEYS)
"""The columns of the patch ``metrics.csv``."""


def write_patch_report(out: Path, result: JSONObject, rows: Iterable[CsvRow]) -> None:
    """Write ``metrics.json``, ``metrics.csv`` (:func:`~dsen2cr.evaluation.report.write_report`)
    and ``table.md`` (:func:`format_table` with its caption) into ``out``.

    Args:
        out: the report folder.
        result: the content of ``metrics.json`` (:func:`summarize_patches`).
        rows: the rows of :class:`PatchScores`.
    """
    write_report(out, result, PATCH_FIELDS, rows)
    with atomic_output(out / "table.md") as tmp:
        tmp.write_text(format_table(result, caption=_caption(result)))


def patch_figures(
    out: Path,
    result: JSONObject,
    scores: PatchScores,
    dataset: SEN12MSCR,
    models: Mapping[str, nn.Module],
    device: torch.device,
    *,
    examples: int,
    stretch: str | tuple[float, float],
    cloud_threshold: float,
) -> None:
    """Draw ``band_nrmse.png`` (paper Fig. 11) and ``examples.png`` (Figs. 6-8) into ``out``.

    The bars are the models' mean per-band nRMSE (percent); the example rows are patches picked
    by their cloud fraction among the scored ones and predicted again by every model but
    ``identity`` (no example grid without such a model or with ``examples=0``).

    Args:
        out: the report folder.
        result: the content of ``metrics.json`` (:func:`summarize_patches`).
        scores: the scored patches (:func:`score_patches`).
        dataset: the split that was scored.
        models: model name -> network.
        device: where the models run.
        examples: rows of the example grid.
        stretch: RGB stretch of the example grid in DN, or ``"percentile"``.
        cloud_threshold: threshold of the cloud detector (the examples' masks).
    """
    band_nrmse_plot(
        {n: np.array([np.nan if v is None else v for v in e["band_nrmse"]])
         for n, e in result["models"].items()},
        out / "band_nrmse.png",
        title=f"Per-band nRMSE, mean over {result['images']} {result['split']} images "
        "(cf. paper Fig. 11)",
    )  # fmt: skip
    figure_models = [n for n in models if n != IDENTITY]
    chosen = pick_examples([i["cloud_fraction"] for i in scores.images], examples)
    if chosen and figure_models:
        grid = _example_rows(dataset, [scores.images[c] for c in chosen], models, figure_models,
                             device, cloud_threshold)  # fmt: skip
        example_grid(grid, figure_models, out / "examples.png", stretch=stretch)


def _example_rows(
    dataset: SEN12MSCR,
    infos: Sequence[PatchImage],
    models: Mapping[str, nn.Module],
    figure_models: list[str],
    dev: torch.device,
    threshold: float,
) -> list[dict[str, object]]:
    """The rows of the example grid: DN images, SAR in dB, the mask and every prediction."""
    rows: list[dict[str, object]] = []
    with torch.inference_mode():
        for info in infos:
            sample = dataset[info["index"]]
            if sample is None:  # it was read when scored
                raise DSen2CRError(f"patch {info['index']} of the split can no longer be read")
            optical = sample["optical"][None].to(dev).float()
            sar = sample["sar"][None].to(dev).float()
            mask = _mask_of(optical, threshold)[0]
            preds = {
                name: scaled_to_s2(models[name](optical, sar)[0]).float().cpu().numpy()
                for name in figure_models
            }
            rows.append(
                {
                    "cloudy": scaled_to_s2(sample["optical"]).numpy(),
                    "target": scaled_to_s2(sample["target"]).numpy(),
                    "sar": scaled_to_s1(sample["sar"]).numpy(),
                    "mask": mask.cpu().numpy(),
                    "predictions": preds,
                    "label": f"{info['season']} ROI {info['roi']} p{info['patch']}",
                }
            )
    return rows


# --------------------------------------------------------------------------- table
def _caption(result: JSONObject) -> str:
    name = result.get("protocol", {}).get("name", DEFAULT_PROTOCOL)
    crop = result.get("protocol", {}).get("crop")
    what = "whole patches" if crop is None else f"patches (centre {crop} x {crop} crop)"
    return (
        f"Metric protocol `{name}` (`dsen2cr evaluate --list-protocols`). "
        f"Means over {result['images']} {what} of the `{result['split']}` split of "
        f"`{result['data']}`. Target: prediction vs. cloud-free target; Reprod: prediction vs. "
        "cloudy input on clear pixels; Recon: prediction vs. target under clouds and shadows "
        f"(mask: cloud detector, threshold {result.get('cloud_threshold', DEFAULT_THRESHOLD)}). MAE and RMSE "
        "in TOA reflectance. `identity` returns the cloudy input."
    )


def format_table(
    result: JSONObject, *more: JSONObject, caption: str | None = None
) -> str:
    """Markdown table of mean metrics laid out like the paper's Table 1 (rows = models).

    Columns and precision are :data:`dsen2cr.metrics.TABLE1_COLUMNS`: MAE Target / Reprod /
    Recon and RMSE Target (TOA reflectance), PSNR (dB), SAM Target / Reprod / Recon (degrees),
    SSIM. Undefined values print as ``n/a``.

    Args:
        result: the ``metrics.json`` content (``{"models": {name: {metric: value}},
            "protocol": {...}}``); a result without ``"protocol"`` is of the default one.
        *more: further results whose models become further rows (a model name seen before
            gets the result's position as suffix, ``name (2)``).
        caption: text placed under the table.

    Returns:
        Markdown text ending with a newline.

    Raises:
        MixedProtocolsError: the results were computed under different metric protocols.
    """
    rows: dict[str, dict[str, object]] = {}
    for i, res in enumerate((result, *more), start=1):
        proto = res.get("protocol", DEFAULT_PROTOCOL)
        for name, entry in res["models"].items():
            row: dict[str, object] = {k: (math.nan if v is None else v) for k, v in entry.items()
                                      if isinstance(v, (int, float)) or v is None}  # fmt: skip
            row["protocol"] = proto
            rows[name if name not in rows else f"{name} ({i})"] = row
    text = format_table1(rows) + "\n"
    if caption:
        text += f"\n{caption}\n"
    return text
