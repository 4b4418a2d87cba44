"""evaluate --scenes: mosaics, tiled predictions, scene metrics recomputed from the files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from skimage.metrics import structural_similarity

from dsen2cr.cli import main
from dsen2cr.data.synthetic import generate_dataset
from dsen2cr.evaluation import IDENTITY, evaluate
from dsen2cr.metrics import METRIC_KEYS
from dsen2cr.scene import PredictOptions, mask_scene, predict

SCENE_FILES = ("scene_examples.png", "scene_spectra.png", "scene_60m.png", "metrics.json",
               "metrics.csv")  # fmt: skip


@pytest.fixture(scope="module")
def scene_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 5 patches of 32 px on a 2 x 3 grid: every scene has a 16 x 16 corner no patch covers
    return generate_dataset(tmp_path_factory.mktemp("scenes_data"), rois=8, patches=5, size=32,
                            progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def scene_report(tmp_path_factory: pytest.TempPathFactory, scene_root: Path,
                 weights: dict[str, Path]):  # fmt: skip
    out = tmp_path_factory.mktemp("scene_eval")
    result = evaluate([weights["sar"], weights["pix2pix"]], scene_root, out_dir=out,
                      names=["sar", "pix2pix"], examples=2, device="cpu", scenes=True,
                      progress=False, overwrite=True)  # fmt: skip
    return out, result


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def reference_metrics(pred: np.ndarray, target: np.ndarray, cloudy: np.ndarray,
                      mask: np.ndarray, covered: np.ndarray) -> dict[str, float]:  # fmt: skip
    """Scene metrics from plain numpy and scikit-image on the covered pixels."""
    p, t, c = (x.astype(np.float64) / 1e4 for x in (pred, target, cloudy))
    cloud = (mask == 1) | (mask == -1)

    def errors(a, b, region):
        if not region.any():
            return math.nan, math.nan, math.nan
        d = (a - b)[:, region]
        pa, pb = a[:, region].T, b[:, region].T
        cos = (pa * pb).sum(1) / np.linalg.norm(pa, axis=1) / np.linalg.norm(pb, axis=1)
        sam = np.degrees(np.arccos(np.clip(cos, -1, 1))).mean()
        return np.abs(d).mean(), np.sqrt((d**2).mean()), sam

    out = {}
    for name, other, region in (("target", t, covered), ("reprod", c, covered & ~cloud),
                                ("recon", t, covered & cloud)):  # fmt: skip
        out[f"{name}_mae"], out[f"{name}_rmse"], out[f"{name}_sam"] = errors(p, other, region)
    out["target_psnr"] = 20 * math.log10(1 / out["target_rmse"])
    h, w = covered.shape
    full = np.array([[covered[i : i + 11, j : j + 11].all() for j in range(w - 10)]
                     for i in range(h - 10)])  # fmt: skip
    maps = [structural_similarity(p[b], t[b], gaussian_weights=True, sigma=1.5, data_range=1.0,
                                  use_sample_covariance=False, full=True)[1]
            for b in range(13)]  # fmt: skip
    out["target_ssim"] = float(np.mean([m[5:-5, 5:-5][full].mean() for m in maps]))
    return out


def test_scene_outputs(scene_report) -> None:
    out, result = scene_report
    scenes_dir = out / "scenes"
    for name in SCENE_FILES:
        assert (scenes_dir / name).is_file() and (scenes_dir / name).stat().st_size > 0, name
    metrics = json.loads((scenes_dir / "metrics.json").read_text())
    assert len(metrics["scenes"]) == 2 and result["scenes"]["scenes"] == list(metrics["scenes"])
    assert metrics["models"] == ["sar", IDENTITY]
    assert "no finite receptive field" in metrics["skipped"]["pix2pix"]
    assert metrics["protocol"]["name"] == "dsen2cr"
    for scene, models in metrics["scenes"].items():
        assert set(models) == {"sar", IDENTITY}
        for entry in models.values():
            assert set(METRIC_KEYS) <= set(entry) and len(entry["band_nrmse"]) == 13
            assert entry["covered_pixels"] == 64 * 48 - 16 * 16
        with rasterio.open(scenes_dir / f"{scene}_sar.tif") as src:  # a COG on the mosaic grid
            assert src.count == 13 and src.dtypes[0] == "uint16" and src.nodata == 0
            assert (src.width, src.height) == (64, 48)
            assert src.tags()["DSEN2CR_WEIGHTS"] == "tiny_sar.safetensors"
        for suffix in ("_s2_cloudy", "_s2", "_s1", "_mask"):
            assert (scenes_dir / "mosaics" / f"{scene}{suffix}.tif").is_file()
        assert not (scenes_dir / f"{scene}_pix2pix.tif").exists()
    with open(scenes_dir / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {"scene", "model", "target_mae", "nrmse_B10"} <= set(rows[0])


def test_scene_metrics_recomputed_from_the_written_files(scene_report) -> None:
    out, _ = scene_report
    scenes_dir = out / "scenes"
    metrics = json.loads((scenes_dir / "metrics.json").read_text())
    for scene, models in metrics["scenes"].items():
        mos = scenes_dir / "mosaics"
        target, cloudy = read(mos / f"{scene}_s2.tif"), read(mos / f"{scene}_s2_cloudy.tif")
        mask = read(mos / f"{scene}_mask.tif")[0]
        pred = read(scenes_dir / f"{scene}_sar.tif")
        covered = (target != 0).any(0) & (cloudy != 0).any(0) & (pred != 0).any(0)
        covered &= mask != -128
        assert covered.sum() == models["sar"]["covered_pixels"]
        for name, p in (("sar", pred), (IDENTITY, cloudy)):
            want = reference_metrics(p, target, cloudy, mask, covered)
            for k in METRIC_KEYS:
                got = models[name][k]
                if math.isnan(want[k]):
                    assert got is None, (scene, name, k)
                else:
                    # arccos near 1 differs by round-off between the two formulas (1e-7 deg)
                    tol = 1e-6 if k.endswith("_sam") else 1e-12
                    assert got == pytest.approx(want[k], rel=1e-9, abs=tol), (scene, name, k)
        assert models[IDENTITY]["reprod_mae"] == 0.0
        # the central pixel's spectra are those of the files
        r, c = models["sar"]["central_pixel"]
        assert covered[r, c]
        np.testing.assert_allclose(models["sar"]["spectrum"], pred[:, r, c] / 1e4)
        np.testing.assert_allclose(metrics["spectra"][scene]["target"], target[:, r, c] / 1e4)


def test_scene_prediction_is_dsen2cr_predict(scene_report, weights: dict[str, Path],
                                              tmp_path: Path) -> None:  # fmt: skip
    """The same tiled predictor as `dsen2cr predict` on the mosaic, and the same mask."""
    out, _ = scene_report
    scene = next(iter(json.loads((out / "scenes" / "metrics.json").read_text())["scenes"]))
    mos = out / "scenes" / "mosaics"
    opts = PredictOptions(device="cpu", progress=False)
    predict(mos / f"{scene}_s2_cloudy.tif", weights["sar"], tmp_path / "p.tif",
            mos / f"{scene}_s1.tif", options=opts)  # fmt: skip
    np.testing.assert_array_equal(read(tmp_path / "p.tif"), read(out / "scenes" / f"{scene}_sar.tif"))
    mask_scene(mos / f"{scene}_s2_cloudy.tif", tmp_path / "m.tif", options=opts)
    np.testing.assert_array_equal(read(tmp_path / "m.tif"), read(mos / f"{scene}_mask.tif"))


def test_cli_scenes_with_protocol(scene_root: Path, weights: dict[str, Path], tmp_path: Path,
                                  capsys) -> None:  # fmt: skip
    out = tmp_path / "cli"
    argv = ["evaluate", "--weights", str(weights["nosar"]), "--data", str(scene_root),
            "--out", str(out), "--examples", "1", "--num-workers", "0", "--device", "cpu",
            "--scenes", "--protocol", "uncrtaints"]  # fmt: skip
    assert main(argv) == 0
    assert f"scenes in {out}/scenes" in capsys.readouterr().out
    metrics = json.loads((out / "scenes" / "metrics.json").read_text())
    assert metrics["protocol"]["name"] == "uncrtaints"
    assert json.loads((out / "metrics.json").read_text())["scenes"]["models"] == [
        "tiny_nosar", IDENTITY
    ]
