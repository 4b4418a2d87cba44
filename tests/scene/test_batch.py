"""Several scenes in one call: outputs named after the inputs, sequential or one process per
device, S1 paired with S2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from dsen2cr.data.synthetic import make_scene
from dsen2cr.errors import DSen2CRError
from dsen2cr.scene import PredictOptions, predict_many
from tests.helpers import tiny_model


@pytest.mark.slow
def test_predict_many_sequential_and_spawned(tmp_path, write_raster):
    scenes = [make_scene(48, 64, seed=s) for s in (1, 2)]
    for i, sc in enumerate(scenes):
        write_raster(tmp_path / f"s2_{i}.tif", sc["s2_cloudy"])
        write_raster(tmp_path / f"s1_{i}.tif", sc["s1"])
    w = tiny_model().save_pretrained(tmp_path / "w.safetensors")
    opts = PredictOptions(device="cpu", tile=32, progress=False)
    seq = predict_many([str(tmp_path / "s2_*.tif")], w, tmp_path / "seq",
                       [str(tmp_path / "s1_*.tif")], options=opts)  # fmt: skip
    assert [Path(r["out"]).name for r in seq] == ["s2_0_dsen2cr.tif", "s2_1_dsen2cr.tif"]
    par = predict_many([str(tmp_path / "s2_*.tif")], w, tmp_path / "par",
                       [str(tmp_path / "s1_*.tif")], devices=["cpu", "cpu"], options=opts)  # fmt: skip
    for a, b in zip(seq, par, strict=True):
        with rasterio.open(a["out"]) as x, rasterio.open(b["out"]) as y:
            np.testing.assert_array_equal(x.read(), y.read())
    with pytest.raises(DSen2CRError, match="S1"):
        predict_many([str(tmp_path / "s2_*.tif")], w, tmp_path / "x", [tmp_path / "s1_0.tif"])
