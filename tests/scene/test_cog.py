"""COG output with numpy-made overviews (dsen2cr.scene.cog)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from dsen2cr.scene.cog import (
    build_overview_levels,
    overview_sizes,
    reduce_average,
    reduce_mode,
    write_cog,
)
from tests.conftest import write_raster_file


def test_overview_sizes_follow_gdal() -> None:
    assert overview_sizes(10980, 10980) == [(5490, 5490), (2745, 2745), (1373, 1373),
                                            (687, 687), (344, 344)]  # fmt: skip
    assert overview_sizes(700, 900) == [(350, 450)]
    assert overview_sizes(512, 300) == []
    assert overview_sizes(513, 1) == [(257, 1)]


def naive_average(a: np.ndarray, nodata: int) -> np.ndarray:
    c, h, w = a.shape
    out = np.full((c, (h + 1) // 2, (w + 1) // 2), nodata, a.dtype)
    for b in range(c):
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                v = [int(x) for x in a[b, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].ravel() if x != nodata]
                if v:
                    out[b, i, j] = (sum(v) + len(v) // 2) // len(v)
    return out


@pytest.mark.parametrize(("h", "w"), [(6, 8), (7, 9), (1, 5)])
def test_reduce_average_matches_a_plain_loop(h, w) -> None:
    rng = np.random.default_rng(h * w)
    a = rng.integers(1, 60000, (3, h, w)).astype(np.uint16)
    a[:, rng.random((h, w)) < 0.3] = 0  # nodata pixels (all bands)
    np.testing.assert_array_equal(reduce_average(a, 0), naive_average(a, 0))
    f = rng.random((2, h, w)).astype(np.float32)
    f[0, 0, 0] = -1
    got = reduce_average(f, -1)
    assert got.dtype == np.float32 and got.shape == (2, (h + 1) // 2, (w + 1) // 2)
    blk = f[1, :2, :2]
    assert got[1, 0, 0] == pytest.approx(blk.mean(), rel=1e-6)


def test_reduce_mode_ties_and_nodata() -> None:
    nd = -128
    a = np.array([[[1, 0, -1, -1, nd, nd, 0, 0],
                   [0, -1, 0, 0, nd, nd, 0, 1]]], np.int8)  # fmt: skip
    # blocks: {1,0,0,-1} -> 0 (two clear); {-1,-1,0,0} -> tie -> shadow; all nodata -> nodata;
    # {0,0,0,1} -> clear
    np.testing.assert_array_equal(reduce_mode(a, nd), [[[0, -1, nd, 0]]])
    b = np.array([[[1, -1], [nd, nd]]], np.int8)  # tie cloud / shadow -> cloud
    np.testing.assert_array_equal(reduce_mode(b, nd), [[[1]]])


def write_stage(path: Path, data: np.ndarray, nodata: float) -> Path:
    """A tiled staging raster with a band description and a tag, as predict writes them."""
    return write_raster_file(path, data, nodata=nodata, block=256, descriptions=("first",),
                             tags={"WHO": "test"})  # fmt: skip


def test_write_cog_with_numpy_overviews(tmp_path) -> None:
    rng = np.random.default_rng(0)
    dn = rng.integers(1, 12000, (13, 1100, 1301)).astype(np.uint16)
    dn[:, :300, :200] = 0  # nodata corner
    src = write_stage(tmp_path / "stage.tif", dn, 0)
    out = tmp_path / "out.tif"
    write_cog(src, out, compress="DEFLATE", predictor=True, overviews="average", nodata=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif", "stage.tif"]  # no leftovers
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.compression.name.upper() == "DEFLATE" and ds.block_shapes[0] == (512, 512)
        assert ds.crs.to_epsg() == 32633 and ds.transform == from_origin(500000, 5600000, 10, 10)
        assert ds.descriptions[0] == "first" and ds.tags()["WHO"] == "test" and ds.nodata == 0
        assert ds.overviews(1) == [2, 4]
        np.testing.assert_array_equal(ds.read(), dn)
        level1 = reduce_average(dn, 0)
        np.testing.assert_array_equal(ds.read(out_shape=(13, 550, 651)), level1)
        np.testing.assert_array_equal(ds.read(out_shape=(13, 275, 326)), reduce_average(level1, 0))


def test_write_cog_mask_mode(tmp_path) -> None:
    rng = np.random.default_rng(1)
    m = rng.choice(np.array([-1, 0, 1, -128], np.int8), size=(1, 600, 700))
    src = write_stage(tmp_path / "mask_stage.tif", m, -128)
    out = tmp_path / "mask.tif"
    write_cog(src, out, compress="ZSTD", overviews="mode", nodata=-128)
    with rasterio.open(out) as ds:
        assert ds.overviews(1) == [2] and ds.dtypes[0] == "int8"
        np.testing.assert_array_equal(ds.read(out_shape=(1, 300, 350)), reduce_mode(m, -128))


def test_small_raster_gets_no_overviews_and_errors_leave_nothing(tmp_path) -> None:
    src = write_stage(tmp_path / "s.tif", np.ones((2, 100, 120), np.uint16), 0)
    write_cog(src, tmp_path / "o.tif", overviews="average")
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.overviews(1) == [] and ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    with pytest.raises(ValueError, match="unknown overview"):
        build_overview_levels(src, "median", 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif", "s.tif"]
