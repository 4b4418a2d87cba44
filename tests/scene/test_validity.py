"""The one validity rule of S2 and S1 pixels, and the typed grid the readers and writers share."""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from dsen2cr.grid import Grid
from dsen2cr.scene.sentinel2 import open_s2
from dsen2cr.validity import s1_valid, s2_valid
from tests.conftest import ORIGIN, UTM, write_raster_file


def test_s2_valid_zero_nodata_and_non_finite() -> None:
    s2 = np.full((13, 1, 6), 500, np.uint16)
    s2[:, 0, 0] = 0  # every band 0: L1C nodata
    s2[1:, 0, 1] = 0  # one band non-zero: data
    s2[:, 0, 2] = 7  # every band the declared nodata value
    s2[0, 0, 3] = 7  # one band at the nodata value: data
    assert s2_valid(s2).tolist() == [[False, True, True, True, True, True]]
    assert s2_valid(s2, nodata=7).tolist() == [[False, True, False, True, True, True]]
    f = s2.astype(np.float32)
    f[4, 0, 4], f[0, 0, 5] = np.nan, np.inf  # a band not finite: nodata
    assert s2_valid(f).tolist() == [[False, True, True, True, False, False]]
    assert s2_valid(f, nodata=float("nan")).tolist() == s2_valid(f).tolist()  # NaN adds nothing
    assert s2_valid(f, nodata=0).tolist() == s2_valid(f).tolist()


def test_s1_valid_needs_every_band_finite() -> None:
    s1 = np.full((2, 1, 4), -12.0, np.float32)
    s1[1, 0, 1], s1[:, 0, 2], s1[0, 0, 3] = np.nan, np.nan, -np.inf
    assert s1_valid(s1).tolist() == [[True, False, False, False]]


def test_reader_uses_the_rule(tmp_path) -> None:
    rng = np.random.default_rng(0)
    s2 = rng.integers(1, 3000, (13, 20, 24)).astype(np.uint16)
    s2[:, :3, :4] = 9
    s2[:, 5, :] = 0
    path = write_raster_file(tmp_path / "s2.tif", s2, nodata=9)
    scene = open_s2(path)
    with scene.open() as r:
        dn, ok = r.read(Window(0, 0, scene.width, scene.height))
    np.testing.assert_array_equal(ok, s2_valid(s2, nodata=9))
    assert (dn[:, ~ok] == 0).all()


def test_grid_of_a_dataset(tmp_path) -> None:
    path = write_raster_file(tmp_path / "a.tif", np.ones((2, 20, 30), np.float32))
    with rasterio.open(path) as src:
        g = Grid.of(src)
    assert g == Grid(rasterio.crs.CRS.from_string(UTM), from_origin(*ORIGIN, 10, 10), 20, 30)
    assert g.shape == (20, 30)
    moved = Grid(g.crs, from_origin(ORIGIN[0] + 1e-4, ORIGIN[1], 10, 10), 20, 30)
    assert g.same_as(moved, tolerance=1e-3) and not g.same_as(moved)
    assert not g.same_as(Grid(g.crs, g.transform, 21, 30))
    assert not g.same_as(Grid(None, g.transform, 20, 30))
