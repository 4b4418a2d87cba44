"""Reading Sentinel-2 L1C products (.SAFE folder / zip) and S1 placement on the S2 grid."""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.env import Env
from rasterio.transform import from_origin
from rasterio.windows import Window

from dsen2cr.errors import DataError
from dsen2cr.models import DSen2CR
from dsen2cr.scaling import S2_BANDS, S2_RESOLUTION_M
from dsen2cr.scene import PredictOptions, mask_scene, predict
from dsen2cr.scene.sentinel1 import S1Reader, open_s1
from dsen2cr.scene.sentinel2 import open_s2, parse_l1c_metadata
from tests.helpers import REALDATA

PRODUCT = "S2B_MSIL1C_20230601T101559_N0509_R065_T33UUP_20230601T122209"
GRANULE = "L1C_T33UUP_A032613_20230601T101602"
H10, W10 = 120, 180  # 10 m grid; 20 m: 60 x 90; 60 m: 20 x 30
ORIGIN = (300000.0, 5500020.0)
CRS = "EPSG:32633"

with Env() as _env:
    JP2_DRIVER = "JP2OpenJPEG" if "JP2OpenJPEG" in _env.drivers() else "GTiff"


def raw_band(b: int, offset: int) -> np.ndarray:
    """Raw DN of band b at its native resolution; deterministic, distinct per band."""
    f = S2_RESOLUTION_M[S2_BANDS[b]] // 10
    h, w = H10 // f, W10 // f
    rows, cols = np.mgrid[0:h, 0:w]
    raw = offset + 100 * (b + 1) + (rows * 7 + cols * 3 + b) % 50
    # the first 60 m row (rows 0..5 at 10 m) is outside the swath: NODATA 0 in every band
    raw[rows * f < 6] = 0
    if b == 1:  # dark B2 pixels below the offset: valid, but 0 after removing it
        raw[(rows == 30) & (cols < 20)] = 500
    return raw.astype(np.uint16)


def expected_dn(offset: int) -> tuple[np.ndarray, np.ndarray]:
    """The 10 m (13, H, W) DN the reader must return, and the valid map."""
    rows, cols = np.mgrid[0:H10, 0:W10]
    out = np.empty((13, H10, W10), np.float32)
    for b in range(13):
        f = S2_RESOLUTION_M[S2_BANDS[b]] // 10
        out[b] = raw_band(b, offset)[rows // f, cols // f]  # nearest-neighbour upsampling
    valid = rows >= 6
    return np.where(valid, np.maximum(out - offset, 0), 0).astype(np.float32), valid


def metadata(baseline: str, offset: int | None) -> str:
    offsets = ""
    if offset is not None:
        offsets = "<Radiometric_Offset_List>" + "".join(
            f'<RADIO_ADD_OFFSET band_id="{i}">{-offset}</RADIO_ADD_OFFSET>' for i in range(13)
        ) + "</Radiometric_Offset_List>"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_TYPE>S2MSI1C</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
      <Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>
      <QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>
      {offsets}
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-1C_User_Product>
"""


def make_safe(root: Path, baseline: str = "05.09", offset: int | None = 1000) -> Path:
    """A minimal L1C .SAFE: MTD_MSIL1C.xml and 13 single-band JP2 files at 10/20/60 m."""
    safe = root / f"{PRODUCT}.SAFE"
    img = safe / "GRANULE" / GRANULE / "IMG_DATA"
    img.mkdir(parents=True)
    (safe / "MTD_MSIL1C.xml").write_text(metadata(baseline, offset))
    for b, name in enumerate(S2_BANDS):
        res = S2_RESOLUTION_M[name]
        data = raw_band(b, offset or 0)
        suffix = "B8A" if name == "B8A" else f"B{int(name[1:]):02d}"
        opts = {"QUALITY": "100", "REVERSIBLE": "YES"} if JP2_DRIVER == "JP2OpenJPEG" else {}
        with rasterio.open(
            img / f"T33UUP_20230601T101559_{suffix}.jp2", "w", driver=JP2_DRIVER,
            width=data.shape[1], height=data.shape[0], count=1, dtype="uint16", crs=CRS,
            transform=from_origin(*ORIGIN, res, res), **opts,
        ) as dst:  # fmt: skip
            dst.write(data, 1)
    (img / "T33UUP_20230601T101559_TCI.jp2").write_bytes(b"")  # ignored
    return safe


def zip_safe(safe: Path) -> Path:
    z = safe.with_suffix(".zip")
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(safe.rglob("*")):
            zf.write(p, p.relative_to(safe.parent).as_posix())
    return z


@pytest.fixture(scope="module")
def safe_v4(tmp_path_factory) -> Path:
    return make_safe(tmp_path_factory.mktemp("safe4"), "05.09", 1000)


# --------------------------------------------------------------------------- SAFE
@pytest.mark.parametrize("zipped", [False, True])
def test_safe_10m_grid_band_order_and_offset(safe_v4, tmp_path, zipped):
    path = safe_v4
    if zipped:
        path = zip_safe(shutil.copytree(safe_v4, tmp_path / safe_v4.name))
        shutil.rmtree(tmp_path / safe_v4.name)  # read from the zip only
    scene = open_s2(path)
    assert scene.kind == "safe" and scene.baseline == "05.09" and scene.name == PRODUCT
    assert (scene.height, scene.width) == (H10, W10)
    assert scene.transform == from_origin(*ORIGIN, 10, 10)
    assert scene.crs == rasterio.crs.CRS.from_string(CRS)
    assert scene.offsets == (-1000.0,) * 13
    assert scene.factors == tuple(S2_RESOLUTION_M[b] // 10 for b in S2_BANDS)
    if zipped:
        assert all(p.startswith("/vsizip/") for p in scene.band_paths)
    exp, valid = expected_dn(1000)
    with scene.open() as r:
        dn, ok = r.read(Window(0, 0, W10, H10))
        np.testing.assert_array_equal(ok, valid)
        np.testing.assert_array_equal(dn, exp)
        assert (dn[1, 30, :20] == 0).all() and ok[30, :20].all()  # below the offset: 0, valid
        # windows at odd offsets (not multiples of 2 or 6) give the same pixels
        for r0, c0, h, w in [(7, 13, 50, 71), (0, 1, 119, 5), (113, 175, 7, 5)]:
            part, pok = r.read(Window(c0, r0, w, h))
            np.testing.assert_array_equal(part, exp[:, r0 : r0 + h, c0 : c0 + w])
            np.testing.assert_array_equal(pok, valid[r0 : r0 + h, c0 : c0 + w])


def test_safe_before_baseline_4_has_no_offset(tmp_path):
    scene = open_s2(make_safe(tmp_path, "02.09", None))
    assert scene.baseline == "02.09" and not scene.has_offset
    exp, valid = expected_dn(0)
    with scene.open() as r:
        dn, ok = r.read(Window(0, 0, W10, H10))
    np.testing.assert_array_equal(dn, exp)
    np.testing.assert_array_equal(ok, valid)


def test_predict_on_safe_matches_geotiff_route(safe_v4, tmp_path):
    torch.manual_seed(0)
    model = DSen2CR(features=8, blocks=3, sar_channels=0)
    out_safe = tmp_path / "safe.tif"
    opts = PredictOptions(tile=64, device="cpu", progress=False)
    predict(safe_v4, model, out_safe, mask_out=tmp_path / "safe_mask.tif", options=opts)
    exp, _ = expected_dn(1000)
    tif = tmp_path / "s2.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=W10, height=H10, count=13,
                       dtype="uint16", crs=CRS, transform=from_origin(*ORIGIN, 10, 10)) as dst:
        dst.write(exp.astype(np.uint16))
    # the product's made-up DN are in band order but not physical (B10 not darker than B3)
    predict(tif, model, tmp_path / "tif.tif", mask_out=tmp_path / "tif_mask.tif",
            options=replace(opts, band_check=False))
    with rasterio.open(out_safe) as a, rasterio.open(tmp_path / "tif.tif") as b:
        assert (a.crs, a.transform, a.shape) == (b.crs, b.transform, (H10, W10))
        assert a.tags()["DSEN2CR_S2_BASELINE"] == "05.09"
        pa, pb = a.read(), b.read()
    np.testing.assert_array_equal(pa, pb)
    assert (pa[:, :6] == 0).all() and (pa[:, 6:] >= 1).all()
    # dsen2cr mask reads the product the same way and gives predict's mask
    mask_scene(safe_v4, tmp_path / "mask.tif", options=opts)
    with rasterio.open(tmp_path / "mask.tif") as a, rasterio.open(tmp_path / "safe_mask.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
    with rasterio.open(tmp_path / "safe_mask.tif") as a, rasterio.open(tmp_path / "tif_mask.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_l1c_metadata_parsing_and_errors(tmp_path):
    meta = parse_l1c_metadata(metadata("04.00", 1000))
    assert meta["baseline"] == "04.00" and meta["offsets"] == (-1000.0,) * 13
    assert meta["nodata"] == 0 and meta["quantification"] == 10000
    assert parse_l1c_metadata(metadata("02.09", None))["offsets"] == (0.0,) * 13
    with pytest.raises(DataError, match="RADIO_ADD_OFFSET"):
        parse_l1c_metadata(metadata("04.00", None))
    with pytest.raises(DataError, match="parse"):
        parse_l1c_metadata("<not xml")


def test_safe_errors(safe_v4, tmp_path):
    broken = shutil.copytree(safe_v4, tmp_path / "broken.SAFE")
    next(broken.rglob("*_B8A.jp2")).unlink()
    with pytest.raises(DataError, match="B8A"):
        open_s2(broken)
    (tmp_path / "empty.SAFE").mkdir()
    with pytest.raises(DataError, match="MTD_MSIL1C"):
        open_s2(tmp_path / "empty.SAFE")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 nonsense")
    with pytest.raises(DataError, match="zip"):
        open_s2(tmp_path / "bad.zip")


# --------------------------------------------------------------------------- S1 placement
def test_s1_without_georeferencing(tmp_path):
    s2 = tmp_path / "s2.tif"
    with rasterio.open(s2, "w", driver="GTiff", width=40, height=30, count=13, dtype="uint16",
                       crs=CRS, transform=from_origin(*ORIGIN, 10, 10)) as dst:
        dst.write(np.ones((13, 30, 40), np.uint16))
    plain = tmp_path / "s1.tif"
    data = np.random.default_rng(0).normal(-15, 2, (2, 30, 40)).astype(np.float32)
    with rasterio.open(plain, "w", driver="GTiff", width=40, height=30, count=2,
                       dtype="float32") as dst:
        dst.write(data)
    with pytest.raises(DataError, match="coordinate reference system"):
        open_s1(plain, open_s2(s2))


@pytest.mark.realdata
@pytest.mark.skipif(
    not (REALDATA / "sen12mscr_georef" / "ROIs1868_summer_s1_19_p30.tif").exists()
    or not (REALDATA / "sen12mscr_triplets" / "1302_s1.tif").exists(),
    reason="../shared/realdata (georef pair and triplet 1302) not present",
)
def test_real_pairs_are_aligned():
    g = REALDATA / "sen12mscr_georef"
    scene = open_s2(g / "ROIs1868_summer_s2_cloudy_19_p30.tif")
    src = open_s1(g / "ROIs1868_summer_s1_19_p30.tif", scene)
    assert src.aligned  # same CRS and grid: read directly, no warping
    with S1Reader(src) as r, rasterio.open(g / "ROIs1868_summer_s1_19_p30.tif") as ref:
        np.testing.assert_array_equal(r.read(Window(0, 0, 256, 256)), ref.read())
    t = REALDATA / "sen12mscr_triplets"
    scene = open_s2(t / "1302_s2_cloudy.tif")  # not georeferenced: same size is enough
    assert scene.crs is None and open_s1(t / "1302_s1.tif", scene).aligned
