"""make gpu-check, tested on the CPU (GPU_CHECK_DEVICE=cpu) before GPU time is spent on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def gpu_check(out: Path, *extra: str, budget: float | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GPU_CHECK_DEVICE": "cpu", "GPU_CHECK_OUT": str(out),
           "GPU_CHECK_SCENES": str(out.parent / "scenes")}  # fmt: skip
    if budget is not None:
        env["GPU_CHECK_BUDGET"] = str(budget)
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), *extra],
                          env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)  # fmt: skip


@pytest.mark.slow
def test_gpu_check_runs_every_step_on_cpu(tmp_path: Path) -> None:
    proc = gpu_check(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["ok"] and result["device"] == "cpu" and not result["setup"]["missing"]
    assert list(result["steps"]) == ["tests", "benchmark", "scene", "scene_bf16", "io", "compile",
                                     "ladder"]  # fmt: skip
    assert all(s["status"] == "ok" for s in result["steps"].values())
    bench = result["benchmark"]
    for section in ("peak", "infer", "train", "scene", "scene_bf16", "io", "compile", "bf16", "ladder"):
        assert section in bench, section
    assert bench["device"]["type"] == "cpu" and bench["scene"]["size"] == 256
    assert bench["scene"]["precision"] == "fp32" and bench["scene_bf16"]["precision"] == "bf16"
    assert bench["io"]["size"] == 512 and bench["io"]["ratio_to_gdal"] > 0
    for t in result["targets"].values():  # CPU sizes say nothing about the GPU targets
        assert t["met"] is None and "does not apply" in t["note"]
    log = (tmp_path / "gpu_check.log").read_text()
    assert "-m cuda" in log and "skipped" in log  # the CUDA-only tests were selected
    assert {p.name for p in tmp_path.iterdir()} == {"gpu_check.json", "gpu_check.log",
                                                     "benchmark.json", "scene.json",
                                                     "scene_bf16.json", "io.json",
                                                     "compile.json", "ladder.json"}  # fmt: skip
    assert sorted(p.name for p in (tmp_path.parent / "scenes").iterdir()) == ["bench_s1.tif",
                                                                             "bench_s2.tif"]  # fmt: skip
    assert bench["ladder"]["rungs"][0] == "fp32 NCHW"


def test_gpu_check_stops_steps_at_the_budget(tmp_path: Path) -> None:
    proc = gpu_check(tmp_path, budget=8)
    assert proc.returncode == 1
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert not result["ok"] and result["seconds"] < 30
    assert "timeout" in {s["status"] for s in result["steps"].values()}
    assert all(s["budget_seconds"] <= 8 for s in result["steps"].values())
    assert "FAILED" in proc.stderr
