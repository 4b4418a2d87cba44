"""SceneScore: strip-wise scene metrics equal the image metrics of the covered pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsen2cr.metrics import METRIC_KEYS, SceneScore, band_nrmse, image_metrics


def scene(seed: int = 0, h: int = 41, w: int = 37, c: int = 13):
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.02, 0.6, (c, h, w))
    pred = np.clip(target + rng.normal(0, 0.05, target.shape), 0.001, None)
    cloudy = target + rng.uniform(0, 0.4, target.shape)
    mask = (rng.random((h, w)) < 0.35).astype(np.int8)
    return pred, target, cloudy, mask


def score_in_strips(pred, target, cloudy, mask, covered, rows: int, protocol=None) -> dict:
    s = SceneScore(protocol=protocol, bands=pred.shape[0])
    h = pred.shape[1]
    halo = 5
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        a, b = max(0, r0 - halo), min(h, r1 + halo)
        s.update(pred[:, a:b], target[:, a:b], cloudy[:, a:b], mask[a:b], covered[a:b],
                 owned=(r0 - a, r1 - a))  # fmt: skip
    return s.compute()


@pytest.mark.parametrize("rows", [41, 7, 1])
def test_rectangle_of_coverage_equals_image_metrics(rows):
    pred, target, cloudy, mask = scene()
    covered = np.zeros(mask.shape, bool)
    covered[4:33, 3:30] = True  # nodata around a rectangle
    got = score_in_strips(pred, target, cloudy, mask, covered, rows)
    box = (slice(None), slice(4, 33), slice(3, 30))
    want = image_metrics(pred[box], target[box], cloudy[box], mask[box[1:]])
    for k in METRIC_KEYS:
        assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), k
    np.testing.assert_allclose(got["band_nrmse"], band_nrmse(pred[box], target[box]), rtol=1e-9)
    assert got["covered_pixels"] == 29 * 27
    assert got["ssim_positions"] == 19 * 17
    assert got["cloud_fraction"] == pytest.approx(mask[box[1:]].mean())


def test_irregular_coverage_pixel_metrics():
    pred, target, cloudy, mask = scene(1)
    covered = np.ones(mask.shape, bool)
    covered[:9, :12] = False  # a missing patch corner
    covered[20, 20] = False
    got = score_in_strips(pred, target, cloudy, mask, covered, 8)
    d = (pred - target)[:, covered]
    assert got["target_mae"] == pytest.approx(np.abs(d).mean(), rel=1e-12)
    assert got["target_rmse"] == pytest.approx(np.sqrt((d**2).mean()), rel=1e-12)
    clear = covered & (mask == 0)
    assert got["reprod_mae"] == pytest.approx(np.abs(pred - cloudy)[:, clear].mean(), rel=1e-12)
    # SSIM counts only the windows that lie wholly on covered pixels
    ok = np.ones((31, 27), bool)
    for i in range(31):
        for j in range(27):
            ok[i, j] = covered[i : i + 11, j : j + 11].all()
    assert got["ssim_positions"] == int(ok.sum())


def test_perfect_and_empty_scene_per_protocol():
    _, target, cloudy, mask = scene(2, 20, 20)
    covered = np.ones(mask.shape, bool)
    for protocol, psnr in (("dsen2cr", math.nan), ("uncrtaints", math.inf), ("glf-cr", 100.0)):
        got = score_in_strips(target, target, cloudy, mask, covered, 6, protocol)
        assert got["target_mae"] == 0
        assert (math.isnan(got["target_psnr"]) if math.isnan(psnr) else got["target_psnr"] == psnr)
    none = score_in_strips(target, target, cloudy, mask, np.zeros_like(covered), 6)
    assert none["covered_pixels"] == 0 and math.isnan(none["target_mae"])
    assert math.isnan(none["target_ssim"]) and math.isnan(none["cloud_fraction"])


def test_zero_norm_rule_and_clipping_in_scenes():
    pred, target, cloudy, mask = scene(3, 16, 16)
    pred[:, 3, 3] = 0.0
    covered = np.ones(mask.shape, bool)
    assert math.isfinite(score_in_strips(pred, target, cloudy, mask, covered, 16)["target_sam"])
    assert math.isnan(
        score_in_strips(pred, target, cloudy, mask, covered, 16, "uncrtaints")["target_sam"]
    )
    high = np.full((13, 16, 16), 1.3)
    clipped = score_in_strips(np.ones_like(high), high, high, mask, covered, 5, "uncrtaints")
    assert clipped["target_mae"] == 0.0
    with pytest.raises(ValueError, match="owned"):
        SceneScore().update(pred, target, cloudy, mask, covered, owned=(3, 40))
