"""Synthetic SEN12MS-CR: layout, georeferencing, content, clouds and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from dsen2cr import data as ds
from dsen2cr.data import synthetic as syn


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return syn.generate_dataset(tmp_path_factory.mktemp("syn"), rois=4, patches=5, size=32,
                                seed=1, progress=False)  # fmt: skip


def test_layout_dtypes_georeferencing(synth_root: Path) -> None:
    plan = syn.roi_plan(4)
    assert [split for _, _, split in plan] == ["test", "val", "train", "test"]
    assert len({season for season, _, _ in syn.roi_plan(8)}) == 4
    for season, roi, split in syn.roi_plan(16):
        assert ds.default_split(season, roi) == split
    for season, roi, _ in plan:
        full = ds.SEASONS[season]
        for p in range(1, 6):
            for mod, count, dtype in (("s1", 2, "float32"), ("s2", 13, "uint16"),
                                      ("s2_cloudy", 13, "uint16")):  # fmt: skip
                f = synth_root / full / f"{full}_{mod}" / f"{mod}_{roi}" / f"{full}_{mod}_{roi}_p{p}.tif"
                with rasterio.open(f) as src:
                    assert (src.count, src.dtypes[0], src.width, src.height) == (count, dtype, 32, 32)
                    assert src.crs.to_epsg() // 100 == 326
                    assert src.res == (10.0, 10.0)
    index = ds.build_index(synth_root)
    assert len(index.triplets) == 20 and not index.incomplete
    assert {k: sum(v.values()) for k, v in index.counts().items()} == {
        "test": 10, "val": 5, "train": 5
    }
    # patches of one ROI lie on one grid with stride size/2 and agree where they overlap
    season, roi, _ = plan[0]
    full = ds.SEASONS[season]
    folder = synth_root / full / f"{full}_s2_cloudy" / f"s2_cloudy_{roi}"
    with rasterio.open(folder / f"{full}_s2_cloudy_{roi}_p1.tif") as a, \
            rasterio.open(folder / f"{full}_s2_cloudy_{roi}_p2.tif") as b:  # fmt: skip
        assert b.transform.c - a.transform.c == 160.0 and b.transform.f == a.transform.f
        assert a.crs == b.crs
        assert np.array_equal(a.read()[:, :, 16:], b.read()[:, :, :16])


def test_scene_content_band_order_and_sar(synth_root: Path) -> None:
    scene = syn.make_scene(160, 200, seed=4, cloud_cover=0.0)
    assert scene["s2"].shape == (13, 160, 200) and scene["s2"].dtype == np.uint16
    assert scene["s1"].shape == (2, 160, 200) and scene["s1"].dtype == np.float32
    assert scene["landcover"].dtype == np.uint8 and scene["cloud"].dtype == bool
    assert not scene["cloud"].any() and not scene["shadow"].any()
    lc, s2, s1 = scene["landcover"], scene["s2"].astype(float) / 1e4, scene["s1"]
    present = [c for c in range(len(syn.LANDCOVER_CLASSES)) if (lc == c).sum() > 50]
    assert len(present) >= 4
    b4, b8, b11, b10 = s2[3], s2[7], s2[11], s2[10]
    veg = np.isin(lc, (syn.FOREST, syn.CROPLAND))
    assert np.median(b8[veg]) > 0.2 and np.median(b8[veg]) > 3 * np.median(b4[veg])  # red edge
    assert np.median(b10) < 0.005  # cirrus band dark over clear land
    from scipy import ndimage

    water = ndimage.binary_erosion(lc == syn.WATER, iterations=3)  # away from the shore
    if water.sum() > 30:
        assert np.median(b8[water]) < 0.05 and np.median(b11[water]) < 0.03
        assert np.median(s1[0][water]) < -16
    # SAR follows the land cover: class means explain most of the (smoothed) VV variance
    vv = ndimage.uniform_filter(s1[0], 5)
    means = np.array([vv[lc == c].mean() if (lc == c).any() else 0 for c in range(7)])
    eta2 = 1 - ((vv - means[lc]) ** 2).mean() / vv.var()
    assert eta2 > 0.5
    # same seed, same scene; works for sizes that are not multiples of anything
    again = syn.make_scene(160, 200, seed=4, cloud_cover=0.0)
    assert np.array_equal(again["s2_cloudy"], scene["s2_cloudy"])
    odd = syn.make_scene(33, 47, seed=2)
    assert odd["s2_cloudy"].shape == (13, 33, 47) and odd["cloud"].shape == (33, 47)


def test_clouds_coverage_spectra_and_detector() -> None:
    from dsen2cr.cloudmask import cloud_shadow_mask

    covers = np.linspace(0.0, 1.0, 9)
    truth, detected = [], []
    for i, cover in enumerate(covers):
        scene = syn.make_scene(96, 96, seed=20 + i, cloud_cover=float(cover))
        assert abs(scene["cloud"].mean() - cover) < 0.01
        mask = cloud_shadow_mask(scene["s2_cloudy"])
        truth.append(scene["cloud"].mean())
        detected.append((mask == 1).mean())
        cloud = scene["cloud"] & (scene["cloud_opacity"] > 0.9)
        if cloud.sum() > 100:  # thick clouds: bright and flat, high B1 and B10
            r = scene["s2_cloudy"][:, cloud].astype(float) / 1e4
            assert np.median(r[1]) > 0.35 and np.median(r[0]) > 0.35 and np.median(r[10]) > 0.008
        if scene["shadow"].sum() > 50:  # shadows darken the ground (compare with the target)
            ratio = scene["s2_cloudy"][7].astype(float) / np.maximum(scene["s2"][7], 1)
            assert np.median(ratio[scene["shadow"]]) < 0.8
    assert detected[0] < 0.02 and detected[-1] > 0.98
    assert np.corrcoef(truth, detected)[0, 1] > 0.9
    # coverage spreads over the patches of a dataset: clear and overcast patches both occur
    fractions = []
    for roi in range(3):
        scene = syn.make_scene(384, 384, seed=roi, cloud_cover=[0.15, 0.5, 0.85][roi])
        for y in range(0, 257, 128):
            for x in range(0, 257, 128):
                fractions.append(scene["cloud"][y : y + 128, x : x + 128].mean())
    assert min(fractions) < 0.05 and max(fractions) > 0.95


def test_phenology_changes_are_small() -> None:
    scene = syn.make_scene(128, 128, seed=9, cloud_cover=0.0)
    a, b = scene["s2"].astype(float), scene["s2_cloudy"].astype(float)
    rel = np.abs(a - b) / np.maximum(a, 100)
    assert 0.0 < np.median(rel) < 0.1  # the two dates differ, but only a little


def test_cli_synth_data_and_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dsen2cr.cli import main

    out = tmp_path / "s"
    png = tmp_path / "preview.png"
    assert main(["synth-data", str(out), "--rois", "2", "--patches", "2", "--size", "64",
                 "--seed", "3", "--preview", str(png)]) == 0  # fmt: skip
    assert "wrote 4 triplets" in capsys.readouterr().out
    assert len(list(out.rglob("*.tif"))) == 12
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["synth-data", str(out), "--rois", "0"]) == 2
