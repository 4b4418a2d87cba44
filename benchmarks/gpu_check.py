"""``make gpu-check``: every GPU figure of the project in one run, sized for a bare GPU machine.

Run on a machine with an NVIDIA GPU and no network (``make gpu-check GPU_CHECK_OUT=DIR``), it

1. installs what the machine lacks from the wheels in ``.whl/`` (``make gpu-check-prepare``
   downloads them where PyPI is reachable): only when a needed module does not import, into a
   private folder put first on ``PYTHONPATH``; the package itself runs from ``src/``;
2. records the machine (``nvidia-smi``, Python, torch, CUDA, cuDNN);
3. runs the CUDA-only tests (``pytest -m cuda``);
4. runs ``dsen2cr benchmark --device cuda`` with the ``peak``, ``infer``, ``train`` and
   ``bf16`` sections (bf16 and TF32 against IEEE fp32 on the real SEN12MS-CR patches copied to
   ``.gpu_check_data/`` by the prepare step, or ``../shared/realdata/sen12mscr_triplets``);
5. runs the ``scene`` section on its own: a full 10980 x 10980 Sentinel-2 tile end to end with
   ``dsen2cr predict``'s default options (wall, tile loop, COG layout, start-up, seconds by
   stage, the GPU's busy fraction during the loop), from a generated input made once into
   ``.gpu_check_data/scene/`` (``GPU_CHECK_SCENES``) and reused; then the same in bf16
   (``scene_bf16``);
6. runs the ``io`` section (the same path with an identity network, 1 thread and all cores,
   against GDAL's COG translation) and the ``compile`` section (compile time against gain);
7. runs ``--ladder`` last (it compiles the network twice, so it may take what time is left);

and writes into ``GPU_CHECK_OUT``: ``gpu_check.json`` (every step's status and seconds, the
merged benchmark JSON, and each figure against its target: inference MFU >= 60 %, training MFU
>= 50 %, the tile in <= 15 s with the GPU busy >= 85 % of the loop, bf16 within 1e-2 MAE of
fp32), ``gpu_check.log`` (everything the steps printed), and one JSON per step; each step's
JSON is merged only when the step passed, and earlier runs' files are removed first. Each step
has a time budget and the whole run stays within ``--budget`` seconds (default 540): a step that
runs out is stopped and marked ``timeout``, and the others still run. The exit status is 0 when
every step passed (targets missed are reported, not failures).

``GPU_CHECK_DEVICE=cpu`` runs the same script on a CPU with CPU sizes (``--quick``, a small
model, a 256 x 256 scene) so that it is tested before GPU time is spent on it. Standard library
only: it must start on any Python.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NEEDED = ("torch", "lightning", "numpy", "scipy", "rasterio", "safetensors", "h5py",
          "matplotlib", "yaml", "tqdm", "pytest", "skimage")  # fmt: skip
TARGETS = {
    "infer_mfu": 0.60,
    "train_mfu": 0.50,
    "scene_wall_seconds": 15.0,
    "scene_gpu_busy_fraction": 0.85,
    "bf16_mae_reflectance": 1e-2,
}
STEP_BUDGETS = {"setup": 60, "tests": 60, "benchmark": 120, "scene": 120, "scene_bf16": 60,
                "io": 90, "compile": 120, "ladder": 180}  # fmt: skip
"""Seconds each step may take at most (also bounded by what is left of the whole budget)."""


class Run:
    """The log file, the step records and the overall deadline."""

    def __init__(self, out: Path, budget: float) -> None:
        self.out = out
        self.deadline = time.monotonic() + budget
        self.log = open(out / "gpu_check.log", "w", buffering=1)  # closed by main()
        self.steps: dict[str, dict[str, Any]] = {}

    def say(self, text: str) -> None:
        line = f"[gpu-check {time.strftime('%H:%M:%S')}] {text}"
        print(line, file=sys.stderr, flush=True)
        self.log.write(line + "\n")

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def step(self, name: str, argv: list[str], env: dict[str, str], budget: float) -> int | None:
        """Run one command with a timeout; its output goes to the log. Returns its status."""
        limit = max(1.0, min(budget, self.left() - 5.0))
        self.say(f"{name}: {' '.join(argv)} (at most {limit:.0f} s)")
        t0 = time.monotonic()
        rec: dict[str, Any] = {"command": argv, "budget_seconds": round(limit)}
        try:
            proc = subprocess.run(argv, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                  timeout=limit, check=False)  # fmt: skip
            rec.update(status="ok" if proc.returncode == 0 else "failed",
                       returncode=proc.returncode)  # fmt: skip
        except subprocess.TimeoutExpired:
            rec.update(status="timeout", returncode=None)
        rec["seconds"] = round(time.monotonic() - t0, 1)
        self.steps[name] = rec
        self.say(f"{name}: {rec['status']} in {rec['seconds']} s")
        return rec["returncode"]


def missing_modules(env: dict[str, str]) -> list[str]:
    """The needed modules that do not import with this environment's PYTHONPATH."""
    code = ("import importlib.util, sys; "
            f"print(' '.join(m for m in {NEEDED!r} if importlib.util.find_spec(m) is None))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return out.stdout.split()


def setup(run: Run, env: dict[str, str]) -> dict[str, Any]:
    """Put src/ on the path and install the missing modules from .whl/ (see the module docs)."""
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH"))
                                        if p)  # fmt: skip
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    missing = missing_modules(env)
    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    info["missing_before"] = missing
    if missing and wheels:
        site = Path(tempfile.gettempdir()) / "dsen2cr-gpu-check-site"
        shutil.rmtree(site, ignore_errors=True)
        run.step("setup", [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                           "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site),
                           *map(str, wheels)], env, STEP_BUDGETS["setup"])  # fmt: skip
        env["PYTHONPATH"] = os.pathsep.join((str(site), env["PYTHONPATH"]))
        info["wheels"] = [w.name for w in wheels]
        missing = missing_modules(env)
    info["missing"] = missing
    if missing:
        run.say(f"setup: cannot import {', '.join(missing)}"
                + ("" if wheels else " and .whl/ holds no wheels (make gpu-check-prepare)"))  # fmt: skip
    return info


def machine(env: dict[str, str]) -> dict[str, Any]:
    """What the machine is: nvidia-smi's view and the versions torch reports."""
    info: dict[str, Any] = {}
    if shutil.which("nvidia-smi"):
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,"
                            "clocks.max.sm,power.limit", "--format=csv,noheader"],
                           capture_output=True, text=True)  # fmt: skip
        info["nvidia_smi"] = q.stdout.strip() or q.stderr.strip()
    code = ("import json, torch; print(json.dumps({'torch': torch.__version__, "
            "'cuda': torch.version.cuda, 'cudnn': torch.backends.cudnn.version(), "
            "'cuda_available': torch.cuda.is_available(), 'devices': torch.cuda.device_count()}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    try:
        info.update(json.loads(out.stdout))
    except ValueError:
        info["torch_error"] = out.stderr.strip().splitlines()[-1:] or ["no output"]
    return info


def realdata() -> Path | None:
    shared = ROOT / (os.environ.get("DSEN2CR_REALDATA") or "../shared/realdata")
    for p in (ROOT / ".gpu_check_data" / "sen12mscr_triplets", shared / "sen12mscr_triplets"):
        if any(p.glob("*_s2_cloudy.tif")):
            return p
    return None


def targets(bench: dict[str, Any]) -> dict[str, Any]:
    """Each measured figure next to its target; ``met`` is None unless the figure was measured
    with the paper model on a CUDA device (CPU sizes say nothing about the targets)."""
    model = (bench.get("settings") or {}).get("model") or {}
    applies = bool(model.get("paper_model")) and (bench.get("device") or {}).get("type") == "cuda"
    got = {
        "infer_mfu": (bench.get("infer") or {}).get("mfu"),
        "train_mfu": (bench.get("train") or {}).get("mfu"),
        "scene_wall_seconds": (bench.get("scene") or {}).get("wall_seconds"),
        "scene_gpu_busy_fraction": (bench.get("scene") or {}).get("gpu_busy_fraction"),
        "bf16_mae_reflectance": (bench.get("bf16") or {}).get("mae_reflectance"),
    }
    out = {}
    for key, target in TARGETS.items():
        value = got[key]
        higher = key.endswith(("mfu", "fraction"))
        met = None if value is None or not applies else (value >= target if higher
                                                          else value <= target)  # fmt: skip
        out[key] = {"measured": value, "target": target, "met": met,
                    "rule": ">=" if higher else "<="}  # fmt: skip
        if not applies:
            out[key]["note"] = "not the paper model on CUDA: the target does not apply"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("GPU_CHECK_OUT", "gpu_check_out")))
    ap.add_argument("--device", default=os.environ.get("GPU_CHECK_DEVICE", "cuda"))
    ap.add_argument("--budget", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET", 540)),
                    help="seconds for the whole run (default 540)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    run = Run(a.out, a.budget)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    result: dict[str, Any] = {"check": "dsen2cr gpu-check", "device": a.device,
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
    result["setup"] = setup(run, env)
    result["machine"] = machine(env)
    run.say(f"machine: {json.dumps(result['machine'])}")
    cpu = a.device == "cpu"
    run.step("tests", [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
                       "tests"], env, STEP_BUDGETS["tests"])  # fmt: skip
    small = ["--quick", "--features", "32", "--blocks", "4"] if cpu else []
    data = realdata()
    (a.out / "gpu_check.json").unlink(missing_ok=True)
    steps = ("benchmark", "scene", "scene_bf16", "io", "compile", "ladder")
    parts = {step: f"{step}.json" for step in steps}
    base = [sys.executable, "-m", "dsen2cr.cli", "benchmark", "--device", a.device, "--overwrite"]
    scenes = os.environ.get("GPU_CHECK_SCENES") or str(ROOT / ".gpu_check_data" / "scene")
    scene_in = ["--inputs-dir", scenes]  # generated once, reused by every step and later runs
    scene = ["--sections", "scene", *scene_in, *([*small, "--scene-size", "256"] if cpu else [])]
    sections = {
        "benchmark": ["--sections", "peak", "infer", "train", "bf16", *small,
                      *(["--realdata", str(data)] if data is not None else [])],
        "scene": scene,
        "scene_bf16": [*scene, "--precision", "bf16"],
        "io": ["--sections", "io", *scene_in, "--io-threads", "1", str(os.cpu_count() or 1),
               *(["--io-size", "512"] if cpu else [])],
        "compile": ["--sections", "compile", *small],
        "ladder": ["--sections", "peak", "--ladder", *small],
    }  # fmt: skip
    bench: dict[str, Any] = {}
    for step, name in parts.items():
        (a.out / name).unlink(missing_ok=True)
        run.step(step, [*base, "--json", str(a.out / name), *sections[step]], env,
                 STEP_BUDGETS[step])  # fmt: skip
        f = a.out / name
        if run.steps[step]["status"] != "ok" or not f.is_file():
            continue
        part = json.loads(f.read_text())
        bench.setdefault("device", part.get("device"))
        bench.setdefault("settings", part.get("settings"))
        keep = (["ladder"] if step == "ladder" else
                [k for k in part if k not in ("device", "settings", "seconds_total")])  # fmt: skip
        if step == "scene_bf16":  # the same tile in bf16, beside the CLI-default run
            bench["scene_bf16"] = part.get("scene")
            continue
        bench.update({k: part[k] for k in keep if k in part})
    result["benchmark"] = bench
    result["targets"] = targets(bench)
    result["realdata"] = str(data) if data else None
    result["steps"] = run.steps
    result["seconds"] = round(time.monotonic() - t0, 1)
    ok = all(s["status"] == "ok" for s in run.steps.values()) and not result["setup"]["missing"]
    result["ok"] = ok
    tmp = a.out / ".gpu_check.json.partial"
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, a.out / "gpu_check.json")
    run.say(f"{'ok' if ok else 'FAILED'} in {result['seconds']} s; targets: "
            + ", ".join(f"{k} {v['measured']} ({v['rule']} {v['target']}: "
                        f"{'met' if v['met'] else 'missed' if v['met'] is False else 'n/a'})"
                        for k, v in result["targets"].items())
            + f"; wrote {a.out / 'gpu_check.json'}")  # fmt: skip
    run.log.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
