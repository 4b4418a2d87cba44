"""Tests of the cloud / cloud-shadow detector (dsen2cr.cloudmask, issue 2 section 4). The mask of
whole scenes (``dsen2cr mask``) is tested in ``tests/scene/test_mask.py``."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from dsen2cr import cloudmask as cm
from dsen2cr.io import read_raster
from tests.helpers import GEOREF, TRIPLETS, needs_cuda, needs_files

GEOREF_CLOUDY = GEOREF / "ROIs1868_summer_s2_cloudy_19_p30.tif"

# Band indices (SEN12MS-CR order B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, B11, B12).
B1, B2, B3, B4, B8, B10, B11 = 0, 1, 2, 3, 7, 10, 11


# --------------------------------------------------------------------------- test data
def _uniform(h: int, w: int, refl: dict[int, float], default: float = 0.1) -> np.ndarray:
    """(13, h, w) uint16 DN image with the given per-band reflectance everywhere."""
    img = np.full((13, h, w), round(default * 10000), np.uint16)
    for b, v in refl.items():
        img[b] = round(v * 10000)
    return img


LAND = {B1: 0.05, B2: 0.06, B3: 0.07, B4: 0.07, B8: 0.30, B10: 0.005, B11: 0.20}
WATER = {B1: 0.05, B2: 0.03, B3: 0.03, B4: 0.02, B8: 0.01, B10: 0.001, B11: 0.005}
CLOUD = {B1: 0.60, B2: 0.60, B3: 0.60, B4: 0.60, B8: 0.60, B10: 0.05, B11: 0.50}
SNOW = {B1: 0.60, B2: 0.60, B3: 0.80, B4: 0.75, B8: 0.70, B10: 0.01, B11: 0.05}


def _paint(img: np.ndarray, rows: slice, cols: slice, refl: dict[int, float]) -> None:
    for b, v in refl.items():
        img[b, rows, cols] = round(v * 10000)


def _scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A noisy (13, h, w) DN scene with land, dark (shadow/water-like) and cloud blobs."""
    base = np.array([0.12, 0.09, 0.08, 0.07, 0.1, 0.15, 0.2, 0.25, 0.27, 0.05, 0.004, 0.18, 0.1])
    refl = base[:, None, None] * rng.uniform(0.6, 1.4, size=(13, h, w))
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(3):
        cy, cx, rad = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 12)
        d = np.hypot(yy - cy, xx - cx) / rad
        refl[:, d < 1] *= rng.uniform(0.15, 0.4)  # dark blob: shadow / water
    for _ in range(3):
        cy, cx, rad = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 14)
        d = np.hypot(yy - cy, xx - cx) / rad
        cloud = np.clip(1.3 - d, 0, 1) * rng.uniform(0.3, 0.7)  # soft-edged cloud
        refl = refl * (1 - cloud) + cloud * rng.uniform(0.4, 0.9, size=(13, 1, 1))
    return np.clip(np.round(refl * 10000), 0, 65535).astype(np.uint16)


# --------------------------------------------------------------------------- brute force
def _mirror(i: int, n: int) -> int:
    """Index into a line of length n extended as "d c b a | a b c d | d c b a"."""
    while i < 0 or i >= n:
        i = -i - 1 if i < 0 else 2 * n - 1 - i
    return i


def _brute_force(img: np.ndarray, threshold: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """The detector written from the spec with plain Python loops: (score, mask)."""
    _, h, w = img.shape
    r = [[[float(img[b, y, x]) / 10000 for x in range(w)] for y in range(h)] for b in range(13)]

    def rescale(v: float, lo: float, hi: float) -> float:
        return (v - lo) / (hi - lo)

    def nd(a: float, b: float) -> float:
        den = a + b
        return (a - b) / (den if den != 0 else 0.001)

    raw = [[0.0] * w for _ in range(h)]
    for y in range(h):
        for x in range(w):
            s = 1.0
            s = min(s, rescale(r[1][y][x], 0.1, 0.5))
            s = min(s, rescale(r[0][y][x], 0.1, 0.3))
            s = min(s, rescale(r[0][y][x] + r[10][y][x], 0.15, 0.2))
            s = min(s, rescale(r[3][y][x] + r[2][y][x] + r[1][y][x], 0.2, 0.8))
            s = min(s, rescale(nd(r[2][y][x], r[11][y][x]), 0.8, 0.6))
            raw[y][x] = s

    def window(grid: list[list[float]], y: int, x: int, rad: int, pad: str) -> list[float]:
        out = []
        for dy in range(-rad, rad + 1):
            for dx in range(-rad, rad + 1):
                yy, xx = y + dy, x + dx
                if pad == "mirror":
                    out.append(grid[_mirror(yy, h)][_mirror(xx, w)])
                elif 0 <= yy < h and 0 <= xx < w:
                    out.append(grid[yy][xx])
                else:
                    out.append(0.0)
        return out

    dil = [[max(window(raw, y, x, 2, "mirror")) for x in range(w)] for y in range(h)]
    clo = [[min(window(dil, y, x, 2, "mirror")) for x in range(w)] for y in range(h)]
    score = np.array(
        [[min(max(sum(window(clo, y, x, 3, "zero")) / 49, 1e-5), 1.0) for x in range(w)]
         for y in range(h)]
    )  # fmt: skip

    csi = [[(r[7][y][x] + r[11][y][x]) / 2 for x in range(w)] for y in range(h)]
    flat_csi = [v for row in csi for v in row]
    flat_b2 = [v for row in r[1] for v in row]
    t3 = min(flat_csi) + 3 / 4 * (math.fsum(flat_csi) / len(flat_csi) - min(flat_csi))
    t4 = min(flat_b2) + 5 / 6 * (math.fsum(flat_b2) / len(flat_b2) - min(flat_b2))
    cand = [[-1.0 if csi[y][x] < t3 and r[1][y][x] < t4 else 0.0 for x in range(w)]
            for y in range(h)]  # fmt: skip
    shadow = [[sorted(window(cand, y, x, 2, "zero"))[12] for x in range(w)] for y in range(h)]
    mask = np.zeros((h, w), np.int8)
    for y in range(h):
        for x in range(w):
            if score[y, x] >= threshold:
                mask[y, x] = 1
            elif shadow[y][x] < 0:
                mask[y, x] = -1
    return score, mask


# --------------------------------------------------------------------------- agreement
def test_numpy_and_torch_agree_exactly_on_random_batches() -> None:
    rng = np.random.default_rng(1)
    batch = np.stack([_scene(rng, 53, 70) for _ in range(4)])
    batch[2] = (batch[2] * 0.5).astype(np.uint16)  # a darker image: different shadow statistics
    tb = torch.from_numpy(batch.astype(np.int32))
    m_t = cm.cloud_shadow_mask(tb)
    m_np = cm.cloud_shadow_mask(batch)
    assert m_t.dtype == torch.int8 and m_t.shape == (4, 53, 70)
    assert m_np.dtype == np.int8
    np.testing.assert_array_equal(m_t.numpy(), m_np)
    assert set(np.unique(m_np)) == {-1, 0, 1}
    assert np.array_equal(cm.cloud_score(tb).numpy(), cm.cloud_score(batch))  # bit-identical
    # Statistics are per image: each batch member equals its own single-image mask.
    for i in range(4):
        np.testing.assert_array_equal(cm.cloud_shadow_mask(batch[i]), m_np[i])
        np.testing.assert_array_equal(cm.cloud_shadow_mask(tb[i]).numpy(), m_np[i])
    st_t, st_np = cm.shadow_statistics(tb), cm.shadow_statistics(batch)
    for f in ("csi_min", "csi_mean", "b2_min", "b2_mean"):
        assert getattr(st_t, f).shape == (4,)
        assert np.array_equal(getattr(st_t, f).numpy(), getattr(st_np, f))
    assert len(set(st_np.csi_mean.tolist())) == 4
    # ... and they matter: masking image 0 with image 2's statistics changes the shadows.
    other = cm.ShadowStats(*(float(getattr(st_np, f)[2]) for f in st_np.__dataclass_fields__))
    assert not np.array_equal(cm.cloud_shadow_mask(batch[0], shadow_stats=other), m_np[0])


def test_float_inputs_and_output_kinds() -> None:
    rng = np.random.default_rng(2)
    img = _scene(rng, 40, 33)
    ref = cm.cloud_shadow_mask(img)
    for t in (torch.from_numpy(img.astype(np.float32)), torch.from_numpy(img.astype(np.int16))):
        np.testing.assert_array_equal(cm.cloud_shadow_mask(t).numpy(), ref)
    np.testing.assert_array_equal(cm.cloud_shadow_mask(img.astype(np.float64)), ref)
    b_np = cm.binary_mask(img)
    b_t = cm.binary_mask(torch.from_numpy(img.astype(np.float32)))
    assert b_np.dtype == np.uint8 and b_t.dtype == torch.bool
    np.testing.assert_array_equal(b_np, (ref != 0).astype(np.uint8))
    np.testing.assert_array_equal(b_t.numpy(), ref != 0)
    score = cm.cloud_score(img)
    assert score.dtype == np.float64 and score.shape == (40, 33)
    assert score.min() >= 1e-5 and score.max() <= 1.0
    st = cm.shadow_statistics(img)
    assert all(isinstance(getattr(st, f), float) for f in ("csi_min", "csi_mean"))


@needs_cuda
def test_cuda_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    batch = np.stack([_scene(rng, 64, 64) for _ in range(3)])
    m = cm.cloud_shadow_mask(torch.from_numpy(batch.astype(np.int32)).cuda())
    assert m.is_cuda
    np.testing.assert_array_equal(m.cpu().numpy(), cm.cloud_shadow_mask(batch))


@pytest.mark.parametrize("shape", [(12, 11), (5, 9), (3, 4), (2, 2), (1, 3)])
def test_matches_brute_force_spec_implementation(shape: tuple[int, int]) -> None:
    """Tiny images (some smaller than the windows) against a loop version of the spec."""
    rng = np.random.default_rng(sum(shape))
    img = _scene(rng, *shape)
    score, mask = _brute_force(img)
    np.testing.assert_allclose(cm.cloud_score(img), score, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(cm.cloud_shadow_mask(img), mask)
    np.testing.assert_array_equal(cm.cloud_shadow_mask(torch.from_numpy(img)).numpy(), mask)


def test_box_mean_matches_scipy_and_reference_convolution() -> None:
    from scipy import ndimage, signal

    x = np.random.default_rng(4).normal(size=(1, 23, 31))
    ours = cm._np_box_mean(x, 7)[0]
    np.testing.assert_allclose(ours, ndimage.uniform_filter(x[0], 7, mode="constant"), atol=1e-14)
    box = np.ones((7, 7)) / 49
    np.testing.assert_allclose(ours, signal.convolve2d(x[0], box, mode="same"), atol=1e-14)


# --------------------------------------------------------------------------- hand-made cases
def test_mirror_closing_fills_gap_to_the_border() -> None:
    """A cloud stripe at columns 2-4: the mirrored border closes the 2-column gap at the edge.

    (For a centred 5x5 max/min any mirror-type extension only repeats values already in the
    window; a constant padding instead would stop the closing at the border.)
    """
    img = _uniform(20, 16, LAND)
    _paint(img, slice(None), slice(2, 5), CLOUD)
    score = cm.cloud_score(img)
    # Closing gives 1 in columns 0-4 (land elsewhere has a negative score, so the zero-padded
    # 7x7 mean counts ones only where the window holds no land).
    assert score[10, 0] == pytest.approx(28 / 49)  # window columns -3..3: 4 columns of ones
    assert score[10, 1] == pytest.approx(35 / 49)  # columns -2..4: 5 columns of ones
    assert score[0, 0] == pytest.approx(16 / 49)  # corner: 4 rows x 4 columns
    assert score[0, 1] == pytest.approx(20 / 49)
    assert score[10, 5] == 1e-5  # 3 columns of ones, 4 of land (-1.8): clipped
    mask = cm.cloud_shadow_mask(img)
    assert (mask[:, 0:3] == 1).all()  # columns 0-1 are land, cloud only through the closing
    assert (mask[:, 6:] != 1).all()  # (the darker land is shadow by the image-wide thresholds)
    np.testing.assert_array_equal(cm.cloud_shadow_mask(torch.from_numpy(img)).numpy(), mask)


def test_cloud_touching_a_corner_and_zero_padded_mean() -> None:
    img = _uniform(16, 16, LAND)
    _paint(img, slice(0, 3), slice(0, 3), CLOUD)  # 3x3 cloud in the corner
    score = cm.cloud_score(img)
    # The closing keeps the block (mirrored, it is a 6x6 block around the corner); the mean
    # at (0, 0) sees rows/columns -3..3: 3x3 ones and 16 land values of score -1.8.
    land = min((0.05 - 0.1) / 0.2, (0.055 - 0.15) / 0.05)
    assert land == pytest.approx(-1.9)
    assert score[0, 0] == pytest.approx(max((9 + 16 * land) / 49, 1e-5))
    assert score[0, 0] == 1e-5
    assert (cm.cloud_shadow_mask(img) != 1).all()  # too small to be cloud after smoothing


def test_uniform_cloud_corner_and_threshold() -> None:
    """A fully overcast image: the zero-padded 7x7 mean falls off at the borders."""
    img = _uniform(12, 12, CLOUD)
    score = cm.cloud_score(img)
    assert score[6, 6] == 1.0
    assert score[0, 0] == pytest.approx(16 / 49)
    assert score[0, 1] == pytest.approx(20 / 49)
    assert score[0, 6] == pytest.approx(28 / 49)
    assert score[1, 1] == pytest.approx(25 / 49)
    m3 = cm.cloud_shadow_mask(img, threshold=0.3)
    assert (m3 == 1).all()  # constant image: no shadow candidates at all
    m4 = cm.cloud_shadow_mask(img, threshold=0.4)
    assert m4[0, 0] == 0 and m4[0, 1] == 1 and m4[11, 11] == 0 and m4[6, 6] == 1
    assert (m4 == 0).sum() == 4
    m9 = cm.cloud_shadow_mask(torch.from_numpy(img), threshold=0.9)
    assert (m9.numpy() == 1).sum() == 6 * 6  # only pixels >= 3 from every border


def test_zero_padded_median_of_shadow_at_a_corner() -> None:
    img = _uniform(12, 12, LAND)
    _paint(img, slice(0, 4), slice(0, 4), WATER)  # 4x4 dark block in the corner
    mask = cm.cloud_shadow_mask(img)
    # Candidates are exactly the block; a pixel is shadow if >= 13 of its 25 neighbours
    # (zeros outside the image) are candidates: only (1..2, 1..2) have 16, the rest <= 12.
    expected = np.zeros((12, 12), np.int8)
    expected[1:3, 1:3] = -1
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(cm.cloud_shadow_mask(torch.from_numpy(img)).numpy(), expected)


def test_dark_region_is_shadow_snow_is_not_cloud() -> None:
    img = _uniform(40, 60, LAND)
    _paint(img, slice(5, 35), slice(0, 20), SNOW)
    _paint(img, slice(5, 35), slice(40, 60), CLOUD)
    _paint(img, slice(14, 26), slice(24, 36), WATER)
    mask = cm.cloud_shadow_mask(img)
    assert (mask[12:28, 0:13] == 0).all()  # snow, 7 px from its edges: clear
    assert (mask[12:28, 47:] == 1).all()  # the cloud of the same brightness
    assert (mask[16:24, 26:34] == -1).all()  # the dark patch
    assert (mask != 1)[:, :33].all()  # (land, darker than the image mean, may be shadow)
    assert cm.cloud_score(img)[20, 5] == 1e-5
    np.testing.assert_array_equal(cm.cloud_shadow_mask(torch.from_numpy(img)).numpy(), mask)


def test_threshold_is_monotonic() -> None:
    img = _scene(np.random.default_rng(5), 48, 48)
    clouds = [cm.cloud_shadow_mask(img, threshold=t) == 1 for t in (0.1, 0.2, 0.5)]
    assert clouds[0].sum() > clouds[1].sum() > clouds[2].sum() > 0
    assert not (clouds[2] & ~clouds[1]).any() and not (clouds[1] & ~clouds[0]).any()


# --------------------------------------------------------------------------- tiling
@pytest.mark.parametrize("use_torch", [False, True])
def test_tiles_with_halo_and_scene_statistics_equal_whole_image(use_torch: bool) -> None:
    img = _scene(np.random.default_rng(6), 96, 96)
    _paint(img, slice(70, 90), slice(5, 30), WATER)  # shadow-like area inside one tile only
    x = torch.from_numpy(img.astype(np.int32)) if use_torch else img
    whole = np.asarray(cm.cloud_shadow_mask(x))
    stats = cm.shadow_statistics(x)
    halo, core = cm.MASK_RADIUS, 32
    assert halo == 7
    stitched = np.full((96, 96), 9, np.int8)
    own_stats = np.full((96, 96), 9, np.int8)
    for y0 in range(0, 96, core):
        for x0 in range(0, 96, core):
            ya, yb = max(y0 - halo, 0), min(y0 + core + halo, 96)
            xa, xb = max(x0 - halo, 0), min(x0 + core + halo, 96)
            tile = x[:, ya:yb, xa:xb]
            part = np.asarray(cm.cloud_shadow_mask(tile, shadow_stats=stats))
            stitched[y0 : y0 + core, x0 : x0 + core] = part[
                y0 - ya : y0 - ya + core, x0 - xa : x0 - xa + core
            ]
            alone = np.asarray(cm.cloud_shadow_mask(tile))
            own_stats[y0 : y0 + core, x0 : x0 + core] = alone[
                y0 - ya : y0 - ya + core, x0 - xa : x0 - xa + core
            ]
    np.testing.assert_array_equal(stitched, whole)
    assert not np.array_equal(own_stats, whole)  # the scene-wide statistics are needed


def test_shadow_statistics_accumulated_block_by_block() -> None:
    img = _scene(np.random.default_rng(11), 61, 47)
    acc = cm.ShadowStatsAccumulator()
    for r in range(0, 61, 13):  # uneven blocks, pixels flattened (as valid-pixel selections are)
        acc.add(img[:, r : r + 13].reshape(13, -1))
    got, ref = acc.result(), cm.shadow_statistics(img)
    assert got.csi_min == ref.csi_min and got.b2_min == ref.b2_min  # exact
    assert math.isclose(got.csi_mean, ref.csi_mean, rel_tol=1e-14)
    assert math.isclose(got.b2_mean, ref.b2_mean, rel_tol=1e-14)
    assert cm.ShadowStatsAccumulator().result() == cm.ShadowStats(0.0, 0.0, 0.0, 0.0)


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="13 Sentinel-2 bands"):
        cm.cloud_shadow_mask(np.zeros((12, 8, 8), np.uint16))
    with pytest.raises(ValueError, match="13 Sentinel-2 bands"):
        cm.cloud_shadow_mask(torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        cm.cloud_shadow_mask(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="empty"):
        cm.cloud_shadow_mask(np.zeros((13, 0, 8)))
    with pytest.raises(ValueError, match="threshold"):
        cm.cloud_shadow_mask(np.zeros((13, 8, 8)), threshold=float("nan"))
    with pytest.raises(ValueError, match="real numeric"):
        cm.cloud_shadow_mask(np.zeros((13, 8, 8), np.complex64))
    bad = cm.ShadowStats(np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="2 values"):
        cm.cloud_shadow_mask(torch.zeros(2, 13, 8, 8), shadow_stats=bad)


# --------------------------------------------------------------------------- real data
@pytest.mark.realdata
@needs_files(TRIPLETS)
def test_real_cloudy_patches_torch_equals_numpy() -> None:
    paths = sorted(TRIPLETS.glob("*_s2_cloudy.tif"))
    if GEOREF_CLOUDY.exists():
        paths.append(GEOREF_CLOUDY)
    assert len(paths) >= 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the triplets are not georeferenced
        images = {p.name.split("_")[0]: read_raster(p, 13)[0] for p in paths}
    batch = np.stack(list(images.values()))
    m_t = cm.cloud_shadow_mask(torch.from_numpy(batch.astype(np.int32))).numpy()
    cloud = {}
    for i, (key, img) in enumerate(images.items()):
        m_np = cm.cloud_shadow_mask(img)
        np.testing.assert_array_equal(m_t[i], m_np, err_msg=key)
        cloud[key] = float((m_np == 1).mean())
    # What the README says, where this detector agrees with it.
    assert cloud["2266"] > 0.9  # fully overcast
    assert cloud["3968"] > 0.9 and cloud["4294"] > 0.9  # heavy cover
    assert cloud["1302"] < 0.01 and cloud["2729"] < 0.01  # clear
