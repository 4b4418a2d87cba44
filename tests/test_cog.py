"""COGs written block by block (dsen2cr.cog, dsen2cr.tiff)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import dsen2cr.cog as cogmod
from dsen2cr.cog import (
    CogProfile,
    CogWriter,
    overview_sizes,
    reduce_average,
    reduce_mode,
    write_cog,
)
from tests.conftest import UTM, write_raster_file


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
        write_cog(src, tmp_path / "bad.tif", overviews="median")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif", "s.tif"]


def profile(**kw) -> CogProfile:
    base = {"count": 13, "dtype": "uint16", "nodata": 0, "compress": "DEFLATE", "predictor": True,
            "crs": UTM, "transform": from_origin(500000, 5600000, 10, 10), "tags": {"WHO": "test"},
            "descriptions": tuple(f"B{i}" for i in range(1, 14))}  # fmt: skip
    return CogProfile(**{**base, **kw})


def assert_levels(path: Path, data: np.ndarray, reduce, nodata) -> None:
    """Every pixel of every level of the COG at ``path`` is the expected one."""
    with rasterio.open(path) as ds:
        np.testing.assert_array_equal(ds.read(), data)
        level = data
        for _ in ds.overviews(1):
            level = reduce(level, nodata)
            np.testing.assert_array_equal(ds.read(out_shape=level.shape), level)
        assert len(ds.overviews(1)) == len(overview_sizes(*data.shape[1:]))


@pytest.mark.parametrize("compress", ["DEFLATE", "ZSTD", "LZW", "NONE"])
def test_pieces_in_any_order_from_many_threads_give_the_raster(tmp_path, compress) -> None:
    rng = np.random.default_rng(3)
    h, w = 1100, 1301
    dn = rng.integers(1, 12000, (13, h, w)).astype(np.uint16)
    dn[:, :300, :200] = 0
    pieces = [(r, c) for r in range(0, h, 300) for c in range(0, w, 300)]  # straddle blocks
    rng.shuffle(pieces)
    out = tmp_path / "out.tif"
    with CogWriter(out, h, w, profile(compress=compress)) as cog, \
         concurrent.futures.ThreadPoolExecutor(3) as pool:  # fmt: skip
        list(pool.map(lambda rc: cog.write(dn[:, rc[0] : rc[0] + 300, rc[1] : rc[1] + 300], *rc), pieces))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]  # the staging file is gone
    assert_levels(out, dn, reduce_average, 0)
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert (ds.compression.name.upper() if ds.compression else "NONE") == compress
        assert ds.crs.to_epsg() == 32633 and ds.transform == from_origin(500000, 5600000, 10, 10)
        assert ds.descriptions == tuple(f"B{i}" for i in range(1, 14)) and ds.tags()["WHO"] == "test"
        assert ds.nodata == 0 and ds.block_shapes[0] == (512, 512) and ds.overviews(1) == [2, 4]


def test_layout_is_a_cog_for_validators(tmp_path) -> None:
    """IFDs before the data, overviews (smallest first) before the full resolution, blocks in
    row-major order, each with GDAL's size leader and repeated trailer."""
    from dsen2cr import tiff

    rng = np.random.default_rng(4)
    dn = rng.integers(1, 5000, (13, 1100, 1030)).astype(np.uint16)
    out = tmp_path / "c.tif"
    with CogWriter(out, 1100, 1030, profile()) as cog:
        cog.write(dn, 0, 0)
    raw = out.read_bytes()
    assert raw[8:51] == b"GDAL_STRUCTURAL_METADATA_SIZE=000140 bytes\n"
    first = tiff.read_tags(raw)
    offsets = first[tiff.TILE_OFFSETS].numbers()
    counts = first[tiff.TILE_BYTE_COUNTS].numbers()
    assert list(offsets) == sorted(offsets) and len(offsets) == 9  # 3 x 3 blocks, row-major
    for off, n in zip(offsets, counts, strict=True):
        assert int.from_bytes(raw[off - 4 : off], "little") == n  # leader
        assert raw[off + n : off + n + 4] == raw[off + n - 4 : off + n]  # trailer
    from rio_cogeo.cogeo import cog_validate  # the validator of rasterio's COG tool

    valid, errors, _ = cog_validate(str(out), strict=True)
    assert valid and not errors


def test_bigtiff_when_the_file_is_large(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cogmod, "BIGTIFF_FROM", 0)  # as if the file passed 4 GB
    rng = np.random.default_rng(5)
    m = rng.choice(np.array([-1, 0, 1, -128], np.int8), size=(1, 700, 600))
    out = tmp_path / "m.tif"
    with CogWriter(out, 700, 600, profile(count=1, dtype="int8", nodata=-128, predictor=False,
                                          overviews="mode", crs=None, descriptions=())) as cog:  # fmt: skip
        cog.write(m[:, :350], 0, 0)
        cog.write(m[:, 350:], 350, 0)
    assert out.read_bytes()[:4] == b"II+\x00"
    assert_levels(out, m, reduce_mode, -128)
    with rasterio.open(out) as ds:
        assert ds.crs is None and ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"


def test_failure_leaves_nothing_and_missing_blocks_are_a_bug(tmp_path) -> None:
    out = tmp_path / "x.tif"
    with pytest.raises(ZeroDivisionError), CogWriter(out, 600, 600, profile()) as cog:
        cog.write(np.ones((13, 600, 100), np.uint16), 0, 0)
        raise ZeroDivisionError
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="never written"), CogWriter(out, 600, 600, profile()) as cog:
        cog.write(np.ones((13, 600, 100), np.uint16), 0, 0)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="outside"), CogWriter(out, 600, 600, profile()) as cog:
        cog.write(np.ones((13, 10, 10), np.uint16), 595, 0)
    assert list(tmp_path.iterdir()) == []
