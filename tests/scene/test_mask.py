"""``dsen2cr mask``: the scene mask on the tiled path - a COG, bounded memory, nodata-aware, and
pixel for pixel the mask ``predict --mask-out`` writes."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from dsen2cr.cli import main
from dsen2cr.cloudmask import ShadowStats, cloud_shadow_mask, shadow_statistics
from dsen2cr.data.synthetic import make_scene
from dsen2cr.io import no_georef_warning
from dsen2cr.scene import PredictOptions, mask_scene
from tests.helpers import tiny_model


@pytest.fixture(scope="module")
def scene():
    return make_scene(150, 130, seed=7, cloud_cover=0.4)


def test_cli_mask_writes_a_georeferenced_int8_cog(tmp_path, scene, write_raster, capsys) -> None:
    img = scene["s2_cloudy"]
    src, out = write_raster(tmp_path / "s2.tif", img), tmp_path / "sub" / "mask.tif"
    assert main(["mask", str(src), str(out), "--threshold", "0.3", "--tile", "32", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["width"] == 130 and info["height"] == 150 and info["out"] == str(out)
    assert info["tiles"] == 25 and info["nodata_fraction"] == 0
    total = info["cloud_fraction"] + info["shadow_fraction"] + info["clear_fraction"]
    assert total == pytest.approx(1.0)
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert b.count == 1 and b.dtypes[0] == "int8" and b.nodata == -128
        assert b.crs == a.crs and b.transform == a.transform
        assert b.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert b.compression.name.upper() == "DEFLATE"
        assert b.tags()["DSEN2CR_THRESHOLD"] == "0.3"
        written = b.read(1)
    # tiles of 32 px with the scene's statistics give exactly the whole-image mask
    expected = cloud_shadow_mask(img, threshold=0.3)
    np.testing.assert_array_equal(written, expected)
    assert info["cloud_fraction"] == pytest.approx(float((expected == 1).mean()))
    assert sorted(p.name for p in out.parent.iterdir()) == ["mask.tif"]  # no staging left


def test_mask_without_georeferencing(tmp_path, scene, write_raster) -> None:
    img = scene["s2_cloudy"][:, :40, :30]
    src = write_raster(tmp_path / "plain.tif", img, crs=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotGeoreferencedWarning)
        info = mask_scene(src, tmp_path / "mask.tif", options=PredictOptions(progress=False))
    assert info["width"] == 30 and info["crs"] is None
    with no_georef_warning(), rasterio.open(tmp_path / "mask.tif") as b:
        assert b.crs is None
        np.testing.assert_array_equal(b.read(1), cloud_shadow_mask(img))


def test_mask_equals_predict_mask_out_with_a_nodata_border(tmp_path, scene, write_raster) -> None:
    """One question, one answer: the same pixels, nodata and statistics over valid pixels."""
    img = scene["s2_cloudy"].copy()
    rows, cols = np.mgrid[0:150, 0:130]
    border = (cols < 9) | (rows + cols < 60) | (rows > 140)  # an S2 tile's nodata edge
    img[:, border] = 0
    src = write_raster(tmp_path / "s2.tif", img)
    s1 = write_raster(tmp_path / "s1.tif", scene["s1"])
    opts = PredictOptions(tile=48, device="cpu", progress=False)
    info = mask_scene(src, tmp_path / "mask.tif", options=opts)
    assert info["nodata_fraction"] == pytest.approx(float(border.mean()))
    assert main(["predict", "--s2", str(src), "--s1", str(s1), "--weights",
                 str(tiny_model().save_pretrained(tmp_path / "w.safetensors")),
                 "--out", str(tmp_path / "pred.tif"), "--mask-out", str(tmp_path / "pm.tif"),
                 "--tile", "64", "--device", "cpu", "--quiet"]) == 0  # fmt: skip
    with rasterio.open(tmp_path / "mask.tif") as a, rasterio.open(tmp_path / "pm.tif") as b:
        m, pm = a.read(1), b.read(1)
        assert a.profile == b.profile and a.tags() == b.tags()
    np.testing.assert_array_equal(m, pm)
    assert (m[border] == -128).all() and np.isin(m[~border], (-1, 0, 1)).all()
    # the statistics come from valid pixels only (a border of zeros would lower the minima)
    stats = shadow_statistics(img[:, ~border][:, None, :])
    ref = cloud_shadow_mask(img, shadow_stats=ShadowStats(**vars(stats)))
    np.testing.assert_array_equal(m[~border], ref[~border])
    assert not np.array_equal(cloud_shadow_mask(img)[~border], ref[~border])


def test_cli_mask_wrong_band_count(tmp_path, write_raster, capsys) -> None:
    src, out = write_raster(tmp_path / "twelve.tif", np.zeros((12, 8, 8), np.uint16)), tmp_path / "m.tif"
    assert main(["mask", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "12 band(s), expected 13" in err and "twelve.tif" in err
    assert sorted(tmp_path.iterdir()) == [src]
