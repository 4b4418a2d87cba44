"""``dsen2cr benchmark``: JSON layout, consistent FLOP arithmetic, bf16 check, ladder, CLI errors.

Every run here uses a tiny model (``features=8, blocks=1``) and the quick CPU sizes, so the
numbers only have to be finite, positive and consistent with each other; the FLOP count itself
is checked independently against ``torch.utils.flop_counter``.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from torch.utils.flop_counter import FlopCounterMode

from dsen2cr.benchmark import (
    DEFAULT_SECTIONS,
    bench_bf16,
    bench_ladder,
    benchmark_sizes,
    ladder_rungs,
    make_inputs,
    run_benchmark,
)
from dsen2cr.cli import main
from dsen2cr.data.synthetic import make_scene
from dsen2cr.models import DSen2CR
from dsen2cr.performance import TRAIN_FLOP_FACTOR, conv_flops_per_pixel
from tests.conftest import write_raster_file
from tests.helpers import TRIPLETS, needs_files

TINY = {"features": 8, "blocks": 1}
PATCH = 24


def write_fake_realdata(folder: Path, ids: tuple[str, ...] = ("11", "7")) -> Path:
    """SEN12MS-CR-like triplet files: ``{id}_s2_cloudy.tif`` (13 x uint16 DN), ``{id}_s1.tif``."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, pid in enumerate(ids):
        scene = make_scene(PATCH, PATCH, seed=k, cloud_cover=0.5)
        for name, data in (("s2_cloudy", scene["s2_cloudy"]), ("s1", scene["s1"])):
            write_raster_file(folder / f"{pid}_{name}.tif", data)
    return folder


def assert_positive(*values: float) -> None:
    for v in values:
        assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, values


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One quick CPU run of every section with a tiny model (single-threaded: tiny ops)."""
    realdata = write_fake_realdata(tmp_path_factory.mktemp("realdata"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_benchmark(
            "cpu", quick=True, realdata=realdata, scene_size=64, progress=False, **TINY
        )
    finally:
        torch.set_num_threads(n)


@pytest.fixture
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- FLOP count
def test_conv_flops_per_pixel_matches_torch_flop_counter() -> None:
    model = DSen2CR(features=8, blocks=2).eval()
    optical, sar = torch.rand(2, 13, 16, 12), torch.rand(2, 2, 16, 12)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(optical, sar)
    assert counter.get_total_flops() == conv_flops_per_pixel(model) * 2 * 16 * 12


def test_conv_flops_per_pixel_of_the_paper_model() -> None:
    with torch.device("meta"):
        model = DSen2CR()
        optical, sar = torch.empty(1, 13, 8, 8), torch.empty(1, 2, 8, 8)
    assert conv_flops_per_pixel(model) == 37_877_760
    with FlopCounterMode(display=False) as counter:  # independent count, nothing allocated
        model(optical, sar)
    assert counter.get_total_flops() == 37_877_760 * 8 * 8


# --------------------------------------------------------------------------- run_benchmark
def test_result_layout(result: dict) -> None:
    assert result["benchmark"] == "dsen2cr"
    assert set(DEFAULT_SECTIONS) <= result.keys() and "ladder" not in result and "io" not in result
    json.dumps(result, allow_nan=False)  # plain JSON, no NaN / inf
    dev = result["device"]
    for key in ("name", "type", "torch", "cpu_model", "cpu_count", "torch_threads"):
        assert dev[key] not in (None, ""), key
    assert dev["type"] == "cpu" and "load_average" in dev
    s = result["settings"]
    assert (s["quick"], s["precision"], s["channels_last"], s["compile"]) == (True, "fp32", True, False)
    assert s["cudnn_benchmark"] is False
    m = s["model"]
    assert (m["features"], m["blocks"], m["sar"], m["paper_model"]) == (8, 1, True, False)
    with torch.device("meta"):
        tiny = DSen2CR(**TINY)
    assert m["forward_flops_per_pixel"] == conv_flops_per_pixel(tiny)
    assert m["parameters"] == sum(p.numel() for p in tiny.parameters())
    assert_positive(result["seconds_total"])


def test_peak(result: dict) -> None:
    peak = result["peak"]
    sizes = benchmark_sizes("cpu", quick=True)
    assert (peak["dtype"], peak["n"]) == ("float32", sizes.peak_n)
    assert_positive(peak["peak_tflops"], peak["seconds_per_matmul"])
    assert peak["peak_tflops"] == pytest.approx(
        2 * peak["n"] ** 3 / peak["seconds_per_matmul"] / 1e12, rel=1e-3
    )


def test_infer_flops_time_and_mfu_are_consistent(result: dict) -> None:
    r, peak = result["infer"], result["peak"]["peak_tflops"]
    fpp = result["settings"]["model"]["forward_flops_per_pixel"]
    assert (r["batch"], r["size"]) == (1, 64)
    assert r["flops_per_batch"] == fpp * r["batch"] * r["size"] ** 2
    assert_positive(r["seconds_per_batch"], r["patches_per_s"], r["megapixels_per_s"], r["tflops"])
    sec = r["seconds_per_batch"]
    assert r["tflops"] == pytest.approx(r["flops_per_batch"] / sec / 1e12, rel=1e-3)
    assert r["patches_per_s"] == pytest.approx(r["batch"] / sec, rel=1e-3)
    assert r["mfu"] == pytest.approx(r["tflops"] / peak, rel=1e-3)
    assert r["max_memory_gib"] is None  # CPU


def test_train_flops_time_and_mfu_are_consistent(result: dict) -> None:
    r, peak = result["train"], result["peak"]["peak_tflops"]
    fpp = result["settings"]["model"]["forward_flops_per_pixel"]
    assert (r["batch"], r["crop"], r["loss"]) == (2, 64, "carl")
    assert r["flops_per_step"] == TRAIN_FLOP_FACTOR * fpp * r["batch"] * r["crop"] ** 2
    assert_positive(r["seconds_per_step"], r["crops_per_s"], r["tflops"], r["loss_first"])
    sec = r["seconds_per_step"]
    assert r["tflops"] == pytest.approx(r["flops_per_step"] / sec / 1e12, rel=1e-3)
    assert r["crops_per_s"] == pytest.approx(r["batch"] / sec, rel=1e-3)
    assert r["mfu"] == pytest.approx(r["tflops"] / peak, rel=1e-3)
    assert math.isfinite(r["loss_last"])


def test_scene(result: dict) -> None:
    r = result["scene"]
    fpp = result["settings"]["model"]["forward_flops_per_pixel"]
    assert (r["size"], r["tile"], r["halo"], r["tiles"]) == (64, 64, 4, 1)
    assert_positive(r["seconds"], r["megapixels_per_s"], r["wall_seconds"], r["network_tflops"])
    assert r["wall_seconds"] >= r["seconds"]
    assert r["megapixels_per_s"] == pytest.approx(64 * 64 / 1e6 / r["seconds"], rel=1e-3)
    net_px = r["tiles"] * r["window"][0] * r["window"][1]
    assert r["network_tflops"] == pytest.approx(fpp * net_px / r["seconds"] / 1e12, rel=1e-3)
    assert r["halo_overhead"] == pytest.approx(net_px / 64**2, rel=1e-3)
    assert r["precision"] == "fp32" and r["compress"] == "DEFLATE"  # predict's defaults
    assert_positive(r["load_seconds"], r["startup_seconds"], r["cog_seconds"], r["host_peak_rss_gib"])
    assert {"decode", "warp", "network", "convert", "encode", "layout"} <= set(r["stages"])
    assert r["gpu_busy_fraction"] is None  # sampled on CUDA only


@pytest.mark.slow
def test_io_section_against_gdal(tmp_path: Path) -> None:
    r = run_benchmark("cpu", sections=["io"], io_size=600, io_threads=[1, 2], progress=False,
                      inputs_dir=tmp_path)["io"]  # fmt: skip
    assert (r["size"], r["tile"], r["compress"]) == (600, 512, "DEFLATE")
    assert [run["threads"] for run in r["runs"]] == [1, 2] and set(r["megapixels_per_s"]) == {"1", "2"}
    for run in r["runs"]:
        assert_positive(run["wall_seconds"], run["megapixels_per_s"], run["cog_seconds"])
        assert {"decode", "warp", "network", "convert", "encode", "overviews", "layout"} <= set(run["seconds"])
    for stage in ("decode", "warp", "encode"):
        assert_positive(*r["stage_scaling"][stage].values(), r["stage_scaling"]["speedup"][stage])
    assert_positive(r["gdal_cog_seconds"])
    assert len(r["ratio_pairs"]) == 3 and r["ratio_to_gdal"] == sorted(r["ratio_pairs"])[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench_s1.tif", "bench_s2.tif"]  # kept


def test_bf16_on_real_like_patches(result: dict) -> None:
    r = result["bf16"]
    assert r["patches"] == 2 and r["weights"] == "random init, seed 0"
    assert r["crop"] == 64  # larger than the patches: whole patches
    assert [p["id"] for p in r["per_patch"]] == ["11", "7"]  # sorted by file name
    assert all(p["size"] == [PATCH, PATCH] for p in r["per_patch"])
    assert 0 < r["mae_reflectance"] <= r["max_abs_reflectance"]
    assert r["mae_reflectance"] == pytest.approx(
        np.mean([p["mae_reflectance"] for p in r["per_patch"]]), rel=1e-3
    )
    assert r["within_1e-2"] is (r["mae_reflectance"] <= 1e-2)


@pytest.mark.usefixtures("_one_thread")
def test_bf16_crop_limit_and_weights(tmp_path: Path) -> None:
    folder = write_fake_realdata(tmp_path / "rd", ids=("a", "b", "c"))
    model = DSen2CR(**TINY)
    weights = model.save_pretrained(tmp_path / "w.safetensors")
    r = bench_bf16(torch.device("cpu"), realdata=folder, crop=16, max_patches=2, weights=weights)
    assert r["patches"] == 2 and r["weights"] == str(weights)
    assert [p["size"] for p in r["per_patch"]] == [[16, 16], [16, 16]]


def test_bf16_skips_when_the_folder_is_absent(tmp_path: Path) -> None:
    r = bench_bf16(torch.device("cpu"), realdata=None, **TINY)
    assert list(r) == ["skipped"] and "(realdata)" in r["skipped"]  # the CLI says --realdata
    r = bench_bf16(torch.device("cpu"), realdata=tmp_path / "absent", **TINY)
    assert list(r) == ["skipped"] and "absent" in r["skipped"]
    (tmp_path / "empty").mkdir()
    assert "skipped" in bench_bf16(torch.device("cpu"), realdata=tmp_path / "empty", **TINY)
    full = run_benchmark("cpu", quick=True, sections=["bf16"], realdata=tmp_path / "absent",
                         progress=False, **TINY)  # fmt: skip
    assert "skipped" in full["bf16"] and "peak" not in full


# --------------------------------------------------------------------------- ladder
@pytest.mark.parametrize("device_type", ["cpu", "cuda"])
def test_ladder_rungs_change_one_setting_at_a_time(device_type: str) -> None:
    rungs = ladder_rungs(device_type)
    names = [n for n, _ in rungs]
    assert names[0] == "fp32 NCHW" and names[-1] == "+torch.compile"
    assert ("+cudnn.benchmark" in names) == (device_type == "cuda")
    first = rungs[0][1]
    assert (first.precision, first.speed.channels_last, first.speed.compile) == ("fp32", False, False)

    def flat(s):
        return (s.precision, s.speed.channels_last, s.speed.compile, s.cudnn_benchmark)

    for (_, a), (_, b) in itertools.pairwise(rungs):
        assert sum(x != y for x, y in zip(flat(a), flat(b), strict=True)) == 1


@pytest.mark.usefixtures("_one_thread")
def test_ladder_gains() -> None:
    sizes = benchmark_sizes("cpu", quick=True)
    rungs = ladder_rungs("cpu")[:3]  # compilation is too slow for a unit test
    lines: list[str] = []
    r = bench_ladder(torch.device("cpu"), sizes, peak_tflops=1.0, rungs=rungs, log=lines.append,
                     **TINY)  # fmt: skip
    assert r["rungs"] == ["fp32 NCHW", "+channels_last", "+bf16 autocast"]
    assert len(lines) == 2 * len(rungs)
    for section, key in (("infer", "patches_per_s"), ("train", "crops_per_s")):
        rows = r[section]
        assert [row["rung"] for row in rows] == r["rungs"]
        assert rows[0]["gain"] is None and "error" not in rows[0]
        for prev, row in itertools.pairwise(rows):
            assert_positive(row[key], row["tflops"])
            assert row["mfu"] == pytest.approx(row["tflops"], rel=1e-3)  # peak 1 TFLOP/s
            assert row["gain"] == pytest.approx(row[key] / prev[key], rel=2e-3)


# --------------------------------------------------------------------------- inputs
def test_make_inputs_writes_a_georeferenced_pair(tmp_path: Path) -> None:
    s2_path, s1_path = make_inputs(tmp_path, 45, seed=3)
    with rasterio.open(s2_path) as s2, rasterio.open(s1_path) as s1:
        assert (s2.count, s2.height, s2.width, s2.dtypes[0]) == (13, 45, 45, "uint16")
        assert (s1.count, s1.height, s1.width, s1.dtypes[0]) == (2, 23, 23, "float32")
        assert s2.crs == s1.crs and s2.res == (10.0, 10.0) and s1.res == (20.0, 20.0)
        assert s2.bounds.left == s1.bounds.left and s2.bounds.top == s1.bounds.top
        assert s2.read().max() > 0 and np.isfinite(s1.read()).all()


# --------------------------------------------------------------------------- CLI
def test_cli_writes_the_json_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "bench.json"
    argv = ["benchmark", "--device", "cpu", "--quick", "--sections", "peak,infer", "--features",
            "8", "--blocks", "1", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert json.loads(out.read_text()) == printed
    assert {"peak", "infer"} <= printed.keys() and "train" not in printed
    assert printed["settings"]["sections"] == ["peak", "infer"]
    assert "peak" in captured.err  # progress lines
    assert sorted(p.name for p in out.parent.iterdir()) == ["bench.json"]  # no partial file


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(
            ["--device", "cuda"],
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present"),
        ),
        ["--sections", "peak", "warp"],
        ["--scene-size", "4"],
        ["--features", "0"],
        ["--weights", "no/such/weights.safetensors"],
    ],
)
def test_cli_bad_option_is_one_line(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "--quiet", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dsen2cr benchmark: error:")
    assert "Traceback" not in captured.err


@pytest.mark.slow
@pytest.mark.realdata
@needs_files(TRIPLETS / "1302_s2_cloudy.tif")
def test_bf16_within_limit_on_the_real_patches() -> None:
    """The issue's correctness target on the real SEN12MS-CR patches beside the repository: the
    paper-size network (random init; no published weights can be downloaded here) under bf16
    autocast stays within 1e-2 MAE of float32, in reflectance (32 x 32 centre crops on CPU)."""
    files = sorted(TRIPLETS.glob("*_s2_cloudy.tif"))
    r = bench_bf16(torch.device("cpu"), realdata=TRIPLETS, crop=32, max_patches=6)
    assert r["patches"] == min(6, len(files))
    assert 0 < r["mae_reflectance"] <= 1e-2 and r["within_1e-2"] is True, r


@pytest.mark.slow
def test_compile_section_weighs_compile_time_against_gain() -> None:
    r = run_benchmark("cpu", sections=["compile"], quick=True, progress=False, **TINY)["compile"]
    assert r["window"] == 256 + 2 * 4 and r["tiles_per_10980_scene"] == 484
    assert [b["batch"] for b in r["batches"]] == [1, 4]
    for b in r["batches"]:
        assert_positive(b["eager_seconds_per_tile"], b["compiled_seconds_per_tile"], b["speedup"])
        assert b["compile_seconds"] > 0.1  # compiling takes seconds, whatever the machine
        saved = b["eager_seconds_per_tile"] - b["compiled_seconds_per_tile"]
        # every figure is rounded to 4 significant digits: the saving recomputed from the rounded
        # per-tile times is known to within `err` (it matters when compiling saves little)
        err, r4 = 5e-4 * (b["eager_seconds_per_tile"] + b["compiled_seconds_per_tile"]), 5e-4
        if saved > 2 * err:
            lo = b["compile_seconds"] * (1 - r4) / (saved + err) * (1 - r4)
            hi = b["compile_seconds"] * (1 + r4) / (saved - err) * (1 + r4)
            assert lo <= b["break_even_tiles"] <= hi, (lo, b, hi)
            if not lo <= 484 <= hi:  # clearly on one side of a whole tile
                assert b["pays_for_a_10980_scene"] is bool(b["break_even_tiles"] < 484)
        elif saved < -2 * err:
            assert b["break_even_tiles"] is None and b["pays_for_a_10980_scene"] is False
