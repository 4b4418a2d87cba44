"""Each metric protocol against hand-computed values and independent references.

The references here are written from the peers' definitions (UnCRtainTS ``img_metrics`` and
``pytorch_ssim``; GLF-CR ``metrics.py`` and its test crop), with ``F.conv2d`` for SSIM: a
different code path from the package's banded matrix products.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dsen2cr.metrics import (
    PAPER_TABLE1,
    PROTOCOLS,
    MetricAccumulator,
    MixedProtocolsError,
    band_nrmse,
    crop_box,
    describe_protocol,
    format_table1,
    get_protocol,
    image_metrics,
    protocol_names,
    ssim,
)


def gauss(window: int, sigma: float, center: float) -> np.ndarray:
    g = np.array([math.exp(-((x - center) ** 2) / (2 * sigma**2)) for x in range(window)])
    return g / g.sum()


def peer_ssim(a: np.ndarray, b: np.ndarray, center: float) -> float:
    """pytorch_ssim / GLF-CR SSIM: per-band 11 x 11 window, zero padding 5, mean of the map."""
    g = gauss(11, 1.5, center)
    win = torch.from_numpy(np.outer(g, g))[None, None].expand(a.shape[0], 1, 11, 11)
    x, y = torch.from_numpy(a)[None], torch.from_numpy(b)[None]

    def conv(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, win, padding=5, groups=a.shape[0])

    mx, my = conv(x), conv(y)
    sxx, syy, sxy = conv(x * x) - mx**2, conv(y * y) - my**2, conv(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(m.mean())


def peer_img_metrics(target: np.ndarray, pred: np.ndarray, center: float) -> dict[str, float]:
    """UnCRtainTS img_metrics (target and pred already clipped as its loader does)."""
    t, p = torch.from_numpy(target), torch.from_numpy(pred)
    rmse = torch.sqrt(torch.mean((t - p) ** 2))
    mat = (t * p).sum(0) / torch.sqrt((t * t).sum(0)) / torch.sqrt((p * p).sum(0))
    sam = torch.mean(torch.acos(torch.clamp(mat, -1, 1)) * 180 / math.pi)
    return {
        "target_rmse": float(rmse),
        "target_mae": float(torch.mean(torch.abs(t - p))),
        "target_psnr": float(20 * torch.log10(1 / rmse)),
        "target_sam": float(sam),
        "target_ssim": peer_ssim(target, pred, center),
    }


def pair(seed: int, shape=(13, 14, 12)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.02, 0.6, shape)
    pred = np.clip(target + rng.normal(0, 0.04, shape), 0.001, None)
    return pred, target


def test_listed_and_described():
    assert protocol_names()[0] == "dsen2cr"
    assert set(protocol_names()) == set(PROTOCOLS) >= {"dsen2cr", "uncrtaints", "glf-cr"}
    for name in PROTOCOLS:
        text = describe_protocol(name)
        for word in ("crop", "clipping", "PSNR", "SSIM", "SAM", "averaging", "reference"):
            assert word in text, (name, word)
        d = get_protocol(name).to_dict()
        assert d["name"] == name and isinstance(d["psnr_perfect"], (str, float))
    assert get_protocol(None).name == "dsen2cr"
    assert get_protocol("GLF-CR") is PROTOCOLS["glf-cr"]
    with pytest.raises(ValueError, match="known: dsen2cr"):
        get_protocol("nope")


@pytest.mark.parametrize("name,center", [("uncrtaints", 5.0), ("glf-cr", 5.5)])
def test_peer_protocols_match_peer_definitions(name, center):
    pred, target = pair(1)
    got = image_metrics(pred, target, protocol=name)
    want = peer_img_metrics(target, pred, center)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-10, abs=1e-12), k


def test_perfect_image_psnr_per_protocol():
    _, target = pair(2)
    assert math.isnan(image_metrics(target, target)["target_psnr"])
    assert image_metrics(target, target, protocol="uncrtaints")["target_psnr"] == math.inf
    assert image_metrics(target, target, protocol="glf-cr")["target_psnr"] == 100.0
    c = 0.02
    for name in PROTOCOLS:  # away from perfect, every protocol has the same PSNR formula
        got = image_metrics(target + c, target, protocol=name)["target_psnr"]
        assert got == pytest.approx(20 * math.log10(1 / c), rel=1e-12), name


def test_zero_norm_spectrum_per_protocol():
    pred, target = pair(3, (4, 12, 12))
    pred[:, 2, 3] = 0.0  # one all-zero predicted spectrum
    dsen = image_metrics(pred, target)["target_sam"]
    rest = np.ones((12, 12), bool)
    rest[2, 3] = False
    p, t = pred[:, rest].T, target[:, rest].T
    cos = (p * t).sum(1) / np.linalg.norm(p, axis=1) / np.linalg.norm(t, axis=1)
    assert dsen == pytest.approx(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean(), rel=1e-12)
    for name in ("uncrtaints", "glf-cr"):  # 0 / 0 in the peers' code: the image has no SAM
        assert math.isnan(image_metrics(pred, target, protocol=name)["target_sam"])
    # the reprod / recon regions follow the same rule: only the region holding the pixel
    cloudy = target + 0.1
    mask = np.zeros((12, 12), np.uint8)
    mask[:6] = 1  # the zero-norm pixel (row 2) is under the cloud
    m = image_metrics(pred, target, cloudy, mask, protocol="uncrtaints")
    assert math.isnan(m["recon_sam"]) and math.isfinite(m["reprod_sam"])


def test_single_pixel_ssim_by_hand():
    """A 1 x 1 image: with zero padding only the window's own pixel holds data."""
    a, b = 0.5, 0.25
    c1, c2 = 0.01**2, 0.03**2
    for name, center in (("uncrtaints", 5.0), ("glf-cr", 5.5)):
        g = gauss(11, 1.5, center)
        w = g[5] ** 2  # the weight of the window's (5, 5) cell, where the pixel sits
        mx, my = w * a, w * b
        vx, vy, vxy = w * a * a - mx**2, w * b * b - my**2, w * a * b - mx * my
        want = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        got = ssim(np.full((1, 1, 1), a), np.full((1, 1, 1), b), protocol=name)
        assert got == pytest.approx(want, rel=1e-12), name
    assert math.isnan(ssim(np.full((1, 1, 1), a), np.full((1, 1, 1), b)))  # valid: no position
    # GLF-CR's peak sits between cells 5 and 6: an asymmetric kernel
    g = gauss(11, 1.5, 5.5)
    assert g[5] == pytest.approx(g[6]) and g[0] < g[10]


def test_ssim_padding_and_offset_change_the_value():
    pred, target = pair(4, (3, 16, 16))
    valid = ssim(pred, target)
    zeros = ssim(pred, target, protocol="uncrtaints")
    shifted = ssim(pred, target, protocol="glf-cr")
    assert len({round(v, 9) for v in (valid, zeros, shifted)}) == 3
    assert zeros == pytest.approx(peer_ssim(target, pred, 5.0), rel=1e-10)
    assert shifted == pytest.approx(peer_ssim(target, pred, 5.5), rel=1e-10)


def test_glf_cr_centre_crop():
    assert crop_box(256, 256, "glf-cr") == (64, 64, 128, 128)
    assert crop_box(255, 300, "glf-cr") == (63, 86, 128, 128)
    assert crop_box(100, 256, "glf-cr") == (0, 64, 100, 128)  # a short axis is kept whole
    assert crop_box(256, 256) == (0, 0, 256, 256)
    rng = np.random.default_rng(5)
    target = rng.uniform(0.05, 0.5, (13, 256, 256))
    pred = target.copy()
    pred[:, :64] += 0.1  # errors only outside the centre crop
    pred[:, :, 200:] += 0.1
    glf = image_metrics(pred, target, protocol="glf-cr")
    assert glf["target_mae"] == 0 and glf["target_psnr"] == 100.0
    assert glf["target_ssim"] == pytest.approx(1.0, abs=1e-12)
    # 0.1 on 64 rows and on 56 columns (0.2 where they cross): the whole image's MAE
    whole = 0.1 * (64 * 256 + 256 * 56) / 256**2
    assert image_metrics(pred, target)["target_mae"] == pytest.approx(whole, rel=1e-12)
    inner = pred[:, 64:192, 64:192]
    assert band_nrmse(pred, target, protocol="glf-cr") == pytest.approx(
        band_nrmse(inner, target[:, 64:192, 64:192]), abs=0
    )


def test_clipping_of_target_and_cloudy_not_prediction():
    target = np.full((13, 12, 12), 1.2)  # 12000 DN, above the peers' 10000 clip
    target[:, :6] = -0.01  # below 0
    pred = np.full((13, 12, 12), 1.0)
    pred[:, :6] = 0.0
    dsen = image_metrics(pred, target)
    assert dsen["target_mae"] == pytest.approx((0.2 + 0.01) / 2, rel=1e-12)
    unc = image_metrics(pred, target, protocol="uncrtaints")
    assert unc["target_mae"] == 0.0 and unc["target_psnr"] == math.inf
    over = np.full((13, 12, 12), 1.5)  # the prediction is not clipped
    assert image_metrics(over, target, protocol="uncrtaints")["target_mae"] == pytest.approx(
        (0.5 + 1.5) / 2, rel=1e-12
    )
    # the cloudy input is clipped too (reprod compares against it)
    mask = np.zeros((12, 12), np.uint8)
    m = image_metrics(pred, target, target, mask, protocol="glf-cr")
    assert m["reprod_mae"] == 0.0


def test_averaging_per_protocol():
    finite = MetricAccumulator(averaging=get_protocol("dsen2cr").averaging)
    skipping = MetricAccumulator(averaging=get_protocol("uncrtaints").averaging)
    for acc in (finite, skipping):
        acc.update({"psnr": np.array([math.inf, 20.0, math.nan, 30.0])})
    f, s = finite.compute(), skipping.compute()
    assert f["psnr"] == 25.0 and f["psnr_count"] == 2 and f["psnr_undefined"] == 2
    assert s["psnr"] == math.inf and s["psnr_count"] == 3 and s["psnr_undefined"] == 1
    with pytest.raises(ValueError, match="merge"):
        finite.merge(skipping)
    with pytest.raises(ValueError, match="averaging"):
        MetricAccumulator(averaging="mean")  # type: ignore[arg-type]


def test_tables_refuse_mixed_protocols():
    rows = {"ours": {"target_mae": 0.02, "protocol": "uncrtaints"}, **PAPER_TABLE1}
    with pytest.raises(MixedProtocolsError, match=r"dsen2cr: DSen2-CR on CARL.*uncrtaints: ours"):
        format_table1(rows)
    ok = format_table1({"a": {"target_psnr": math.inf, "protocol": {"name": "uncrtaints"}},
                        "b": {"target_psnr": 30.0, "protocol": "uncrtaints"}})  # fmt: skip
    assert "| a | n/a | n/a | n/a | n/a | inf |" in ok
