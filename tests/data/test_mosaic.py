"""Mosaics of SEN12MS-CR patches: placement by georeferencing, nodata, disagreements, errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio

from dsen2cr.cli import main
from dsen2cr.data import SEN12MSCR
from dsen2cr.data.mosaic import MOSAIC_SUFFIX, mosaic_name, mosaic_patches, mosaic_split, plan_grid
from dsen2cr.data.synthetic import generate_dataset
from dsen2cr.errors import DataError, DSen2CRError
from tests.conftest import ORIGIN, UTM, write_raster_file
from tests.helpers import GEOREF, needs_files

SIZE = 16


def cut(scene: np.ndarray, folder: Path, cells: dict[str, tuple[int, int]],
        origin: tuple[float, float] = ORIGIN) -> list[Path]:  # fmt: skip
    """Write the patches ``name -> (row, col)`` of a scene, georeferenced on its 10 m grid."""
    paths = []
    for name, (r, c) in cells.items():
        block = scene[:, r : r + SIZE, c : c + SIZE]
        paths.append(write_raster_file(folder / f"{name}.tif", block,
                                       origin=(origin[0] + 10.0 * c, origin[1] - 10.0 * r)))  # fmt: skip
    return paths


def cut_big(scene: np.ndarray, folder: Path, size: int = 256, hole: tuple[int, int] = (256, 256)) -> list[Path]:
    """Patches of ``size`` side by side, but for the one at ``hole``."""
    h, w = scene.shape[1:]
    paths = []
    for r in range(0, h - size + 1, size):
        for c in range(0, w - size + 1, size):
            if (r, c) == hole:
                continue
            paths.append(write_raster_file(folder / f"p_{r}_{c}.tif", scene[:, r : r + size, c : c + size],
                                           origin=(ORIGIN[0] + 10.0 * c, ORIGIN[1] - 10.0 * r)))  # fmt: skip
    return paths


def read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as src:
        return src.read(), dict(src.profile)


def test_patches_are_placed_by_georeferencing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scene = rng.integers(1, 10000, (13, 3 * SIZE // 2 + SIZE // 2, 2 * SIZE), dtype=np.uint16)
    # patch numbers run against the geography: p1 is the bottom-right one
    cells = {"p1": (16, 16), "p2": (0, 8), "p3": (8, 0), "p4": (0, 0), "p5": (8, 16)}
    paths = cut(scene, tmp_path / "patches", cells, origin=(500000.775, 4000000.25))
    res = mosaic_patches(paths, tmp_path / "m.tif")
    data, prof = read(tmp_path / "m.tif")
    assert (res.width, res.height) == (32, 32) and data.shape == (13, 32, 32)
    covered = np.zeros((32, 32), bool)
    for r, c in cells.values():
        covered[r : r + SIZE, c : c + SIZE] = True
    np.testing.assert_array_equal(data[:, covered], scene[:, :32][:, covered])
    # nothing covers rows 24-32 x cols 0-16 and rows 0-8 x cols 24-32
    assert (data[:, ~covered] == 0).all() and (~covered).sum() == 8 * 16 + 8 * 8
    assert res.covered_fraction == pytest.approx(covered.mean())
    assert not res.disagreements and res.disagreeing_pixels == 0
    assert prof["nodata"] == 0 and prof["crs"] == rasterio.crs.CRS.from_user_input(UTM)
    assert prof["transform"].c == pytest.approx(500000.775)
    assert prof["transform"].f == pytest.approx(4000000.25)
    assert (prof["blockxsize"], prof["blockysize"]) == (512, 512)
    with rasterio.open(tmp_path / "m.tif") as src:  # a Cloud-Optimized GeoTIFF
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"


def test_uncovered_pixels_are_nodata_and_s1_uses_nan(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    s1 = rng.normal(-12, 3, (2, 2 * SIZE, 2 * SIZE)).astype(np.float32)
    paths = cut(s1, tmp_path, {"a": (0, 0), "b": (16, 16)})  # a diagonal pair
    mosaic_patches(paths, tmp_path / "s1.tif")
    data, prof = read(tmp_path / "s1.tif")
    assert np.isnan(prof["nodata"])
    np.testing.assert_array_equal(data[:, :16, :16], s1[:, :16, :16])
    np.testing.assert_array_equal(data[:, 16:, 16:], s1[:, 16:, 16:])
    assert np.isnan(data[:, :16, 16:]).all() and np.isnan(data[:, 16:, :16]).all()


def test_partly_nan_s1_pixels_are_left_to_the_next_patch(tmp_path: Path) -> None:
    """The S1 validity rule (dsen2cr.validity.s1_valid): a pixel with a NaN band is not data; an
    overlapping patch with both bands fills it, else it stays NaN in both bands."""
    rng = np.random.default_rng(4)
    s1 = rng.normal(-12, 3, (2, SIZE, 2 * SIZE)).astype(np.float32)
    a, b = cut(s1, tmp_path, {"a": (0, 0), "b": (0, 8)})  # b overlaps a's right half
    with rasterio.open(a, "r+") as src:  # VH missing in a's pixels (2, 3) and (2, 12)
        part = src.read()
        part[1, 2, 3] = part[1, 2, 12] = np.nan
        src.write(part)
    res = mosaic_patches([a, b], tmp_path / "s1.tif")
    data, _ = read(tmp_path / "s1.tif")
    assert np.isnan(data[:, 2, 3]).all()  # only a covers it
    np.testing.assert_array_equal(data[:, 2, 12], s1[:, 2, 12])  # b fills it
    assert res.covered_fraction == pytest.approx(1 - 1 / (SIZE * 24))
    assert not res.disagreements


def test_s2_pixels_at_a_declared_nodata_are_left_to_the_next_patch(tmp_path: Path) -> None:
    """The S2 validity rule with the patch's declared nodata (dsen2cr.validity.s2_valid): a pixel
    whose bands all equal it is not data, so an overlapping patch fills it, else it is 0."""
    rng = np.random.default_rng(5)
    scene = rng.integers(1, 10000, (13, SIZE, 2 * SIZE), dtype=np.uint16)
    a_block = scene[:, :, :SIZE].copy()
    a_block[:, 2, 3] = a_block[:, 2, 12] = 7  # nodata in a; (2, 12) is also in b
    a = write_raster_file(tmp_path / "a.tif", a_block, nodata=7)
    (b,) = cut(scene, tmp_path, {"b": (0, 8)})
    res = mosaic_patches([a, b], tmp_path / "s2.tif")
    data, _ = read(tmp_path / "s2.tif")
    assert (data[:, 2, 3] == 0).all()  # only a covers it: nodata in the mosaic
    np.testing.assert_array_equal(data[:, 2, 12], scene[:, 2, 12])  # b fills it
    assert res.covered_fraction == pytest.approx(1 - 1 / (SIZE * 24))
    assert not res.disagreements


def test_float_mosaic_overviews_leave_nan_out(tmp_path: Path) -> None:
    """Large enough for an overview level: its 2 x 2 means skip NaN (nodata) pixels."""
    from dsen2cr.cog import reduce_average

    rng = np.random.default_rng(2)
    s1 = rng.normal(-12, 3, (2, 1100, 600)).astype(np.float32)
    paths = cut_big(s1, tmp_path)  # 1024 x 512, a patch missing
    mosaic_patches(paths, tmp_path / "s1.tif")
    with rasterio.open(tmp_path / "s1.tif") as src:
        full = src.read()
        assert src.overviews(1) == [2]
        level = src.read(out_shape=(2, 512, 256))
    assert np.isnan(full).any() and not np.isnan(level).all()
    np.testing.assert_allclose(level, reduce_average(full, np.nan), rtol=1e-6, equal_nan=True)


def test_disagreements_are_reported_and_the_first_patch_wins(tmp_path: Path, caplog) -> None:
    rng = np.random.default_rng(2)
    scene = rng.integers(1, 10000, (13, SIZE, SIZE + SIZE // 2), dtype=np.uint16)
    a, b = cut(scene, tmp_path, {"a": (0, 0), "b": (0, 8)})
    with rasterio.open(b, "r+") as dst:  # 5 overlapping pixels of b differ in one band
        band = dst.read(3)
        band[2, :5] += 1
        dst.write(band, 3)
    with caplog.at_level(logging.WARNING, logger="dsen2cr.data.mosaic"):
        res = mosaic_patches([a, b], tmp_path / "m.tif")
    assert res.disagreeing_pixels == 5
    assert [(d.first, d.second, d.pixels) for d in res.disagreements] == [("a.tif", "b.tif", 5)]
    assert "5 pixel(s) where overlapping patches disagree" in caplog.text
    data, _ = read(tmp_path / "m.tif")
    np.testing.assert_array_equal(data, scene)  # a's values were kept
    assert res.to_dict()["disagreements"] == [{"first": "a.tif", "second": "b.tif", "pixels": 5}]


def test_errors(tmp_path: Path) -> None:
    scene = np.ones((13, SIZE, 2 * SIZE), np.uint16)
    a, b = cut(scene, tmp_path, {"a": (0, 0), "b": (0, 16)})
    plain = write_raster_file(tmp_path / "plain.tif", scene[:, :, :SIZE], crs=None)
    with pytest.raises(DataError, match=r"plain.tif has no georeferencing"):
        mosaic_patches([a, plain], tmp_path / "m.tif")
    off = write_raster_file(tmp_path / "off.tif", scene[:, :, :SIZE],
                            origin=(ORIGIN[0] + 4.0, ORIGIN[1]))  # fmt: skip
    with pytest.raises(DataError, match="not on a common grid"):
        plan_grid([a, off])
    other = write_raster_file(tmp_path / "utm32.tif", scene[:, :, :SIZE], crs="EPSG:32632")
    with pytest.raises(DataError, match="not one scene"):
        plan_grid([a, other])
    coarse = write_raster_file(tmp_path / "20m.tif", scene[:, :, :SIZE], resolution=20.0)
    with pytest.raises(DataError, match="not one grid"):
        plan_grid([a, coarse])
    three = write_raster_file(tmp_path / "three.tif", scene[:3, :, :SIZE],
                              origin=(ORIGIN[0] + 160.0, ORIGIN[1]))  # fmt: skip
    with pytest.raises(DataError, match=r"three.tif has 3 uint16"):
        mosaic_patches([a, three], tmp_path / "m.tif")
    assert not (tmp_path / "m.tif").exists()
    mosaic_patches([a, b], tmp_path / "m.tif")
    with pytest.raises(DSen2CRError, match="exists"):
        mosaic_patches([a, b], tmp_path / "m.tif")
    with pytest.raises(DSen2CRError, match="is the input"):
        mosaic_patches([a, b], a, overwrite=True)
    with pytest.raises(DataError, match="no patch"):
        plan_grid([])
    grid = plan_grid([a, b])
    with pytest.raises(DataError, match="not on the given scene grid"):
        mosaic_patches([coarse], tmp_path / "g.tif", grid=grid)
    with pytest.raises(DataError, match="off the given scene grid"):
        mosaic_patches([off], tmp_path / "g.tif", grid=grid)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("mosaic"), rois=8, patches=5, size=32,
                            progress=False)  # fmt: skip


def test_mosaic_split_cli_matches_every_patch(synthetic: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "scenes"
    assert main(["mosaic", str(synthetic), str(out)]) == 0
    printed = capsys.readouterr().out
    test = SEN12MSCR(synthetic, "test", crop_size=None)
    rois = sorted({(t.season, t.roi) for t in test.triplets})
    assert len(rois) == 2 and f"wrote 6 mosaics of 2 scene(s) to {out}" in printed
    for season, roi in rois:
        name = mosaic_name(season, roi)
        assert f"{name}: 64 x 48 px from 5 patches, 91.7 % covered" in printed
        grids = []
        for mod, suffix in (("s2_cloudy", "_s2_cloudy"), ("s2", "_s2"), ("s1", "_s1")):
            data, prof = read(out / f"{name}{suffix}.tif")
            grids.append((prof["crs"], prof["transform"], data.shape[1:]))
            for t in (t for t in test.triplets if (t.season, t.roi) == (season, roi)):
                patch, pprof = read(Path(getattr(t, mod)))
                col = round((pprof["transform"].c - prof["transform"].c) / 10.0)
                row = round((prof["transform"].f - pprof["transform"].f) / 10.0)
                np.testing.assert_array_equal(data[:, row : row + 32, col : col + 32], patch)
            missing = data[:, 32:, 48:]  # only the sixth cell of the 2 x 3 grid covers this
            assert (np.isnan(missing) if mod == "s1" else missing == 0).all()
        assert grids[0] == grids[1] == grids[2]  # the three modalities share one grid
    # a rerun keeps what an earlier run made from the same patches: nothing is rewritten
    stamp = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.iterdir()}
    assert main(["mosaic", str(synthetic), str(out)]) == 0
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.iterdir()} == stamp
    assert "91.7 % covered" in capsys.readouterr().out
    # a mosaic that dsen2cr did not make from these patches is not replaced without --overwrite
    first = out / f"{mosaic_name(*rois[0])}_s2.tif"
    first.write_bytes(b"someone else's file")
    assert main(["mosaic", str(synthetic), str(out), "--season", rois[0][0]]) == 2
    assert "add --overwrite" in capsys.readouterr().err
    assert first.read_bytes() == b"someone else's file"
    assert main(["mosaic", str(synthetic), str(out), "--roi", str(rois[0][1]), "--overwrite"]) == 0


def test_a_failing_scene_leaves_none_of_its_mosaics(synthetic: Path, tmp_path: Path, capsys) -> None:
    """One unreadable patch: the scenes before it stay (a rerun keeps them), its own three
    mosaics never appear, and the error is one line."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic, root)
    test = SEN12MSCR(root, "test", crop_size=None)
    rois = sorted({(t.season, t.roi) for t in test.triplets})
    bad = next(t for t in test.triplets if (t.season, t.roi) == rois[1])
    good = Path(bad.s1).read_bytes()
    Path(bad.s1).write_bytes(good[: len(good) // 3])  # the S1 mosaic is written last
    out = tmp_path / "scenes"
    assert main(["mosaic", str(root), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupt or truncated" in err[0] and Path(bad.s1).name in err[0]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{mosaic_name(*rois[0])}{sfx}" for sfx in MOSAIC_SUFFIX.values())
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    Path(bad.s1).write_bytes(good)
    assert main(["mosaic", str(root), str(out)]) == 0  # resumes: the first scene is kept
    assert len(list(out.iterdir())) == 6
    assert all(p.stat().st_mtime_ns == stamp[p.name] for p in out.iterdir() if p.name in stamp)


def test_mosaic_split_selection_and_errors(synthetic: Path, tmp_path: Path) -> None:
    res = mosaic_split(synthetic, tmp_path / "val", split="val", progress=False)
    assert len(res) == 1
    (scene,) = res
    assert json.loads(json.dumps(res[scene]["s2"].to_dict()))["patches"] == 5
    with pytest.raises(DSen2CRError, match=r"no patch of .* matches split 'test', ROI 999"):
        mosaic_split(synthetic, tmp_path / "none", roi=999, progress=False)
    with pytest.raises(DSen2CRError, match="unknown season"):
        mosaic_split(synthetic, tmp_path / "none", season="monsoon", progress=False)


@needs_files(*(GEOREF / f"{m}_ROIs1158_spring_101_{p}.tif" for m in ("s1", "s2_cloudFree")
               for p in (30, 31, 32)))  # fmt: skip
def test_real_half_overlapping_patches(tmp_path: Path) -> None:
    """Three real SEN12MS-CR patches, 128 px apart: identical where they overlap."""
    for mod, bands in (("s2_cloudFree", 13), ("s1", 2)):
        paths = [GEOREF / f"{mod}_ROIs1158_spring_101_{p}.tif" for p in (30, 31, 32)]
        res = mosaic_patches(paths, tmp_path / f"{mod}.tif")
        assert (res.width, res.height, res.covered_fraction) == (512, 256, 1.0)
        assert res.disagreeing_pixels == 0
        data, _ = read(tmp_path / f"{mod}.tif")
        assert data.shape == (bands, 256, 512)
        for i, p in enumerate(paths):
            np.testing.assert_array_equal(data[:, :, 128 * i : 128 * i + 256], read(p)[0])
