"""The one report writer of metrics.json / metrics.csv, and the scene validity rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dsen2cr.evaluation import score_scene, write_report
from tests.conftest import write_raster_file


def test_write_report_json_and_csv(tmp_path: Path) -> None:
    summary = {"models": {"m": {"psnr": math.inf, "mae": None}}, "n": 2}
    rows = [{"model": "m", "mae": 0.123456789, "psnr": math.inf, "extra": 1},
            {"model": "identity", "mae": math.nan, "psnr": None}]  # fmt: skip
    write_report(tmp_path, summary, ["model", "mae", "psnr", "ssim"], rows)
    assert (tmp_path / "metrics.json").read_text() == json.dumps(summary, indent=2) + "\n"
    assert (tmp_path / "metrics.csv").read_bytes() == (
        b"model,mae,psnr,ssim\r\nm,0.123457,inf,\r\nidentity,,,\r\n"
    )


def test_scene_pixels_without_valid_data_are_not_scored(tmp_path: Path) -> None:
    """A NaN pixel of a float input is nodata (dsen2cr.validity.s2_valid), as a 0 one is."""
    rng = np.random.default_rng(0)
    target = rng.integers(500, 3000, (13, 16, 16)).astype(np.uint16)
    cloudy = target.astype(np.float32) + 100
    cloudy[:, 0, 0] = np.nan
    cloudy[:, 0, 1] = 0
    files = {"target": write_raster_file(tmp_path / "t.tif", target, nodata=0),
             "cloudy": write_raster_file(tmp_path / "c.tif", cloudy, nodata=math.nan),
             "mask": write_raster_file(tmp_path / "m.tif", np.zeros((1, 16, 16), np.int8)),
             "pred": write_raster_file(tmp_path / "p.tif", target, nodata=0)}  # fmt: skip
    result = score_scene({"p": files["pred"]}, files["target"], files["cloudy"], files["mask"])
    assert result["p"]["covered_pixels"] == 16 * 16 - 2
    assert result["p"]["target_mae"] == 0.0 and result["p"]["reprod_mae"] > 0
