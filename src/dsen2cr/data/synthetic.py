"""A synthetic SEN12MS-CR: meaningful stand-in data in exactly the published layout.

The real SEN12MS-CR (about 0.5 TB) cannot be downloaded everywhere. This module generates data that
exercises every code path honestly:

* per ROI a **land-cover map** with smooth spatial structure: agricultural fields as Voronoi
  polygons (green crops, grassland, bare fields), forest and urban blobs from smooth noise, lakes
  and a meandering river;
* each class has a plausible **13-band Level-1C TOA spectrum** (water dark in NIR and SWIR,
  vegetation with a red edge and bright NIR, bright SWIR for soil and rock, B10 ~ 0.001 for clear
  land), with field-to-field and within-field texture; the 20 m and 60 m bands are smoothed like the
  resampled real bands. Spectra are consistent across ROIs (modest per-ROI and per-season variation);
* **Sentinel-1** VV/VH (dB) derived from the same land cover (class-dependent backscatter, e.g. water
  ~ -20 dB VV, urban bright, plus multiplicative speckle), so SAR carries the structure that clouds
  hide from the optical image;
* small **surface changes** between the cloud-free target and the cloudy acquisition (some fields
  change crop state, vegetation vigour and atmosphere drift a little);
* **clouds** from smooth fractal noise: thick opaque clouds (bright and flat in all bands, high B1
  and B10) and thin semi-transparent ones, coverage from 0 to 100 % across patches, with dark
  **shadows** displaced from the clouds.

Layout written by :func:`generate_dataset` (as distributed on mediaTUM)::

    OUT/ROIs1158_spring/ROIs1158_spring_s1/s1_106/ROIs1158_spring_s1_106_p1.tif
    OUT/ROIs1158_spring/ROIs1158_spring_s2/s2_106/ROIs1158_spring_s2_106_p1.tif
    OUT/ROIs1158_spring/ROIs1158_spring_s2_cloudy/s2_cloudy_106/ROIs1158_spring_s2_cloudy_106_p1.tif

S2 files: 13 bands uint16 DN (reflectance x 10000) in SEN12MS-CR band order; S1 files: 2 bands
float32 dB (VV, VH). Each ROI is one scene on a UTM grid (EPSG:326xx, 10 m pixels) cut into
patches with the real dataset's 128 px stride, so neighbouring patches overlap by 50 % and agree on
their common pixels.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import rasterio
from rasterio.transform import from_origin
from scipy import fft, ndimage
from tqdm import tqdm

from dsen2cr.cloudmask import cloud_shadow_mask
from dsen2cr.data.index import build_index
from dsen2cr.data.layout import SEASONS, TEST_ROIS, VAL_ROIS
from dsen2cr.errors import DataError, OptionError
from dsen2cr.figures import (
    image_panel,
    mask_caption,
    mask_composite,
    new_figure,
    rgb_caption,
    rgb_composite,
    sar_caption,
    sar_composite,
    save_figure,
)
from dsen2cr.io import (
    atomic_folder,
    atomic_output,
    guard_outputs,
    no_georef_warning,
    read_raster,
    verify_written,
)
from dsen2cr.scaling import REFLECTANCE_SCALE, S2_BANDS, S2_RESOLUTION_M

if TYPE_CHECKING:
    from affine import Affine

_PathLike: TypeAlias = str | os.PathLike[str]
PathTriplet: TypeAlias = tuple[_PathLike, _PathLike, _PathLike]
"""The (s1, s2, s2_cloudy) files of a triplet."""

# --------------------------------------------------------------------------- land cover & spectra
LANDCOVER_CLASSES: tuple[str, ...] = (
    "water", "forest", "cropland", "grassland", "bare_field", "urban", "bare_rock",
)  # fmt: skip
"""Land-cover classes of the synthetic scenes; the ``landcover`` map stores their index."""
SYNTHETIC_MARKER = "synthetic.json"
"""File at the root of a synthetic dataset: what made it (the provenance weights trained on it
record)."""

WATER, FOREST, CROPLAND, GRASSLAND, BARE_FIELD, URBAN, BARE_ROCK = range(7)

# Level-1C top-of-atmosphere reflectance per class, bands B1 ... B12 (SEN12MS-CR order).
CLASS_SPECTRA = np.array(
    [
        # B1    B2    B3    B4    B5    B6    B7    B8    B8A   B9    B10     B11   B12
        [.125, .095, .070, .045, .036, .026, .023, .020, .018, .008, .0008, .006, .004],  # water
        [.110, .078, .064, .042, .078, .205, .255, .265, .285, .092, .0012, .135, .062],  # forest
        [.112, .084, .082, .052, .108, .290, .360, .380, .400, .120, .0012, .195, .092],  # crop
        [.116, .090, .090, .076, .118, .222, .262, .280, .296, .100, .0012, .232, .140],  # grass
        [.126, .106, .108, .118, .138, .166, .186, .196, .206, .072, .0012, .292, .232],  # bare
        [.136, .116, .112, .116, .126, .150, .160, .170, .176, .062, .0015, .212, .182],  # urban
        [.150, .140, .152, .182, .202, .232, .252, .262, .272, .090, .0015, .352, .282],  # rock
    ],
    dtype=np.float32,
)
"""(7, 13) TOA reflectance of each land-cover class (before texture and seasonal variation)."""

# Sentinel-1 backscatter per class in dB: (VV, VH) mean, per-field spread.
CLASS_SAR_DB = np.array(
    [
        [-20.0, -28.0],  # water (smooth surface, specular)
        [-7.5, -12.5],  # forest (volume scattering, high VH)
        [-9.0, -14.5],  # cropland
        [-11.5, -19.0],  # grassland
        [-14.0, -23.0],  # bare field (surface scattering, low VH)
        [-3.5, -10.5],  # urban (double bounce)
        [-16.5, -25.5],  # bare rock / sand
    ],
    dtype=np.float32,
)
"""(7, 2) mean VV, VH backscatter (dB) of each land-cover class."""

CLOUD_SPECTRUM = np.array(
    [.76, .75, .73, .74, .75, .76, .77, .75, .77, .44, .030, .45, .30], dtype=np.float32
)
"""TOA reflectance of an optically thick cloud (bright and flat; B9 water vapour and SWIR lower)."""

_VEGETATION = (FOREST, CROPLAND, GRASSLAND)
_NIR_BANDS = np.array([0, 0, 0, 0, 0.3, 1, 1, 1, 1, 1, 0, 0.2, 0], dtype=np.float32)
_SEASON_VEG_NIR = {"spring": 1.0, "summer": 1.06, "fall": 0.9, "winter": 0.8}
_BAND_SMOOTH = np.array([{10: 1, 20: 3, 60: 7}[S2_RESOLUTION_M[b]] for b in S2_BANDS])
"""Box smoothing (pixels) that imitates the 20 m and 60 m bands resampled to 10 m."""

CLOUD_VISIBILITY = 0.2
"""Cloud opacity from which a pixel counts as cloud in the ``cloud`` truth mask."""
SHADOW_VISIBILITY = 0.3
"""Shadowing cloud opacity from which a clear pixel counts as shadow in the ``shadow`` truth."""


def fractal_noise(
    shape: tuple[int, int], rng: np.random.Generator, beta: float = 3.0
) -> np.ndarray:
    """Smooth random field with a power spectrum ~ 1/f**beta, made with one FFT.

    Smooth fields (``beta >= 3.5``) are synthesised at a quarter of the resolution and upsampled
    bilinearly, which changes nothing visible and is much faster.

    Args:
        shape: (H, W) of the field.
        rng: random generator.
        beta: spectral exponent; larger is smoother (2: rough, 3: clouds, 4+: large blobs).

    Returns:
        (H, W) float32 field with zero mean and unit standard deviation.
    """
    h, w = shape
    factor = 4 if beta >= 3.5 and min(h, w) >= 64 else 1
    gh, gw = -(-h // factor) + 1, -(-w // factor) + 1
    if factor == 1:
        gh, gw = h, w
    fy = np.fft.fftfreq(gh).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(gw).astype(np.float32)[None, :]
    f2 = fy * fy + fx * fx
    f2[0, 0] = 1.0
    amp = f2 ** np.float32(-beta / 4.0)
    amp[0, 0] = 0.0
    spec = np.empty((gh, fx.shape[1]), np.complex64)
    spec.real = rng.standard_normal((gh, fx.shape[1]), dtype=np.float32)
    spec.imag = rng.standard_normal((gh, fx.shape[1]), dtype=np.float32)
    spec *= amp
    field: np.ndarray = fft.irfft2(spec, s=(gh, gw), workers=-1).astype(np.float32, copy=False)
    if factor > 1:
        yy = np.arange(h, dtype=np.float32) / factor
        xx = np.arange(w, dtype=np.float32) / factor
        y0, x0 = yy.astype(np.int64), xx.astype(np.int64)
        wy, wx = (yy - y0)[:, None], (xx - x0)[None, :]
        top = field[y0][:, x0] * (1 - wx) + field[y0][:, x0 + 1] * wx
        bot = field[y0 + 1][:, x0] * (1 - wx) + field[y0 + 1][:, x0 + 1] * wx
        field = top * (1 - wy) + bot * wy
    field -= field.mean()
    std = field.std()
    return field / std if std > 0 else field


def _voronoi_labels(shape: tuple[int, int], rng: np.random.Generator, cell: float) -> np.ndarray:
    """Voronoi cells (field parcels) of roughly ``cell`` pixels diameter; (H, W) int32 labels."""
    h, w = shape
    n = max(1, int(h * w / (cell * cell)))
    seeds = np.ones(shape, bool)
    ys = rng.integers(0, h, n)
    xs = rng.integers(0, w, n)
    seeds[ys, xs] = False
    labels_grid = np.zeros(shape, np.int32)
    labels_grid[ys, xs] = np.arange(1, n + 1, dtype=np.int32)
    _, (iy, ix) = ndimage.distance_transform_edt(seeds, return_indices=True)
    labels: np.ndarray = labels_grid[iy, ix]
    return labels


def _landcover(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Land-cover map and field-parcel labels of one scene."""
    fields = _voronoi_labels(shape, rng, cell=rng.uniform(28, 48))
    n_fields = int(fields.max()) + 1
    # Agricultural parcels: crop, grassland or bare field.
    parcel_class = rng.choice(
        np.array([CROPLAND, GRASSLAND, BARE_FIELD], np.uint8), size=n_fields, p=[0.45, 0.3, 0.25]
    )
    lc = parcel_class[fields]
    # Forest and urban blobs, bare rock, lakes and a river from smooth noise.
    forest = fractal_noise(shape, rng, 4.0)
    lc[forest > rng.uniform(0.4, 1.0)] = FOREST
    rock = fractal_noise(shape, rng, 4.0)
    lc[rock > rng.uniform(1.4, 2.2)] = BARE_ROCK
    urban = fractal_noise(shape, rng, 4.5)
    lc[urban > rng.uniform(0.9, 1.6)] = URBAN
    lakes = fractal_noise(shape, rng, 4.5)
    lc[lakes > rng.uniform(1.5, 2.3)] = WATER
    river = fractal_noise(shape, rng, 4.5)
    width = rng.uniform(0.015, 0.035)
    lc[np.abs(river) < width] = WATER
    return lc, fields


def _smooth_bands(img: np.ndarray) -> np.ndarray:
    """Blur the 20 m and 60 m bands of a (13, H, W) image like their resampling to 10 m."""
    for b, size in enumerate(_BAND_SMOOTH):
        if size > 1:
            img[b] = ndimage.uniform_filter(img[b], size, mode="nearest")
    return img


def _ground_reflectance(
    lc: np.ndarray,
    fields: np.ndarray,
    texture: tuple[np.ndarray, np.ndarray, np.ndarray],
    field_gain: np.ndarray,
    spectra: np.ndarray,
) -> np.ndarray:
    """(13, H, W) float32 surface TOA reflectance from land cover, per-field gains and textures."""
    fine, coarse, blocks = texture
    amp_fine = np.array([0.015, 0.09, 0.05, 0.05, 0.06, 0.0, 0.06], np.float32)
    amp_coarse = np.array([0.04, 0.05, 0.06, 0.05, 0.06, 0.05, 0.08], np.float32)
    gain_field = np.where(np.arange(7) == WATER, 0.0, 1.0).astype(np.float32)
    gain = 1.0 + np.take(amp_fine, lc) * fine + np.take(amp_coarse, lc) * coarse
    gain += field_gain[fields] * np.take(gain_field, lc)
    urban = lc == URBAN
    gain = np.where(urban, 1.0 + 0.15 * blocks + 0.04 * fine, gain)
    # vegetation vigour varies within parcels (NIR / red edge only)
    vigour = 0.05 * coarse * np.isin(lc, _VEGETATION)
    refl = np.empty((13, *lc.shape), np.float32)
    for b in range(13):
        refl[b] = np.take(spectra[:, b], lc) * gain
        if _NIR_BANDS[b]:
            refl[b] *= 1.0 + _NIR_BANDS[b] * vigour
    return refl


def _sar(
    lc: np.ndarray,
    fields: np.ndarray,
    rng: np.random.Generator,
    sar_means: np.ndarray,
    texture: np.ndarray,
    blocks: np.ndarray,
    field_gain: np.ndarray,
) -> np.ndarray:
    """(2, H, W) float32 VV, VH backscatter in dB from the land cover, with speckle.

    Per-field offsets are partly tied to the field's optical brightness (``field_gain``: denser,
    brighter vegetation scatters more, VH most), partly independent.
    """
    n_fields = int(fields.max()) + 1
    field_off = rng.normal(0.0, 0.5, (n_fields, 2)).astype(np.float32)
    field_off += field_gain[:, None] * np.array([5.0, 8.0], np.float32)
    db: np.ndarray = np.moveaxis(sar_means[lc], -1, 0).copy()  # (2, H, W)
    db += np.where(lc == WATER, 0.0, 1.0)[None] * field_off[fields].transpose(2, 0, 1)
    db += (np.where(lc == WATER, 1.0, 0.5) * texture)[None]
    db += (np.where(lc == URBAN, 3.0, 0.0) * blocks)[None]
    looks = 8.0  # equivalent number of looks of a multi-looked GRD product
    speckle = rng.gamma(looks, 1.0 / looks, size=db.shape).astype(np.float32)
    db += 10.0 * np.log10(np.maximum(speckle, 1e-6))
    return db.astype(np.float32)


def _cloud_fields(
    shape: tuple[int, int], rng: np.random.Generator, cover: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cloud opacity, shadowing opacity and cloud brightness texture of a scene.

    Returns:
        ``(alpha, alpha_shadow, brightness)``: (H, W) float32 cloud opacity in [0, 1], opacity of
        the cloud casting a shadow onto each pixel, and a multiplicative cloud-top brightness.
        ``mean(alpha >= CLOUD_VISIBILITY) == cover`` up to one pixel.
    """
    h, w = shape
    angle = rng.uniform(0, 2 * math.pi)
    dist = rng.uniform(12, 40)
    dy, dx = round(dist * math.sin(angle)), round(dist * math.cos(angle))
    pad = max(abs(dy), abs(dx)) + 1
    ph, pw = h + 2 * pad, w + 2 * pad
    d = 0.4 * fractal_noise((ph, pw), rng, 3.0) + 0.9 * fractal_noise((ph, pw), rng, 4.4)
    d /= d.std()
    # opacity ceiling: ~1 for thick clouds, ~0.3-0.55 where clouds are thin; most scenes are
    # dominated by optically thick cloud, as SEN12MS-CR's cloudy images (20-70 % cover) are
    thin = fractal_noise((ph, pw), rng, 4.0)
    thin_share = rng.uniform(-0.3, 1.3)
    amax = 0.3 + 0.7 / (1.0 + np.exp(-3.0 * (thin + thin_share)))
    k = 3.0
    view = (slice(pad, pad + h), slice(pad, pad + w))
    d_view, amax_view = d[view], amax[view]

    def opacity(dd: np.ndarray, am: np.ndarray, t: float) -> np.ndarray:
        return am * (1.0 - np.exp(-k * np.maximum(dd - t, 0.0)))

    if cover <= 0.0:
        t = float(d.max()) + 1.0
    else:
        # pixel is cloud iff d - t >= -ln(1 - v / amax) / k; pick t by the quantile of that margin
        need = -np.log(np.clip(1.0 - CLOUD_VISIBILITY / amax_view, 1e-6, 1.0)) / k
        margin = (d_view - need).ravel()
        if cover >= 1.0:
            t = float(margin.min()) - 1e-3
        else:
            t = float(np.quantile(margin, 1.0 - cover))
    alpha_full = opacity(d, amax, t).astype(np.float32)
    alpha = alpha_full[view]
    shadow = alpha_full[pad - dy : pad - dy + h, pad - dx : pad - dx + w]
    bright = 0.9 + 0.12 * np.tanh(d_view - t) + 0.04 * fractal_noise(shape, rng, 2.2)
    return alpha, shadow, bright.astype(np.float32)


def _scene_spectra(rng: np.random.Generator, season: str) -> np.ndarray:
    """(7, 13) per-scene class spectra: consistent across scenes, modest variation,
    season-dependent vegetation."""
    spectra = CLASS_SPECTRA * rng.uniform(0.95, 1.05, (1, 13)).astype(np.float32)
    veg_nir = _SEASON_VEG_NIR[season] * rng.uniform(0.96, 1.04)
    spectra[list(_VEGETATION)] *= (1.0 + (veg_nir - 1.0) * _NIR_BANDS)[None]
    if season == "winter":
        spectra[list(_VEGETATION), 1:4] *= 1.2
    return spectra


def _changed_ground(
    lc: np.ndarray,
    fields: np.ndarray,
    texture: tuple[np.ndarray, np.ndarray, np.ndarray],
    field_gain: np.ndarray,
    spectra: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """(13, H, W) float32 surface reflectance at the cloudy acquisition: some parcels change
    state, vegetation and atmosphere drift a little."""
    n_fields = int(fields.max()) + 1
    lc_c = lc.copy()
    parcel_change = rng.random(n_fields) < 0.12
    changing = parcel_change[fields] & np.isin(lc, (CROPLAND, GRASSLAND, BARE_FIELD))
    new_class = rng.choice(np.array([CROPLAND, GRASSLAND, BARE_FIELD], np.uint8), n_fields)
    lc_c[changing] = new_class[fields][changing]
    spectra_c = spectra.copy()
    spectra_c[list(_VEGETATION)] *= (1.0 + rng.normal(0, 0.03) * _NIR_BANDS)[None]
    spectra_c *= rng.uniform(0.98, 1.02, (1, 13)).astype(np.float32)
    gain_c = field_gain + rng.normal(0.0, 0.02, n_fields).astype(np.float32)
    return _ground_reflectance(lc_c, fields, texture, gain_c, spectra_c)


def _clouded(
    ground: np.ndarray,
    alpha: np.ndarray,
    alpha_shadow: np.ndarray,
    bright: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """(13, H, W) TOA reflectance of ``ground`` under clouds and their shadows
    (:func:`_cloud_fields`), with a random cloud brightness and shadow depth."""
    cloud_spec = CLOUD_SPECTRUM * np.float32(rng.uniform(0.75, 1.1))
    cloud_spec[10] = CLOUD_SPECTRUM[10] * rng.uniform(0.5, 1.6)  # B10 (cirrus): cloud height
    shade = 1.0 - np.float32(rng.uniform(0.55, 0.75)) * np.minimum(alpha_shadow / 0.6, 1.0)
    cloudy: np.ndarray = (ground * (shade * (1.0 - alpha))[None]
                          + (alpha * bright)[None] * cloud_spec[:, None, None])  # fmt: skip
    return cloudy


def _to_dn(refl: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(13, H, W) uint16 DN of a reflectance image: the 20 m and 60 m bands smoothed, sensor
    noise added (``refl`` is changed in place)."""
    refl = _smooth_bands(refl)
    noise = rng.standard_normal(refl.shape[1:], dtype=np.float32)
    for b in range(13):  # sensor noise, small and partly band-correlated
        if b != 10:
            refl[b] *= 1.0 + 0.012 * noise
    refl *= REFLECTANCE_SCALE
    np.rint(refl, out=refl)
    dn: np.ndarray = np.clip(refl, 0, 65535).astype(np.uint16)
    return dn


def make_scene(
    height: int,
    width: int,
    seed: int = 0,
    cloud_cover: float | None = None,
    season: str = "summer",
) -> dict[str, np.ndarray]:
    """Generate one synthetic scene: cloudy and cloud-free Sentinel-2, Sentinel-1 and truth maps.

    Works for any size (e.g. 700 x 900 in well under a second). The same ``seed`` gives the same
    scene.

    Args:
        height: rows H in pixels (10 m).
        width: columns W in pixels.
        seed: random seed.
        cloud_cover: fraction of pixels in [0, 1] whose cloud opacity reaches
            :data:`CLOUD_VISIBILITY` (the ``cloud`` truth); ``None`` draws it uniformly.
        season: ``"spring"``, ``"summer"``, ``"fall"`` or ``"winter"`` (vegetation vigour).

    Returns:
        A dict of numpy arrays:

        * ``"s2_cloudy"``: (13, H, W) uint16 DN, the cloudy acquisition;
        * ``"s2"``: (13, H, W) uint16 DN, the cloud-free target (an earlier date: a few fields
          differ, see :func:`make_scene` notes in the module docstring);
        * ``"s1"``: (2, H, W) float32 VV, VH backscatter in dB;
        * ``"cloud"``: (H, W) bool, cloud opacity >= :data:`CLOUD_VISIBILITY` (thick or thin);
        * ``"shadow"``: (H, W) bool, clear pixels shaded by a cloud (opacity >= 0.3);
        * ``"cloud_opacity"``: (H, W) float32 opacity in [0, 1];
        * ``"landcover"``: (H, W) uint8 index into :data:`LANDCOVER_CLASSES` (of the target).
    """
    if height < 1 or width < 1:
        raise ValueError(f"scene size must be positive, got {height} x {width}")
    if season not in _SEASON_VEG_NIR:
        raise ValueError(f"unknown season {season!r}")
    rng = np.random.default_rng(seed)
    shape = (height, width)
    cover = float(rng.uniform(0.0, 1.0)) if cloud_cover is None else float(cloud_cover)
    if not 0.0 <= cover <= 1.0:
        raise ValueError(f"cloud_cover must be in [0, 1], got {cloud_cover}")

    lc, fields = _landcover(shape, rng)
    spectra = _scene_spectra(rng, season)
    fine = fractal_noise(shape, rng, 1.6)
    coarse = fractal_noise(shape, rng, 3.0)
    blocks_small = rng.standard_normal(((height + 3) // 4, (width + 3) // 4)).astype(np.float32)
    blocks = np.repeat(np.repeat(blocks_small, 4, 0), 4, 1)[:height, :width]
    n_fields = int(fields.max()) + 1
    field_gain = rng.normal(0.0, 0.07, n_fields).astype(np.float32)
    texture = (fine, coarse, blocks)

    target = _ground_reflectance(lc, fields, texture, field_gain, spectra)
    ground_c = _changed_ground(lc, fields, texture, field_gain, spectra, rng)
    alpha, alpha_sh, bright = _cloud_fields(shape, rng, cover)
    cloudy = _clouded(ground_c, alpha, alpha_sh, bright, rng)

    s1 = _sar(lc, fields, rng, CLASS_SAR_DB + rng.normal(0, 0.4, (1, 2)).astype(np.float32),
              coarse, blocks, field_gain)  # fmt: skip

    cloud = alpha >= CLOUD_VISIBILITY
    return {
        "s2_cloudy": _to_dn(cloudy, rng),
        "s2": _to_dn(target, rng),
        "s1": s1,
        "cloud": cloud,
        "shadow": (alpha_sh >= SHADOW_VISIBILITY) & ~cloud,
        "cloud_opacity": alpha.astype(np.float32),
        "landcover": lc.astype(np.uint8),
    }


# --------------------------------------------------------------------------- dataset writer
def roi_plan(rois: int) -> list[tuple[str, int, str]]:
    """The (season, ROI, split) of each ROI :func:`generate_dataset` writes, in order.

    Every block of eight ROIs holds two test ROIs, one val ROI and five train ROIs spread over the
    four seasons (ROI numbers from the official split lists, so the split logic runs); train ROIs
    include 1 and 10 in spring next to test ROI 106 to exercise exact ROI matching.
    """
    tests = [(s, r) for s in ("spring", "winter", "summer", "fall") for r in TEST_ROIS[s]]
    tests = sorted(tests, key=lambda sr: TEST_ROIS[sr[0]].index(sr[1]))  # alternate seasons
    vals = sorted(((s, r) for s in ("summer", "winter", "fall", "spring") for r in VAL_ROIS[s]),
                  key=lambda sr: VAL_ROIS[sr[0]].index(sr[1]))  # fmt: skip
    reserved = {s: set(TEST_ROIS[s]) | set(VAL_ROIS[s]) for s in SEASONS}
    train_candidates = {
        s: [r for r in (1, 10, 2, 24, 33, 45, 57, 69, 88, 91, 99, 101, 111, 120, 131, 146)
            if r not in reserved[s]]
        for s in SEASONS
    }  # fmt: skip
    pattern = ["test", "val", "train", "test", "train", "train", "train", "train"]
    train_seasons = ["fall", "spring", "summer", "winter", "spring"]
    plan: list[tuple[str, int, str]] = []
    counters = {"test": 0, "val": 0, "train": 0}
    used: set[tuple[str, int]] = set()
    for i in range(rois):
        kind = pattern[i % 8]
        if kind == "test" and counters["test"] >= len(tests):
            kind = "train"
        if kind == "val" and counters["val"] >= len(vals):
            kind = "train"
        if kind == "test":
            season, roi = tests[counters["test"]]
        elif kind == "val":
            season, roi = vals[counters["val"]]
        else:
            j = counters["train"]
            season = train_seasons[j % len(train_seasons)]
            cands = [r for r in train_candidates[season] if (season, r) not in used]
            roi = cands[0] if cands else 1000 + j
        counters[kind] += 1
        used.add((season, roi))
        plan.append((season, roi, kind))
    return plan


def _grid(patches: int) -> tuple[int, int]:
    cols = max(1, math.ceil(math.sqrt(patches)))
    rows = max(1, math.ceil(patches / cols))
    return rows, cols


def _write(
    path: Path, data: np.ndarray, crs: str, transform: Affine, compress: str | None = None
) -> None:
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "interleave": "pixel",
    }
    if compress:
        profile.update(compress=compress, predictor=2)
    with atomic_output(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.update_tags(DSEN2CR_SYNTHETIC="1")  # tells predict the input is not real
            dst.write(data)
        verify_written(tmp, path)


def generate_dataset(
    out: str | os.PathLike[str],
    rois: int = 8,
    patches: int = 32,
    size: int = 256,
    seed: int = 0,
    progress: bool = True,
    compress: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic SEN12MS-CR in the published layout.

    Each ROI is one scene (:func:`make_scene`) on a UTM grid with 10 m pixels, cut into ``patches``
    patches of ``size`` x ``size`` with stride ``size // 2`` (128 px for 256 px patches, as in the
    real dataset), numbered ``p1 ...`` row by row. ROI cloud cover is spread from 0 to 100 %;
    within an ROI the large-scale cloud structure gives clear, partly cloudy and overcast patches.
    ROIs follow :func:`roi_plan` (test and val ROIs first, all four seasons).

    Args:
        out: output root folder (created).
        rois: number of ROIs.
        patches: patches per ROI.
        size: patch size in pixels.
        seed: random seed; the same arguments give the same files.
        progress: show a progress bar.
        compress: GeoTIFF compression (e.g. ``"zstd"``, ``"deflate"``); default none, like the
            published files and fastest (a 256 px triplet is 3.9 MB uncompressed, 2.8 MB zstd).
        overwrite: write into ``out`` even if it is a folder that is not empty (files and
            folders of the same names are replaced). The patches appear only when all are
            written: a failed run (a full disk) leaves none.

    Returns:
        The output root ``Path``.
    """
    for option, value, low in (("rois", rois, 1), ("patches", patches, 1), ("size", size, 8)):
        if value < low:
            raise OptionError(option, f"must be >= {low}, got {value}")
    root = guard_outputs({"out": out}, overwrite=overwrite, folders=["out"])["out"]
    with atomic_folder(root) as staging:  # a failed run leaves no patch behind
        _write_rois(staging, rois, patches, size, seed, progress, compress)
        marker = {"dataset": "synthetic SEN12MS-CR (dsen2cr synth-data)", "rois": rois,
                  "patches": patches, "size": size, "seed": seed}  # fmt: skip
        (staging / SYNTHETIC_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return root


def is_synthetic(root_or_file: str | os.PathLike[str]) -> bool:
    """Whether a dataset root, or a raster file, was made by :func:`generate_dataset` (the root
    holds :data:`SYNTHETIC_MARKER`; each patch carries the ``DSEN2CR_SYNTHETIC`` tag)."""
    p = Path(root_or_file)
    if p.is_dir():
        return (p / SYNTHETIC_MARKER).is_file()
    try:
        with no_georef_warning(), rasterio.open(p) as src:
            return src.tags().get("DSEN2CR_SYNTHETIC") == "1"
    except (rasterio.errors.RasterioError, OSError):
        return False


def _write_rois(root: Path, rois: int, patches: int, size: int, seed: int, progress: bool,
                compress: str | None) -> None:  # fmt: skip
    """The ROIs of :func:`generate_dataset`, written into ``root``."""
    stride = max(1, size // 2)
    rows, cols = _grid(patches)
    height = (rows - 1) * stride + size
    width = (cols - 1) * stride + size
    plan = roi_plan(rois)
    rng = np.random.default_rng(seed)
    covers = np.linspace(0.05, 0.9, rois) if rois > 1 else np.array([0.5])
    covers = rng.permutation(covers)
    for i, (season, roi, _split) in enumerate(tqdm(plan, desc="synthetic ROIs",
                                                  disable=not progress, unit="roi")):  # fmt: skip
        scene_seed = int(rng.integers(0, 2**31))
        scene = make_scene(height, width, seed=scene_seed, cloud_cover=float(covers[i]),
                           season=season)  # fmt: skip
        zone = int(rng.integers(10, 60))
        crs = f"EPSG:{32600 + zone}"
        x0 = 300000.0 + 10.0 * int(rng.integers(0, 30000))
        y0 = 1000000.0 + 10.0 * int(rng.integers(0, 500000))
        sfull = SEASONS[season]
        folders = {
            "s1": root / sfull / f"{sfull}_s1" / f"s1_{roi}",
            "s2": root / sfull / f"{sfull}_s2" / f"s2_{roi}",
            "s2_cloudy": root / sfull / f"{sfull}_s2_cloudy" / f"s2_cloudy_{roi}",
        }
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        for p in range(patches):
            r, c = divmod(p, cols)
            ys, xs = r * stride, c * stride
            window = (slice(None), slice(ys, ys + size), slice(xs, xs + size))
            transform = from_origin(x0 + 10.0 * xs, y0 - 10.0 * ys, 10.0, 10.0)
            for mod in ("s1", "s2", "s2_cloudy"):
                name = f"{sfull}_{mod}_{roi}_p{p + 1}.tif"
                _write(folders[mod] / name, scene[mod][window], crs, transform, compress)


# --------------------------------------------------------------------------- preview
def preview_grid(
    root_or_paths: str | os.PathLike[str] | Sequence[PathTriplet],
    out_png: str | os.PathLike[str],
    n: int = 4,
    overwrite: bool = False,
) -> Path:
    """Write a PNG grid of a few triplets: cloudy RGB, SAR, cloud-free target RGB, detected mask.

    From a dataset root, the ``n`` triplets are chosen to span cloud cover from about 10 to 80 %
    (among up to 48 patches spread over the dataset, by detected cloud-or-shadow fraction).

    Args:
        root_or_paths: a SEN12MS-CR root folder, or a sequence of ``(s1, s2, s2_cloudy)`` paths.
        out_png: output PNG path (written atomically; an existing file only with ``overwrite``).
        n: number of rows.
        overwrite: replace ``out_png`` if it exists.

    Returns:
        The PNG path.
    """
    inputs = [root_or_paths] if isinstance(root_or_paths, (str, os.PathLike)) else []
    guard_outputs({"preview": out_png}, inputs, overwrite=overwrite)
    if isinstance(root_or_paths, (str, os.PathLike)):
        index = build_index(root_or_paths)
        triplets: list[PathTriplet] = [(t.s1, t.s2, t.s2_cloudy) for t in index.triplets]
        if not triplets:
            raise DataError(f"no complete SEN12MS-CR triplet under {root_or_paths}")
        step = max(1, len(triplets) // 48)
        candidates = triplets[::step][:48]
        scored = []
        for trip in candidates:
            cloudy, _ = read_raster(trip[2], 13, "S2 cloudy image")
            mask = cloud_shadow_mask(cloudy)
            scored.append((float((mask != 0).mean()), trip, mask, cloudy))
        targets = np.linspace(0.1, 0.8, n) if n > 1 else np.array([0.4])
        picks: list[int] = []
        for target in targets[: len(scored)]:
            free = [i for i in range(len(scored)) if i not in picks]
            picks.append(min(free, key=lambda i: abs(scored[i][0] - target)))
        picks.sort(key=lambda i: scored[i][0])
        rows = [scored[i][1:] for i in picks]
    else:
        rows = []
        for trip in list(root_or_paths)[:n]:
            cloudy, _ = read_raster(trip[2], 13, "S2 cloudy image")
            rows.append((trip, cloud_shadow_mask(cloudy), cloudy))
    fig, axes = new_figure(len(rows), 4)
    titles = ("cloudy S2", "S1", "cloud-free S2 target", "cloud / shadow")
    captions = (rgb_caption(), sar_caption("\n"), rgb_caption(), mask_caption())
    for i, ((s1p, s2p, s2cp), mask, s2c) in enumerate(rows):
        s1, _ = read_raster(s1p, 2, "S1 image")
        s2, _ = read_raster(s2p, 13, "S2 image")
        pics = (rgb_composite(s2c), sar_composite(s1), rgb_composite(s2), mask_composite(mask))
        for j, pic in enumerate(pics):
            image_panel(axes[i, j], pic, titles[j] if i == 0 else "", captions[j],
                        interpolation="nearest")  # fmt: skip
        axes[i, 0].set_ylabel(Path(s2cp).stem.replace("_s2_cloudy", ""), fontsize=7)
    save_figure(fig, out_png)
    return Path(out_png)
