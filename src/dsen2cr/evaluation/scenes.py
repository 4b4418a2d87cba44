"""Evaluation on large scenes (paper Section 4.4, Figs. 9, 10 and 12).

The paper also evaluates its model on "large scenes concatenated from patches belonging to the
hold-out test dataset". :func:`evaluate_scenes` does that for every (season, ROI) of a split:

1. mosaics the ROI's cloudy input, cloud-free target and SAR patches by their georeferencing
   (:func:`dsen2cr.data.mosaic.mosaic_split`) into ``OUT/mosaics/``;
2. computes the scene's cloud/shadow mask with ``dsen2cr mask``'s tiled path
   (:func:`dsen2cr.scene.mask_scene`: the same detector and threshold as the patch evaluation,
   but its shadow test takes statistics over the whole scene, so the scene mask can differ from
   the per-patch masks);
3. predicts the scene with every tileable model through the exact tiled predictor of
   ``dsen2cr predict`` (:func:`dsen2cr.scene.predict`) into ``OUT/<scene>_<model>.tif`` (COG,
   uint16 DN). The ``identity`` baseline is the cloudy mosaic itself; models that cannot be
   tiled exactly (the pix2pix U-Net) are skipped with their reason;
4. scores the written files strip by strip (:class:`dsen2cr.metrics.SceneScore`) on the pixels
   that the target, the input, the mask and every prediction cover (Sentinel-2 validity:
   :func:`dsen2cr.validity.s2_valid`), with the metrics and mask rule of the patch evaluation
   under the same protocol.

It writes ``OUT/metrics.json`` (``{"scenes": {scene: {model: {"target_mae": ...,
"band_nrmse": [...], ...}}}, "protocol": ..., "skipped": {...}, "mosaics": {...}}``),
``OUT/metrics.csv`` (one row per scene and model; both by
:func:`dsen2cr.evaluation.report.write_report`), and for a spread of cloud covers
``scene_examples.png`` (Fig. 9), ``scene_spectra.png`` (Fig. 10: per-channel nRMSE and the
central pixel's spectra) and ``scene_60m.png`` (Fig. 12: B1, B9, B10).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.windows import Window
from torch import nn
from tqdm import tqdm

from dsen2cr.cloudmask import DEFAULT_THRESHOLD
from dsen2cr.data.mosaic import MOSAIC_SUFFIX, MosaicResult, mosaic_split
from dsen2cr.evaluation.report import IDENTITY, UNITS, JSONObject, json_value, write_report
from dsen2cr.figures import (
    RGB_STRETCH_DN,
    pick_examples,
    scene_60m_figure,
    scene_examples_figure,
    scene_spectra_figure,
)
from dsen2cr.io import guard_outputs
from dsen2cr.metrics import METRIC_KEYS, Protocol, SceneScore, get_protocol
from dsen2cr.performance import resolve_device
from dsen2cr.scaling import S2_BANDS, dn_to_reflectance
from dsen2cr.scene import LoadedNetwork, PredictOptions, load_network, mask_scene, predict
from dsen2cr.scene.writers import MASK_NODATA
from dsen2cr.validity import s2_valid

__all__ = ["SCENE_FIELDS", "STRIP_ROWS", "SceneSpectra", "evaluate_scenes", "score_scene"]
STRIP_ROWS = 128
"""Rows scored per strip (plus the SSIM halo)."""
FIGURE_SIDE = 512
"""Longest side (pixels) of the decimated scenes in the figures."""


def _read(src: DatasetReader, rows: tuple[int, int]) -> np.ndarray:
    return np.asarray(src.read(window=Window(0, rows[0], src.width, rows[1] - rows[0])))


def score_scene(
    predictions: Mapping[str, str | os.PathLike[str]],
    target: str | os.PathLike[str],
    cloudy: str | os.PathLike[str],
    mask: str | os.PathLike[str],
    protocol: str | Protocol | None = None,
) -> dict[str, JSONObject]:
    """Score predicted scenes against a target scene on their common covered pixels.

    A pixel is covered when the target, the cloudy input and every prediction hold data there
    (:func:`dsen2cr.validity.s2_valid` with each file's declared nodata) and the mask is not
    nodata. The files are read strip by strip (:data:`STRIP_ROWS` rows plus the SSIM halo).

    Args:
        predictions: model name -> predicted 13-band uint16 DN GeoTIFF (0 = nodata), on the grid
            of ``target``.
        target: the cloud-free target mosaic (13-band DN, 0 = nodata).
        cloudy: the cloudy input mosaic (13-band DN, 0 = nodata).
        mask: the int8 cloud (1) / shadow (-1) / clear (0) mask, -128 = nodata.
        protocol: the metric protocol (see :class:`dsen2cr.metrics.SceneScore`).

    Returns:
        ``{model: metrics}``: :meth:`SceneScore.compute` (TOA reflectance, dB, degrees) plus
        ``"central_pixel"`` (``[row, col]``, the covered pixel nearest the scene centre) and
        ``"spectrum"`` (its 13 reflectances), and ``"_input"`` / ``"_target"`` entries holding
        that pixel's spectra.

    Raises:
        ValueError: a file is not of the target's size.
    """
    proto = get_protocol(protocol)
    names = list(predictions)
    scores = {n: SceneScore(protocol=proto) for n in names}
    files = {"_target": target, "_cloudy": cloudy, "_mask": mask, **predictions}
    srcs = {k: rasterio.open(Path(v)) for k, v in files.items()}
    try:
        central = _score_strips(srcs, files, scores, proto)
    finally:
        for src in srcs.values():
            src.close()
    out: dict[str, JSONObject] = {}
    for n in names:
        res = scores[n].compute()
        res["central_pixel"] = [central.best[1], central.best[2]] if central.best else None
        res["spectrum"] = central.spectra.get(n)
        out[n] = res
    out["_input"] = {"spectrum": central.spectra.get("_cloudy")}
    out["_target"] = {"spectrum": central.spectra.get("_target")}
    return out


@dataclass
class _CentralPixel:
    """The covered pixel nearest the scene centre among the strips seen so far.

    Attributes:
        centre: the scene centre (row, col), in pixels.
        best: (squared distance, row, col) of the pixel, None before a covered one is seen.
        spectra: file key -> that pixel's 13 values / 10000 (TOA reflectance).
    """

    centre: tuple[float, float]
    best: tuple[float, int, int] | None = None
    spectra: dict[str, list[float]] = field(default_factory=dict)

    def update(self, own: np.ndarray, r0: int, a: int, data: Mapping[str, np.ndarray]) -> None:
        """Consider the covered pixels ``own`` of the strip from row ``r0`` (read from ``a``)."""
        if not own.any():
            return
        rr, cc = np.nonzero(own)
        d = (rr + r0 - self.centre[0]) ** 2 + (cc - self.centre[1]) ** 2
        i = int(np.argmin(d))
        if self.best is None or d[i] < self.best[0]:
            row, col = int(rr[i]) + r0, int(cc[i])
            self.best = (float(d[i]), row, col)
            self.spectra = {k: (data[k][:, row - a, col] / 1e4).tolist() for k in data
                            if k != "_mask"}  # fmt: skip


def _covered(data: Mapping[str, np.ndarray], nodata: Mapping[str, float | None]) -> np.ndarray:
    """(H, W) bool: the pixels every S2 file of ``data`` holds and the mask does not mark nodata."""
    covered: np.ndarray = data["_mask"][0] != MASK_NODATA
    for key, values in data.items():
        if key != "_mask":
            covered &= s2_valid(values, nodata[key])
    return covered


def _score_strips(
    srcs: Mapping[str, DatasetReader],
    files: Mapping[str, str | os.PathLike[str]],
    scores: Mapping[str, SceneScore],
    proto: Protocol,
) -> _CentralPixel:
    """Feed every strip of the open files into ``scores``; find the central covered pixel."""
    halo_top = proto.ssim_window // 2
    halo_bottom = proto.ssim_window - 1 - halo_top
    h, w = srcs["_target"].height, srcs["_target"].width
    for k, src in srcs.items():
        if (src.height, src.width) != (h, w):
            raise ValueError(f"{files[k]} is {src.width} x {src.height}, the target {w} x {h}")
    nodata = {k: src.nodata for k, src in srcs.items()}
    central = _CentralPixel(((h - 1) / 2.0, (w - 1) / 2.0))
    for r0 in range(0, h, STRIP_ROWS):
        r1 = min(h, r0 + STRIP_ROWS)
        a, b = max(0, r0 - halo_top), min(h, r1 + halo_bottom)
        data = {k: _read(src, (a, b)) for k, src in srcs.items()}
        covered = _covered(data, nodata)
        cloud = (data["_mask"][0] == 1) | (data["_mask"][0] == -1)
        target_r = dn_to_reflectance(data["_target"].astype(np.float64))
        cloudy_r = dn_to_reflectance(data["_cloudy"].astype(np.float64))
        for n, score in scores.items():
            pred_r = dn_to_reflectance(data[n].astype(np.float64))
            score.update(pred_r, target_r, cloudy_r, cloud, covered, owned=(r0 - a, r1 - a))
        central.update(covered[r0 - a : r1 - a], r0, a, data)
    return central


def _decimated(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        f = max(1, math.ceil(max(src.height, src.width) / FIGURE_SIDE))
        shape = (src.count, max(1, src.height // f), max(1, src.width // f))
        return np.asarray(src.read(out_shape=shape, resampling=Resampling.nearest))


class SceneSpectra(TypedDict):
    """The central pixel's spectra of a scene's inputs (13 TOA reflectances, None if uncovered)."""

    input: list[float] | None
    target: list[float] | None


def evaluate_scenes(
    models: Mapping[str, nn.Module],
    weights: Mapping[str, str | os.PathLike[str]],
    data_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    split: str = "test",
    split_file: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    protocol: str | Protocol | None = None,
    cloud_threshold: float = DEFAULT_THRESHOLD,
    examples: int = 4,
    stretch: str | tuple[float, float] = RGB_STRETCH_DN,
    progress: bool = True,
    overwrite: bool = False,
    tile: int = 512,
) -> JSONObject:
    """Mosaic, predict and score every (season, ROI) scene of a split (see the module docs).

    The steps: the mosaics (:func:`dsen2cr.data.mosaic.mosaic_split`); per scene its mask, the
    tiled predictions and :func:`score_scene`; the summary; the report
    (:func:`dsen2cr.evaluation.report.write_report`) and the figures.

    Args:
        models: model name -> loaded network (``identity`` included or not); a model without
            a finite receptive field is skipped with its reason.
        weights: model name -> its weight file (what ``dsen2cr predict`` loads and records in
            the output's metadata), for every model but ``identity``.
        data_root: SEN12MS-CR root folder.
        out_dir: output folder (``OUT/scenes`` of ``dsen2cr evaluate``).
        split: the split whose ROIs are mosaicked.
        split_file: optional split definition.
        device: evaluation device (default CUDA when available).
        protocol: the metric protocol.
        cloud_threshold: threshold of the cloud detector (the scene mask).
        examples: scenes shown in the figures, spread over cloud cover.
        stretch: RGB stretch of the figures (DN, or ``"percentile"``).
        progress: show a progress bar over the scenes.
        overwrite: write into a folder that is not empty.
        tile: core tile size of the tiled predictor (pixels).

    Returns:
        The content of ``OUT/metrics.json``.
    """
    out = guard_outputs({"out": out_dir}, [data_root], overwrite=overwrite, folders=["out"])["out"]
    proto = get_protocol(protocol)
    dev = resolve_device(device)
    options = PredictOptions(tile=tile, device=str(dev), threshold=cloud_threshold,
                             progress=False)  # fmt: skip
    mosaics = mosaic_split(data_root, out / "mosaics", split=split, split_file=split_file,
                           overwrite=True, progress=False)  # fmt: skip
    tiled, skipped = _tileable(models)
    scored = [*tiled, *([IDENTITY] if IDENTITY in models else [])]
    # each network is prepared (device, memory format) and hashed once for every scene
    networks = {name: load_network(models[name], dev, path=weights[name]) for name in tiled}
    per_scene, spectra = _predict_and_score(list(mosaics), out, networks, IDENTITY in scored,
                                            options, proto, f"scenes {split}", progress)  # fmt: skip
    summary = _scene_summary(per_scene, spectra, mosaics, proto, split=split, data=data_root,
                             models=scored, skipped=skipped, cloud_threshold=cloud_threshold)  # fmt: skip
    write_report(out, summary, SCENE_FIELDS, _scene_rows(per_scene))
    if tiled and per_scene:
        _figures(out, out / "mosaics", per_scene, spectra, tiled, examples, stretch)
    return summary


def _tileable(models: Mapping[str, nn.Module]) -> tuple[list[str], dict[str, str]]:
    """The models (but ``identity``) that can predict a scene tile by tile, and the reason each
    other one is skipped."""
    tiled: list[str] = []
    skipped: dict[str, str] = {}
    for name, net in models.items():
        if name == IDENTITY:
            continue
        if hasattr(net, "receptive_field_radius"):
            tiled.append(name)
        else:
            skipped[name] = (f"a {type(net).__name__} has no finite receptive field, so a scene "
                             "cannot be predicted exactly tile by tile")  # fmt: skip
    return tiled, skipped


def _predict_and_score(
    scenes: list[str],
    out: Path,
    networks: Mapping[str, LoadedNetwork],
    identity: bool,
    options: PredictOptions,
    proto: Protocol,
    desc: str,
    progress: bool,
) -> tuple[dict[str, dict[str, JSONObject]], dict[str, SceneSpectra]]:
    """Mask, predict (into ``out/<scene>_<model>.tif``) and score every mosaicked scene.

    Returns:
        scene -> :func:`score_scene`'s metrics per model, and scene -> the central pixel's
        input and target spectra.
    """
    mosaics_dir = out / "mosaics"
    per_scene: dict[str, dict[str, JSONObject]] = {}
    spectra: dict[str, SceneSpectra] = {}
    bar = tqdm(scenes, desc=desc, unit="scene", disable=None if progress else True)
    for scene in bar:
        files = {m: mosaics_dir / f"{scene}{MOSAIC_SUFFIX[m]}" for m in MOSAIC_SUFFIX}
        mask = mosaics_dir / f"{scene}_mask.tif"
        mask_scene(files["s2_cloudy"], mask, options=options, overwrite=True)
        preds: dict[str, Path] = {}
        for name, net in networks.items():
            preds[name] = out / f"{scene}_{name}.tif"
            s1 = files["s1"] if net.uses_sar else None
            predict(files["s2_cloudy"], net, preds[name], s1, options=options, overwrite=True)
        if identity:
            preds[IDENTITY] = files["s2_cloudy"]
        result = score_scene(preds, files["s2"], files["s2_cloudy"], mask, proto)
        spectra[scene] = {"input": result.pop("_input")["spectrum"],
                          "target": result.pop("_target")["spectrum"]}  # fmt: skip
        per_scene[scene] = result
    bar.close()
    return per_scene, spectra


def _scene_summary(
    per_scene: Mapping[str, Mapping[str, JSONObject]],
    spectra: Mapping[str, SceneSpectra],
    mosaics: Mapping[str, Mapping[str, MosaicResult]],
    proto: Protocol,
    *,
    split: str,
    data: str | os.PathLike[str],
    models: list[str],
    skipped: dict[str, str],
    cloud_threshold: float,
) -> JSONObject:
    """The content of the scene ``metrics.json`` (JSON values; undefined metrics are None)."""
    scenes_json = {s: {n: {k: json_value(v) for k, v in r.items()} for n, r in res.items()}
                   for s, res in per_scene.items()}  # fmt: skip
    return {
        "scenes": scenes_json,
        "spectra": dict(spectra),
        "protocol": proto.to_dict(),
        "split": split,
        "data": str(data),
        "models": models,
        "skipped": skipped,
        "cloud_threshold": cloud_threshold,
        "mosaics": {s: {m: r.to_dict() for m, r in res.items()} for s, res in mosaics.items()},
        "units": UNITS,
        "notes": (
            "scored on the pixels every input and prediction covers; the scene mask takes its "
            "shadow statistics over the whole scene, so it can differ from the per-patch masks"
        ),
    }


SCENE_FIELDS = ("scene", "model", "covered_pixels", "cloud_fraction", *METRIC_KEYS,
                *(f"nrmse_{b}" for b in S2_BANDS))  # fmt: skip
"""The columns of the scene ``metrics.csv``."""


def _scene_rows(
    per_scene: Mapping[str, Mapping[str, JSONObject]],
) -> Iterator[dict[str, object]]:
    """One ``metrics.csv`` row per scene and model (:data:`SCENE_FIELDS`)."""
    for scene, res in per_scene.items():
        for name, r in res.items():
            row: dict[str, object] = {"scene": scene, "model": name,
                                      "covered_pixels": r["covered_pixels"],
                                      "cloud_fraction": r["cloud_fraction"]}  # fmt: skip
            row.update({k: r[k] for k in METRIC_KEYS})
            row.update(zip((f"nrmse_{b}" for b in S2_BANDS), r["band_nrmse"], strict=False))
            yield row


def _figures(
    out: Path,
    mosaics_dir: Path,
    per_scene: Mapping[str, Mapping[str, JSONObject]],
    spectra: Mapping[str, SceneSpectra],
    models: list[str],
    examples: int,
    stretch: str | tuple[float, float],
) -> None:
    """Figs. 9, 10 and 12 for scenes spread over cloud cover, drawn from the scored scenes.

    The scenes are picked by the first model's cloud fraction; the pictures are the decimated
    mosaics and predictions (DN), the spectra those of the central pixel (reflectance).
    """
    names = list(per_scene)
    cover = [per_scene[s][models[0]]["cloud_fraction"] for s in names]
    cover = [c if math.isfinite(c) else 0.0 for c in cover]
    chosen = [names[i] for i in pick_examples(cover, max(1, examples))]
    pictures: list[dict[str, object]] = []
    panels: list[dict[str, object]] = []
    for scene in chosen:
        label = f"{scene}: {100 * per_scene[scene][models[0]]['cloud_fraction']:.0f} % cloud/shadow"
        pictures.append({
            "label": label,
            "cloudy": _decimated(mosaics_dir / f"{scene}{MOSAIC_SUFFIX['s2_cloudy']}"),
            "target": _decimated(mosaics_dir / f"{scene}{MOSAIC_SUFFIX['s2']}"),
            "predictions": {m: _decimated(out / f"{scene}_{m}.tif") for m in models},
        })  # fmt: skip
        res = per_scene[scene]
        nan = [math.nan] * len(S2_BANDS)
        panels.append({
            "label": scene,
            "pixel": tuple(res[models[0]]["central_pixel"] or ("?", "?")),
            "band_nrmse": {m: res[m]["band_nrmse"] for m in models},
            "spectra": {"input": spectra[scene]["input"] or nan,
                        "target": spectra[scene]["target"] or nan,
                        **{m: res[m]["spectrum"] or nan for m in models}},
        })  # fmt: skip
    scene_examples_figure(pictures, models, out / "scene_examples.png", stretch=stretch)
    scene_spectra_figure(panels, models, out / "scene_spectra.png")
    scene_60m_figure(pictures[:3], models[0], out / "scene_60m.png")
