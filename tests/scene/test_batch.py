"""Batches: torchrun shares, byte-identical outputs, resume, failures that stay local."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from dsen2cr.cli import main
from dsen2cr.data.synthetic import make_scene
from dsen2cr.errors import DSen2CRError
from dsen2cr.scene import PredictOptions, Shard, predict_batch, summarize
from tests.conftest import ORIGIN, write_raster_file
from tests.helpers import tiny_model

GOOD = [f"scene_{i}" for i in range(4)]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six scenes: four with S1 (S1 file names sorted the other way round), scene_4 without S1,
    scene_5 a truncated file."""
    root = tmp_path_factory.mktemp("batch")
    for i in range(6):
        sc = make_scene(48, 64, seed=i)
        origin = (ORIGIN[0] + 2000.0 * i, ORIGIN[1])
        write_raster_file(root / "s2" / f"scene_{i}.tif", sc["s2_cloudy"], origin=origin)
        if i < 4:
            write_raster_file(root / "s1" / f"s1_{9 - i}.tif", sc["s1"], origin=origin)
    raw = (root / "s2" / "scene_5.tif").read_bytes()
    (root / "s2" / "scene_5.tif").write_bytes(raw[: len(raw) // 3])
    tiny_model().save_pretrained(root / "w.safetensors")
    tiny_model(sar=False).save_pretrained(root / "w_nosar.safetensors")
    return root


def predict_argv(root: Path, out: Path, *extra: str) -> list[str]:
    return ["predict", "--s2", str(root / "s2" / "scene_*.tif"), "--s1", str(root / "s1" / "*.tif"),
            "--weights", str(root / "w.safetensors"), "--out", str(out / "pred"),
            "--mask-out", str(out / "mask"), "--device", "cpu", "--tile", "32", *extra]  # fmt: skip


def run_cli(argv: list[str], torchrun: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK") and not k.startswith("SLURM_")}  # fmt: skip
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc_per_node", "2", "-m", "dsen2cr.cli"] if torchrun
                else [sys.executable, "-m", "dsen2cr.cli"])  # fmt: skip
    return subprocess.run([*launcher, *argv], env=env, capture_output=True, text=True, timeout=300)


def records(manifest: Path) -> list[dict]:
    return [json.loads(ln) for ln in manifest.read_text().splitlines()]


def outputs(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino)
            for p in sorted(folder.rglob("*.tif"))}  # fmt: skip


@pytest.mark.slow
def test_torchrun_batch_is_sharded_identical_and_resumable(inputs: Path, tmp_path: Path) -> None:
    single = run_cli(predict_argv(inputs, tmp_path / "single"), torchrun=False)
    assert single.returncode == 1, single.stderr
    multi = run_cli(predict_argv(inputs, tmp_path / "multi"), torchrun=True)
    assert multi.returncode != 0, multi.stderr
    manifest = tmp_path / "multi" / "pred" / "manifest.jsonl"
    recs = records(manifest)
    starts = [r for r in recs if r.get("event") == "start"]
    assert sorted(r["shard"] for r in starts) == ["0/2", "1/2"], multi.stderr[-4000:]
    shares = [set(r["scenes"]) for r in starts]
    assert not shares[0] & shares[1] and shares[0] | shares[1] == {*GOOD, "scene_4", "scene_5"}
    scenes = [r for r in recs if "scene" in r]
    assert len(scenes) == 6, multi.stderr[-4000:]  # every scene exactly once
    by_scene = {r["scene"]: r for r in scenes}
    assert all(by_scene[s]["status"] == "done" for s in GOOD)
    assert {by_scene[s]["rank"] for s in GOOD} == {0, 1}
    assert by_scene["scene_4"]["status"] == "failed"
    assert "no S1 image overlaps its footprint" in by_scene["scene_4"]["error"]
    assert by_scene["scene_5"]["status"] == "failed" and "scene_5.tif" in by_scene["scene_5"]["error"]
    assert {by_scene[s]["s1"].rsplit("/", 1)[-1] for s in GOOD} == {f"s1_{9 - i}.tif" for i in range(4)}
    for i, s in enumerate(GOOD):  # paired by footprint, not by sorted order
        assert by_scene[s]["s1"].endswith(f"s1_{9 - i}.tif")
    for r in scenes:
        assert set(r) >= {"scene", "status", "seconds", "megapixels", "out", "error", "rank", "host"}
    assert "rank 1/2" in multi.stderr and "rank 2/2" in multi.stderr and "finished" in multi.stderr
    # byte-identical to the single process, predictions and masks
    one, two = outputs(tmp_path / "single"), outputs(tmp_path / "multi")
    assert sorted(one) == sorted(two) and len(one) == 8
    assert all(one[k][0] == two[k][0] for k in one)
    # a second launch skips everything and rewrites nothing
    again = run_cli(predict_argv(inputs, tmp_path / "multi"), torchrun=True)
    assert again.returncode != 0
    assert outputs(tmp_path / "multi") == two, again.stderr[-4000:]
    latest = summarize(manifest)
    assert latest.scenes("skipped") == GOOD and latest.scenes("failed") == ["scene_4", "scene_5"]
    assert len([r for r in records(manifest) if r.get("status") == "skipped"]) == 4
    summary = run_cli(["predict", "--summary", str(manifest)], torchrun=False)
    assert summary.returncode == 1
    assert summary.stdout.startswith("done 0, skipped 4, failed 2, missing 0 (of 6 scenes")


def test_resume_rules(inputs: Path, tmp_path: Path) -> None:
    opts = PredictOptions(device="cpu", tile=32, progress=False)
    s2 = [str(inputs / "s2" / f"{s}.tif") for s in GOOD[:3]]
    s1 = [str(inputs / "s1" / "*.tif")]
    kw = {"mask_dir": tmp_path / "mask", "options": opts, "quiet": True}
    first = predict_batch(s2, inputs / "w.safetensors", tmp_path / "pred", s1, **kw)
    assert first.ok and first.count("done") == 3
    before = outputs(tmp_path)
    # a scene lost (say its process was killed before the rename) is predicted again, alone
    (tmp_path / "pred" / "scene_1_dsen2cr.tif").unlink()
    (tmp_path / "mask" / "scene_2_mask.tif").unlink()  # a mask lost: the scene is redone
    res = predict_batch(s2, inputs / "w.safetensors", tmp_path / "pred", s1, **kw)
    assert [r["status"] for r in res.records] == ["skipped", "done", "done"]
    after = outputs(tmp_path)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    assert after["pred/scene_0_dsen2cr.tif"] == before["pred/scene_0_dsen2cr.tif"]
    # other options: not replaced without overwrite, the reason is recorded
    zstd = PredictOptions(device="cpu", tile=32, progress=False, compress="ZSTD")
    res = predict_batch(s2, inputs / "w.safetensors", tmp_path / "pred", s1, mask_dir=tmp_path / "mask",
                        options=zstd, quiet=True)  # fmt: skip
    assert not res.ok and all("made with other options: add overwrite=True" in r["error"]
                              for r in res.records)  # fmt: skip
    assert outputs(tmp_path) == after
    # other weights, or a file dsen2cr did not write: the same
    other = tiny_model(seed=5).save_pretrained(tmp_path / "other.safetensors")
    res = predict_batch(s2[:1], other, tmp_path / "pred", s1, **kw)
    assert "made with other weights" in res.records[0]["error"]
    write_raster_file(tmp_path / "pred" / "scene_3_dsen2cr.tif", np.ones((13, 4, 4), np.uint16))
    res = predict_batch([str(inputs / "s2" / "scene_3.tif")], inputs / "w.safetensors",
                        tmp_path / "pred", s1, options=opts, quiet=True)  # fmt: skip
    assert "is not a dsen2cr prediction" in res.records[0]["error"]
    # overwrite redoes
    res = predict_batch(s2, inputs / "w.safetensors", tmp_path / "pred", s1, options=zstd,
                        mask_dir=tmp_path / "mask", overwrite=True, quiet=True)  # fmt: skip
    assert res.ok and res.count("done") == 3
    with rasterio.open(tmp_path / "pred" / "scene_0_dsen2cr.tif") as src:
        assert src.compression.name.upper() == "ZSTD"


def test_shares_pairs_and_batch_errors(inputs: Path, tmp_path: Path, capsys) -> None:
    opts = PredictOptions(device="cpu", tile=32, progress=False)
    s2 = [str(inputs / "s2" / "scene_[0-3].tif")]
    parts = [predict_batch(s2, inputs / "w_nosar.safetensors", tmp_path / "o", None,
                           options=opts, shard=Shard(i, 3), quiet=True) for i in range(3)]  # fmt: skip
    assert [[r["scene"] for r in p.records] for p in parts] == [
        ["scene_0", "scene_3"], ["scene_1"], ["scene_2"]
    ]
    with pytest.raises(DSen2CRError, match="the weights use SAR"):
        predict_batch(s2, inputs / "w.safetensors", tmp_path / "x", None, options=opts)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"s2,s1,out\n{inputs}/s2/scene_1.tif,{inputs}/s1/s1_8.tif,p/one.tif\n"
                     f"{inputs}/s2/scene_0.tif,{inputs}/s1/s1_8.tif,\n")  # fmt: skip
    argv = ["predict", "--pairs", str(pairs), "--weights", str(inputs / "w.safetensors"),
            "--out", str(tmp_path / "p"), "--device", "cpu", "--tile", "32", "--quiet"]  # fmt: skip
    assert main(argv) == 1  # scene_0 was given the S1 of scene_1, which does not overlap it
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [(r["scene"], r["status"]) for r in lines] == [("scene_0", "failed"), ("one", "done")]
    assert "does not overlap" in lines[0]["error"] and (tmp_path / "p" / "one.tif").is_file()
    clash = tmp_path / "clash.csv"  # two explicit outputs of one name: masks would collide
    clash.write_text(f"s2,s1,out\n{inputs}/s2/scene_0.tif,,a/x.tif\n{inputs}/s2/scene_1.tif,,b/x.tif\n")
    with pytest.raises(DSen2CRError, match="would both write outputs named 'x'"):
        predict_batch(None, inputs / "w_nosar.safetensors", tmp_path / "c", pairs=clash,
                      mask_dir=tmp_path / "m", options=opts)  # fmt: skip
    eats = tmp_path / "eats.csv"  # an output that is another scene's input
    eats.write_text(f"s2,s1,out\n{inputs}/s2/scene_0.tif,,{inputs}/s1/s1_8.tif\n"
                    f"{inputs}/s2/scene_1.tif,{inputs}/s1/s1_8.tif,\n")  # fmt: skip
    before = (inputs / "s1" / "s1_8.tif").read_bytes()
    with pytest.raises(DSen2CRError, match=r"s1_8\.tif is the input"):
        predict_batch(None, inputs / "w_nosar.safetensors", tmp_path / "e", pairs=eats,
                      options=opts, overwrite=True)  # fmt: skip
    assert (inputs / "s1" / "s1_8.tif").read_bytes() == before
    for bad, msg in ((["predict", "--weights", "w", "--out", "o"], "--s2 (or --pairs)"),
                     ([*argv, "--s2", "x.tif"], "not both")):  # usage errors, as argparse's own
        with pytest.raises(SystemExit) as exit_info:
            main(bad)
        assert exit_info.value.code == 2 and msg in capsys.readouterr().err
    assert main([*argv[:-1], "--shard", "2/2"]) == 2
    assert "--shard must be I/N" in capsys.readouterr().err


@pytest.mark.slow
def test_local_worker_processes_equal_one_process(inputs: Path, tmp_path: Path) -> None:
    opts = PredictOptions(device="cpu", tile=32, progress=False)
    s2, s1 = [str(inputs / "s2" / "scene_[0-3].tif")], [str(inputs / "s1" / "*.tif")]
    one = predict_batch(s2, inputs / "w.safetensors", tmp_path / "one", s1, options=opts, quiet=True)
    two = predict_batch(s2, inputs / "w.safetensors", tmp_path / "two", s1, options=opts,
                        devices=["cpu", "cpu"], quiet=True)  # fmt: skip
    assert [r["scene"] for r in two.records] == GOOD and two.ok
    assert {r["rank"] for r in two.records} == {0, 1}
    for s in GOOD:
        assert (tmp_path / "one" / f"{s}_dsen2cr.tif").read_bytes() == (
            tmp_path / "two" / f"{s}_dsen2cr.tif").read_bytes()
    assert one.ok and len(summarize(tmp_path / "two" / "manifest.jsonl").planned) == 4
    # a job-array task (no local rank) on a machine of two devices: two fixed sub-shares of its share
    part = predict_batch(s2, inputs / "w.safetensors", tmp_path / "three", s1, options=opts,
                         devices=["cpu", "cpu"], shard=Shard(1, 2), quiet=True)  # fmt: skip
    # share 1 of 2 split in two: sub-shares 2 and 3 of 4
    assert [(r["scene"], r["rank"]) for r in part.records] == [("scene_2", 2), ("scene_3", 3)]


@pytest.mark.slow
def test_two_launches_at_once_predict_each_scene_once(inputs: Path, tmp_path: Path) -> None:
    """A batch launched twice on the same folder at the same time: every scene is predicted by
    exactly one of the two processes, the other sees it busy (or done) and moves on."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK") and not k.startswith("SLURM_")}  # fmt: skip
    argv = [sys.executable, "-m", "dsen2cr.cli", *predict_argv(inputs, tmp_path, "--quiet")]
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    for p in procs:
        p.communicate(timeout=300)
    recs = [r for r in records(tmp_path / "pred" / "manifest.jsonl") if "scene" in r]
    done = [r["scene"] for r in recs if r["status"] == "done"]
    assert sorted(done) == GOOD  # each good scene exactly once, by one process or the other
    assert {r["status"] for r in recs} <= {"done", "busy", "skipped", "failed"}
    assert not list((tmp_path / "pred").glob(".*.claim"))  # every claim released


def test_claims_of_dead_or_silent_processes_are_taken_over(tmp_path: Path) -> None:
    import time

    from dsen2cr.scene.claims import STALE_SECONDS, Claims, claim_path

    out = tmp_path / "scene.tif"
    c = claim_path(out)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    with Claims() as claims:
        c.write_text(json.dumps({"host": claims.host, "pid": int(dead)}))  # killed on this host
        with claims.claim(out) as holder:
            assert holder is None and json.loads(c.read_text())["pid"] == os.getpid()
        assert not c.exists()
        c.write_text(json.dumps({"host": "node42", "pid": 7}))  # alive elsewhere, refreshed
        with claims.claim(out) as holder:
            assert holder == {"host": "node42", "pid": 7}
        assert c.exists()  # another's claim is never removed
        old = time.time() - STALE_SECONDS - 5
        os.utime(c, (old, old))  # not refreshed for too long: its process is gone
        with claims.claim(out) as holder:
            assert holder is None
        c.write_text(json.dumps({"host": claims.host, "pid": os.getppid()}))  # a live process here
        with claims.claim(out) as holder:
            assert holder is not None and holder["pid"] == os.getppid()
