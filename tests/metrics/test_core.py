"""Tests of dsen2cr.metrics against independent numpy / scikit-image computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dsen2cr.io import read_raster
from dsen2cr.metrics import (
    METRIC_KEYS,
    PAPER_TABLE1,
    RECON_KEYS,
    REPROD_KEYS,
    TABLE1_COLUMNS,
    TARGET_KEYS,
    MetricAccumulator,
    band_nrmse,
    batch_band_nrmse,
    batch_metrics,
    format_table1,
    image_metrics,
    ssim,
)
from tests.helpers import TRIPLETS, needs_cuda, needs_files

# ------------------------------------------------------------------ independent references


def ref_errors(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> dict:
    """MAE, RMSE, SAM (degrees) of a vs b over the True pixels of region, plain numpy."""
    if region is None:
        region = np.ones(a.shape[1:], dtype=bool)
    pa = a[:, region].T.astype(np.float64)  # (N, C)
    pb = b[:, region].T.astype(np.float64)
    if pa.shape[0] == 0:
        return {"mae": math.nan, "rmse": math.nan, "sam": math.nan}
    d = pa - pb
    norm_a = np.linalg.norm(pa, axis=1)
    norm_b = np.linalg.norm(pb, axis=1)
    ok = (norm_a > 0) & (norm_b > 0)
    cos = np.sum(pa[ok] * pb[ok], axis=1) / (norm_a[ok] * norm_b[ok])
    angles = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return {
        "mae": float(np.mean(np.abs(d))),
        "rmse": float(np.sqrt(np.mean(d**2))),
        "sam": float(np.mean(angles)) if angles.size else math.nan,
    }


def ref_ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            a.astype(np.float64),
            b.astype(np.float64),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=0,
        )
    )


def ref_metrics(pred, target, cloudy=None, mask=None, with_ssim: bool = True) -> dict:
    t = ref_errors(pred, target)
    out = {
        "target_mae": t["mae"],
        "target_rmse": t["rmse"],
        "target_psnr": 20 * math.log10(1 / t["rmse"]) if t["rmse"] > 0 else math.nan,
        "target_sam": t["sam"],
    }
    if with_ssim:
        out["target_ssim"] = ref_ssim(pred, target)
    if mask is not None:
        cloud = np.asarray(mask).reshape(pred.shape[1:]) != 0
        for name, other, region in (("reprod", cloudy, ~cloud), ("recon", target, cloud)):
            r = ref_errors(pred, other, region)
            for k in ("mae", "rmse", "sam"):
                out[f"{name}_{k}"] = r[k]
    return out


def ref_nrmse(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    out = []
    for p, t in zip(pred, target, strict=True):
        rng = t.max() - t.min()
        rmse = math.sqrt(float(np.mean((p.astype(np.float64) - t) ** 2)))
        out.append(100 * rmse / rng if rng > 0 else math.nan)
    return np.array(out)


def assert_metrics_close(got: dict, want: dict, atol: float = 1e-9) -> None:
    assert set(got) == set(want)
    for k in want:
        if math.isnan(want[k]):
            assert math.isnan(got[k]), (k, got[k])
        else:
            assert got[k] == pytest.approx(want[k], rel=1e-9, abs=atol), (k, got[k], want[k])


def random_triplet(rng: np.random.Generator, h: int = 24, w: int = 20, c: int = 13):
    target = rng.uniform(0.0, 0.6, (c, h, w))
    pred = np.clip(target + rng.normal(0, 0.05, target.shape), 0, None)
    cloudy = target + rng.uniform(0.0, 0.5, target.shape)
    mask = (rng.random((h, w)) < 0.4).astype(np.uint8)
    return pred, target, cloudy, mask


# ------------------------------------------------------------------ single-image metrics


@pytest.mark.parametrize("shape", [(13, 24, 20), (13, 11, 11), (4, 31, 17)])
def test_image_metrics_match_independent(shape):
    rng = np.random.default_rng(sum(shape))
    pred, target, cloudy, mask = random_triplet(rng, shape[1], shape[2], shape[0])
    got = image_metrics(pred, target, cloudy, mask)
    assert list(got) == list(METRIC_KEYS)
    assert_metrics_close(got, ref_metrics(pred, target, cloudy, mask))
    only_target = image_metrics(pred, target)
    assert list(only_target) == list(TARGET_KEYS)
    assert_metrics_close(only_target, ref_metrics(pred, target))


def test_ssim_matches_skimage_including_tiles():
    rng = np.random.default_rng(3)
    # 300 x 280 gives 290 x 270 window positions: more than one 256-position tile per axis.
    a = rng.random((2, 300, 280))
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    assert ssim(a, b) == pytest.approx(ref_ssim(a, b), abs=1e-12)
    smooth = np.cumsum(rng.random((3, 40, 33)), axis=1) / 40
    assert ssim(smooth, smooth * 0.8 + 0.05) == pytest.approx(
        ref_ssim(smooth, smooth * 0.8 + 0.05), abs=1e-12
    )


def test_known_values():
    rng = np.random.default_rng(1)
    t = rng.uniform(0.05, 0.5, (13, 16, 16))
    same = image_metrics(t, t.copy())
    assert same["target_mae"] == 0 and same["target_rmse"] == 0
    assert same["target_sam"] == pytest.approx(0.0, abs=1e-6)
    assert same["target_ssim"] == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(same["target_psnr"])  # +inf mathematically: reported as undefined
    c = 0.0125
    off = image_metrics(t + c, t)
    assert off["target_mae"] == pytest.approx(c, rel=1e-12)
    assert off["target_rmse"] == pytest.approx(c, rel=1e-12)
    assert off["target_psnr"] == pytest.approx(20 * math.log10(1 / c), rel=1e-12)


def test_sam_scaled_and_orthogonal_spectra():
    rng = np.random.default_rng(2)
    t = rng.uniform(0.05, 0.5, (13, 12, 12))
    assert image_metrics(t * 1.7, t)["target_sam"] == pytest.approx(0.0, abs=1e-5)
    a = np.zeros((13, 12, 12))
    b = np.zeros((13, 12, 12))
    a[0] = 0.3
    b[1] = 0.2
    assert image_metrics(a, b)["target_sam"] == pytest.approx(90.0, abs=1e-12)
    assert image_metrics(a, -a)["target_sam"] == pytest.approx(180.0, abs=1e-12)


def test_regions_respect_mask():
    rng = np.random.default_rng(4)
    pred, target, cloudy, mask = random_triplet(rng)
    cloud = mask.astype(bool)
    base = image_metrics(pred, target, cloudy, mask)
    # Changing the cloudy input under the clouds leaves reprod unchanged.
    cloudy2 = cloudy.copy()
    cloudy2[:, cloud] += 0.3
    m2 = image_metrics(pred, target, cloudy2, mask)
    for k in REPROD_KEYS + RECON_KEYS:
        assert m2[k] == pytest.approx(base[k], rel=1e-12)
    # A prediction equal to the target under the clouds has zero recon error.
    pred2 = pred.copy()
    pred2[:, cloud] = target[:, cloud]
    m3 = image_metrics(pred2, target, cloudy, mask)
    assert m3["recon_mae"] == 0 and m3["recon_rmse"] == 0
    assert m3["recon_sam"] == pytest.approx(0.0, abs=1e-6)
    assert m3["reprod_mae"] == pytest.approx(base["reprod_mae"], rel=1e-12)


def test_empty_and_full_mask_and_mask_forms():
    rng = np.random.default_rng(5)
    pred, target, cloudy, mask = random_triplet(rng)
    empty = image_metrics(pred, target, cloudy, np.zeros_like(mask))
    assert all(math.isnan(empty[k]) for k in RECON_KEYS)
    assert all(math.isfinite(empty[k]) for k in REPROD_KEYS + TARGET_KEYS)
    full = image_metrics(pred, target, cloudy, np.ones_like(mask))
    assert all(math.isnan(full[k]) for k in REPROD_KEYS)
    assert all(math.isfinite(full[k]) for k in RECON_KEYS)
    # recon over the whole image equals the target metrics.
    assert full["recon_mae"] == pytest.approx(full["target_mae"], rel=1e-12)
    base = image_metrics(pred, target, cloudy, mask)
    for form in (mask.astype(bool), mask[None].astype(np.float32), torch.from_numpy(mask)):
        assert_metrics_close(image_metrics(pred, target, cloudy, form), base, atol=1e-12)
    # A tri-state {-1 shadow, 0 clear, 1 cloud} mask counts shadow as cloud-or-shadow.
    tri = mask.astype(np.int8)
    tri[0, :] = -1
    binary = (tri != 0).astype(np.uint8)
    assert_metrics_close(
        image_metrics(pred, target, cloudy, tri), image_metrics(pred, target, cloudy, binary)
    )
    with pytest.raises(ValueError, match="mask"):
        image_metrics(pred, target, cloudy, mask[:-1])
    with pytest.raises(ValueError, match="both cloudy and mask"):
        image_metrics(pred, target, cloudy)


def test_zero_norm_spectra_are_excluded():
    rng = np.random.default_rng(6)
    pred, target, cloudy, mask = random_triplet(rng)
    pred[:, :3, :] = 0.0  # zero-norm prediction spectra
    target[:, 5, 5] = 0.0
    got = image_metrics(pred, target, cloudy, mask)
    assert_metrics_close(got, ref_metrics(pred, target, cloudy, mask))
    zeros = image_metrics(np.zeros_like(pred), target, cloudy, mask)
    assert math.isnan(zeros["target_sam"]) and math.isnan(zeros["recon_sam"])
    assert zeros["target_mae"] == pytest.approx(float(np.mean(target)), rel=1e-12)


def test_small_image_ssim_is_nan():
    rng = np.random.default_rng(7)
    pred, target, cloudy, mask = random_triplet(rng, 10, 30)
    got = image_metrics(pred, target, cloudy, mask)
    assert math.isnan(got["target_ssim"])
    assert math.isfinite(got["target_mae"]) and math.isfinite(got["recon_sam"])


def test_torch_equals_numpy():
    rng = np.random.default_rng(8)
    pred, target, cloudy, mask = random_triplet(rng)
    want = image_metrics(pred, target, cloudy, mask)
    got = image_metrics(*(torch.from_numpy(x) for x in (pred, target, cloudy, mask)))
    assert_metrics_close(got, want, atol=0)
    # float32 inputs are promoted to float64 before any arithmetic.
    f32 = [x.astype(np.float32) for x in (pred, target, cloudy)]
    got32 = image_metrics(*(torch.from_numpy(x) for x in f32), torch.from_numpy(mask))
    assert_metrics_close(got32, image_metrics(*f32, mask), atol=0)


def test_batch_metrics_equal_image_metrics():
    rng = np.random.default_rng(9)
    items = [random_triplet(rng, 20, 26) for _ in range(3)]
    items[1][3][:] = 0  # image 1: no cloud -> recon undefined
    stack = [torch.from_numpy(np.stack([it[i] for it in items])) for i in range(4)]
    stack[3] = stack[3][:, None].bool()  # (B, 1, H, W) bool mask
    got = batch_metrics(*stack)
    assert set(got) == set(METRIC_KEYS)
    for v in got.values():
        assert v.shape == (3,) and v.dtype == torch.float64
    for i, it in enumerate(items):
        assert_metrics_close({k: float(v[i]) for k, v in got.items()}, image_metrics(*it), 1e-12)
    assert torch.isnan(got["recon_mae"][1]) and torch.isfinite(got["recon_mae"][[0, 2]]).all()
    tgt = batch_metrics(stack[0].float(), stack[1].float())
    assert set(tgt) == set(TARGET_KEYS)


@needs_cuda
def test_batch_metrics_on_cuda_equal_cpu():
    rng = np.random.default_rng(12)
    items = [random_triplet(rng, 30, 40) for _ in range(2)]
    stack = [torch.from_numpy(np.stack([it[i] for it in items])).float() for i in range(4)]
    cpu = batch_metrics(*stack)
    gpu = batch_metrics(*(x.cuda() for x in stack))
    acc = MetricAccumulator()
    acc.update(gpu)
    for k in cpu:
        assert gpu[k].device.type == "cuda"
        torch.testing.assert_close(gpu[k].cpu(), cpu[k], rtol=1e-10, atol=1e-12)
    assert acc.compute()["target_mae"] == pytest.approx(float(cpu["target_mae"].mean()))


def test_band_nrmse():
    rng = np.random.default_rng(10)
    pred, target, _, _ = random_triplet(rng)
    target[4] = 0.25  # constant band: zero range -> NaN
    got = band_nrmse(pred, target)
    want = ref_nrmse(pred, target)
    assert got.shape == (13,)
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    assert np.isnan(got[4]) and np.isfinite(np.delete(got, 4)).all()
    batched = band_nrmse(np.stack([pred, target]), np.stack([target, target]))
    assert batched.shape == (2, 13)
    np.testing.assert_allclose(batched[0], want, rtol=1e-12, equal_nan=True)
    t = batch_band_nrmse(torch.from_numpy(pred[None]), torch.from_numpy(target[None]))
    assert isinstance(t, torch.Tensor) and t.shape == (1, 13)
    np.testing.assert_allclose(t[0].numpy(), want, rtol=1e-12, equal_nan=True)


def test_table1_layout():
    assert [c.key for c in TABLE1_COLUMNS if c.part == "a"] == [
        "target_mae", "reprod_mae", "recon_mae", "target_rmse", "target_psnr",
    ]  # fmt: skip
    assert {c.key for c in TABLE1_COLUMNS} <= set(METRIC_KEYS)
    text = format_table1({**PAPER_TABLE1, "partial": {"target_mae": 0.01, "recon_mae": math.nan}})
    lines = text.splitlines()
    assert len(lines) == 2 + len(PAPER_TABLE1) + 1
    assert "| DSen2-CR on CARL | 0.0290 | 0.0204 | 0.0266 | 0.0366 | 28.7 | 8.15 |" in text
    assert lines[-1].startswith("| partial | 0.0100 | n/a | n/a |")


# ------------------------------------------------------------------ accumulator


def test_accumulator_ignores_nan_and_counts():
    acc = MetricAccumulator()
    acc.update({"a": torch.tensor([1.0, math.nan, 3.0]), "b": 2.0})
    acc.update({"a": np.array([math.inf, 5.0]), "b": torch.tensor(math.nan)})
    acc.update({"nrmse": np.array([[1.0, math.nan], [3.0, 4.0]])})
    out = acc.compute()
    assert out["a"] == pytest.approx(3.0) and out["a_count"] == 3 and out["a_undefined"] == 2
    assert out["b"] == 2.0 and out["b_count"] == 1 and out["b_undefined"] == 1
    np.testing.assert_allclose(out["nrmse"], [2.0, 4.0])
    np.testing.assert_array_equal(out["nrmse_count"], [2, 1])
    np.testing.assert_array_equal(out["nrmse_undefined"], [0, 1])
    acc.update({"c": [math.nan]})
    out = acc.compute()
    assert math.isnan(out["c"]) and out["c_count"] == 0 and out["c_undefined"] == 1
    with pytest.raises(ValueError, match="shape"):
        acc.update({"nrmse": np.ones((1, 3))})
    assert acc.sync() is acc  # no process group: a no-op
    assert acc.compute()["a"] == pytest.approx(3.0)


def _metric_batches(n_batches: int = 4, seed: int = 11) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_batches):
        items = [random_triplet(rng, 14, 12) for _ in range(2)]
        if i == 0:
            items[0][3][:] = 0  # an undefined recon value
        stack = [torch.from_numpy(np.stack([it[j] for it in items])) for j in range(4)]
        values = batch_metrics(*stack)
        values["band_nrmse"] = batch_band_nrmse(stack[0], stack[1])
        out.append(values)
    return out


def _assert_results_equal(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, equal_nan=True, err_msg=k)


def test_accumulator_merge_equals_single_and_state_dict():
    batches = _metric_batches()
    single = MetricAccumulator()
    for b in batches:
        single.update(b)
    first, second = MetricAccumulator(), MetricAccumulator()
    for b in batches[:2]:
        first.update(b)
    for b in batches[2:]:
        second.update({k: v for k, v in b.items() if not k.startswith("recon")})
        second.update({k: v for k, v in b.items() if k.startswith("recon")})
    _assert_results_equal(first.merge(second).compute(), single.compute())
    assert single.compute()["recon_mae_undefined"] == 1
    assert single.compute()["target_mae_count"] == 8
    restored = MetricAccumulator()
    restored.load_state_dict(single.state_dict())
    _assert_results_equal(restored.compute(), single.compute())


def _distributed_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        batches = _metric_batches()
        acc = MetricAccumulator()
        for b in batches[rank::world]:
            acc.update(b)
        if rank == 0:  # a key only one rank has seen
            acc.update({"rank0_only": torch.tensor([1.0, math.nan])})
        acc.sync()
        acc.sync()  # second call: no-op, no double counting
        torch.save(acc.compute(), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_accumulator_sync_across_processes(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(
        _distributed_worker,
        args=(2, str(tmp_path / "init"), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    single = MetricAccumulator()
    for b in _metric_batches():
        single.update(b)
    single.update({"rank0_only": torch.tensor([1.0, math.nan])})
    want = single.compute()
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        _assert_results_equal(got, want)


# ------------------------------------------------------------------ real data


@pytest.mark.realdata
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@needs_files(TRIPLETS / "746_s2.tif", TRIPLETS / "4287_s2.tif", TRIPLETS / "316_s2.tif")
@pytest.mark.parametrize("patch", ["746", "4287", "316"])
def test_real_triplets_match_independent(patch):
    cloudy = read_raster(TRIPLETS / f"{patch}_s2_cloudy.tif", 13)[0].astype(np.float64) / 1e4
    target = read_raster(TRIPLETS / f"{patch}_s2.tif", 13)[0].astype(np.float64) / 1e4
    got = image_metrics(cloudy, target)
    assert_metrics_close(got, ref_metrics(cloudy, target))  # SSIM against scikit-image
    # A blended prediction with a simple brightness mask exercises the reprod/recon regions.
    mask = (cloudy[1] > 0.2).astype(np.uint8)
    pred = 0.5 * (cloudy + target)
    got = image_metrics(pred, target, cloudy, mask)
    del got["target_ssim"]
    assert_metrics_close(got, ref_metrics(pred, target, cloudy, mask, with_ssim=False))
    np.testing.assert_allclose(band_nrmse(pred, target), ref_nrmse(pred, target), rtol=1e-12)
