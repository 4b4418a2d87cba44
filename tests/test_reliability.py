"""Reliability, table-driven: bad inputs, hostile files and faults across every command.

For each case the command runs as a user would run it (``dsen2cr.cli.main``) in a folder holding
its inputs, and the test asserts that it ends with exit status 2 and exactly one line naming the
problem (no traceback), that no file or folder is left behind, and that every input is byte for
byte unchanged (hashes of the whole folder before and after). Signals run in a subprocess:
SIGTERM cleans up like SIGINT, and the staging files a SIGKILL leaves are removed by the next run
writing into the same folder (never those of a live process).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lightning  # noqa: F401  (imported before capturing: its log handler keeps a live stream)
import numpy as np
import pytest
import rasterio
import torch

from dsen2cr.cli import main
from dsen2cr.data import build_index
from dsen2cr.data.synthetic import generate_dataset, make_scene
from dsen2cr.io import remove_stale_staging, staging_path
from dsen2cr.models import DSen2CR, Pix2PixPredictor, UNetGenerator
from tests.conftest import write_raster_file
from tests.helpers import tiny_model

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs every case starts from (copied into the case's own folder)."""
    d = tmp_path_factory.mktemp("template")
    sc = make_scene(48, 64, seed=2, cloud_cover=0.5)
    write_raster_file(d / "s2.tif", sc["s2_cloudy"])
    write_raster_file(d / "s1.tif", sc["s1"])
    write_raster_file(d / "s2_12.tif", sc["s2_cloudy"][:12])
    write_raster_file(d / "s1_3.tif", np.concatenate([sc["s1"], sc["s1"][:1]]))
    write_raster_file(d / "zero.tif", np.zeros_like(sc["s2_cloudy"]))
    write_raster_file(d / "nan_s1.tif", np.full_like(sc["s1"], np.nan))
    write_raster_file(d / "far_s1.tif", sc["s1"], origin=(900000.0, 5600000.0))
    (d / "corrupt.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 8)
    tiny_model().save_pretrained(d / "w.safetensors")
    Pix2PixPredictor(UNetGenerator(ngf=4, num_downs=3)).save_pretrained(d / "p2p.safetensors")
    (d / "garbage.hdf5").write_bytes(b"not an HDF5 file" * 10)
    torch.save({"state_dict": {}, "evil": print}, d / "evil.ckpt")
    (d / "notes.txt").write_text("a file\n")
    (d / "full").mkdir()
    (d / "full" / "kept.txt").write_text("someone's results\n")
    generate_dataset(d / "data", rois=6, patches=2, size=32, progress=False)
    return d


def snapshot(folder: Path) -> dict[str, str]:
    """Every file (content hash) and folder under ``folder``, hidden ones included."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _copy_template(template: Path, dest: Path) -> Path:
    """A case's folder: the template's inputs, the dataset indexed (as after ``dsen2cr index``,
    so that runs only read the index cache; it is keyed on the folder)."""
    shutil.copytree(template, dest, symlinks=True)
    build_index(dest / "data")
    return dest


def _corrupt_data(d: Path) -> None:
    """Cut a cloudy test patch in half (the index still counts it)."""
    f = sorted((d / "data").rglob("*_s2_cloudy_106_p1.tif"))[0]
    f.write_bytes(f.read_bytes()[:3000])


def _train_config(d: Path, **data: object) -> Path:
    cfg = {"model": {"features": 4, "blocks": 1}, "data": {"root": str(d / "data"), "num_workers": 0, **data},
           "trainer": {"max_epochs": 1, "accelerator": "cpu", "enable_progress_bar": False},
           "out": {"dir": str(d / "runs"), "name": "r"}}  # fmt: skip
    import yaml

    (d / "c.yaml").write_text(yaml.safe_dump(cfg))
    return d / "c.yaml"


PREDICT = ["predict", "--s2", "s2.tif", "--s1", "s1.tif", "--weights", "w.safetensors",
           "--device", "cpu", "--quiet", "--tile", "32"]  # fmt: skip

# (name, setup(folder) -> argv (paths relative to the folder), expected words of the one line)
Case = tuple[str, Callable[[Path], list[str]], str]


def _link(d: Path, kind: str) -> list[str]:
    (os.symlink if kind == "sym" else os.link)(d / "s2.tif", d / "alias.tif")
    return [*PREDICT, "--out", "alias.tif"]


CASES: list[Case] = [
    # --- an output that is an input, or another output
    ("predict out is S2", lambda d: [*PREDICT, "--out", "s2.tif"], "--out s2.tif is the input"),
    ("predict out is S1", lambda d: [*PREDICT, "--out", "s1.tif"], "is the input s1.tif"),
    ("predict out is weights", lambda d: [*PREDICT, "--out", "w.safetensors"], "is the input"),
    ("predict out symlink to S2", lambda d: _link(d, "sym"), "is the input"),
    ("predict out hard link to S2", lambda d: _link(d, "hard"), "is the input"),
    ("predict mask is out", lambda d: [*PREDICT, "--out", "o.tif", "--mask-out", "o.tif"],
     "--mask-out o.tif is also the out output"),
    ("predict preview is out", lambda d: [*PREDICT, "--out", "o.tif", "--preview", "o.tif"],
     "--preview o.tif is also the out output"),
    ("mask out is input", lambda d: ["mask", "s2.tif", "s2.tif"], "--out s2.tif is the input"),
    ("convert output is input", lambda d: ["convert-weights", "w.safetensors", "w.safetensors"],
     "--output w.safetensors is the input"),
    # --- existing outputs are not replaced without --overwrite
    ("predict out exists", lambda d: [*PREDICT, "--out", "notes.txt"],
     "--out notes.txt exists: add --overwrite to replace it"),
    ("predict mask exists", lambda d: [*PREDICT, "--out", "o.tif", "--mask-out", "notes.txt"],
     "--mask-out notes.txt exists"),
    ("mask out exists", lambda d: ["mask", "s2.tif", "notes.txt"], "--overwrite"),
    ("convert output exists", lambda d: ["convert-weights", "w.safetensors", "notes.txt"], "exists"),
    ("synth-data into non-empty folder", lambda d: ["synth-data", "full"],
     "--out full is a folder that is not empty: add --overwrite"),
    ("evaluate into non-empty folder", lambda d: ["evaluate", "--weights", "w.safetensors",
     "--data", "data", "--out", "full"], "--out full is a folder that is not empty"),
    ("evaluate out is the data", lambda d: ["evaluate", "--weights", "w.safetensors",
     "--data", "data", "--out", "data"], "--out data is the input data"),
    ("demo into non-empty folder", lambda d: ["demo", "--quick", "--out", "full"], "not empty"),
    ("benchmark json exists", lambda d: ["benchmark", "--device", "cpu", "--json", "notes.txt"],
     "--json notes.txt exists"),
    # --- outputs that cannot be written
    ("predict out under a file", lambda d: [*PREDICT, "--out", "notes.txt/o.tif"],
     "notes.txt is a file, not a folder"),
    ("mask out under a file", lambda d: ["mask", "s2.tif", "notes.txt/m.tif"], "is a file"),
    ("synth-data into a file", lambda d: ["synth-data", "notes.txt"],
     "--out notes.txt is a file, expected a folder"),
    ("mask out is a folder", lambda d: ["mask", "s2.tif", "full"], "--out full is a folder, expected a file"),
    # --- bad options
    ("predict threshold nan", lambda d: [*PREDICT, "--out", "o.tif", "--threshold", "nan"],
     "--threshold must be a finite number"),
    ("mask threshold inf", lambda d: ["mask", "s2.tif", "m.tif", "--threshold", "inf"],
     "--threshold must be a finite number"),
    ("predict tile too small", lambda d: [*PREDICT, "--out", "o.tif", "--tile", "8"],
     "--tile must be an integer >= 16"),
    ("predict batch 0", lambda d: [*PREDICT, "--out", "o.tif", "--batch", "0"], "--batch must be"),
    ("predict readers 0", lambda d: [*PREDICT, "--out", "o.tif", "--readers", "0"], "--readers"),
    ("predict unknown device", lambda d: [*PREDICT, "--out", "o.tif", "--device", "tpu"],
     "--device 'tpu' is not a device"),
    ("synth-data size 4", lambda d: ["synth-data", "new", "--size", "4"], "--size must be >= 8"),
    ("index verify workers 0", lambda d: ["index", "data", "--verify", "--workers", "0"],
     "--workers must be at least 1"),
    # --- bad or implausible inputs
    ("predict missing S2", lambda d: [*PREDICT[:2], "nope.tif", *PREDICT[3:], "--out", "o.tif"],
     "S2 image not found: nope.tif"),
    ("predict 12-band S2", lambda d: [*PREDICT[:2], "s2_12.tif", *PREDICT[3:], "--out", "o.tif"],
     "has 12 band(s), expected 13"),
    ("predict corrupt S2", lambda d: [*PREDICT[:2], "corrupt.tif", *PREDICT[3:], "--out", "o.tif"],
     "corrupt.tif"),
    ("predict 3-band S1", lambda d: [*PREDICT[:4], "s1_3.tif", *PREDICT[5:], "--out", "o.tif"],
     "has 3 band(s), expected 2"),
    ("predict S1 elsewhere", lambda d: [*PREDICT[:4], "far_s1.tif", *PREDICT[5:], "--out", "o.tif"],
     "does not overlap"),
    ("predict without S1", lambda d: ["predict", "--s2", "s2.tif", "--weights", "w.safetensors",
     "--out", "o.tif", "--device", "cpu"], "give the Sentinel-1 image"),
    ("predict bad weights", lambda d: [*PREDICT[:6], "garbage.hdf5", *PREDICT[7:], "--out", "o.tif"],
     "garbage.hdf5"),
    ("predict pix2pix weights", lambda d: [*PREDICT[:6], "p2p.safetensors", *PREDICT[7:], "--out",
     "o.tif"], "no finite receptive field"),
    ("predict all-zero S2", lambda d: [*PREDICT[:2], "zero.tif", *PREDICT[3:], "--out", "o.tif",
     "--mask-out", "m.tif"], "has no valid pixel"),
    ("predict all-NaN S1", lambda d: [*PREDICT[:4], "nan_s1.tif", *PREDICT[5:], "--out", "o.tif"],
     "has valid S1 data"),
    ("mask all-zero S2", lambda d: ["mask", "zero.tif", "m.tif"], "has no valid pixel"),
    ("mask 12-band S2", lambda d: ["mask", "s2_12.tif", "m.tif"], "12 band(s), expected 13"),
    ("convert garbage", lambda d: ["convert-weights", "garbage.hdf5", "w2.safetensors"],
     "not an HDF5 file"),
    ("info missing", lambda d: ["info", "nope.safetensors"], "weight file not found"),
    ("info refused checkpoint", lambda d: ["info", "evil.ckpt"],
     "refused without unpickling code"),
    ("evaluate missing weights", lambda d: ["evaluate", "--weights", "nope.safetensors", "--data",
     "data", "--out", "ev"], "weight file not found"),
    ("evaluate missing data", lambda d: ["evaluate", "--weights", "w.safetensors", "--data",
     "nodata", "--out", "ev"], "data folder not found"),
    ("evaluate corrupt patch in a worker", lambda d: (_corrupt_data(d), ["evaluate", "--weights",
     "w.safetensors", "--data", "data", "--out", "ev", "--num-workers", "2", "--device", "cpu"])[1],
     "_s2_cloudy_106_p1.tif"),
    ("index missing root", lambda d: ["index", "nope"], "does not exist"),
    # --- training fails early, leaving no run folder
    ("train unknown trainer key", lambda d: ["train", "--config", str(_train_config(d)),
     "trainer.max_epoch=3"], "trainer.max_epoch: not a lightning.Trainer argument"),
    ("train batch size 0", lambda d: ["train", "--config", str(_train_config(d)),
     "data.batch_size=0"], "data.batch_size must be an integer >= 1, got 0"),
    ("train crop larger than patches", lambda d: ["train", "--config",
     str(_train_config(d, crop_size=64))], "data.crop_size is 64, larger than the patches"),
    ("train corrupt resume checkpoint", lambda d: ["train", "--config", str(_train_config(d)),
     "--resume", "corrupt.tif"], "cannot read checkpoint corrupt.tif"),
    ("train refused resume checkpoint", lambda d: ["train", "--config", str(_train_config(d)),
     "--resume", "evil.ckpt"], "refused without unpickling code"),
]


@pytest.mark.parametrize(("setup", "words"), [pytest.param(s, w, id=n) for n, s, w in CASES])
def test_user_error_is_one_line_and_leaves_everything_as_it_was(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], setup: Callable[[Path], list[str]], words: str,
) -> None:  # fmt: skip
    d = _copy_template(template, tmp_path / "case")
    monkeypatch.chdir(d)
    argv = setup(d)
    before = snapshot(d)
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"dsen2cr {argv[0]}: error: "), err
    assert "Traceback" not in err and "\x1b[" not in err
    assert words in lines[0], lines[0]
    assert snapshot(d) == before  # nothing new, nothing left over, inputs unchanged


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40 and len({n for n, _, _ in CASES}) == len(CASES)


# --------------------------------------------------------------------------- overwrite


def test_overwrite_replaces_and_refuses_without_it(template: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    d = _copy_template(template, tmp_path / "ow")
    monkeypatch.chdir(d)
    assert main([*PREDICT, "--out", "o.tif", "--mask-out", "m.tif"]) == 0
    first = snapshot(d)
    assert main([*PREDICT, "--out", "o.tif"]) == 2
    assert snapshot(d) == first
    assert main([*PREDICT, "--out", "o.tif", "--mask-out", "m.tif", "--overwrite"]) == 0
    with rasterio.open(d / "o.tif") as a:
        assert a.count == 13
    assert main(["mask", "s2.tif", "m.tif", "--overwrite"]) == 0
    assert main(["convert-weights", "w.safetensors", "w2.safetensors"]) == 0
    assert main(["convert-weights", "w.safetensors", "w2.safetensors", "--overwrite"]) == 0
    assert not [p for p in d.iterdir() if p.name.startswith(".")]


def test_implausible_inputs_are_named_in_a_warning(template: Path, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    d = _copy_template(template, tmp_path / "w")
    with rasterio.open(d / "s2.tif") as src:
        s2 = src.read()
    write_raster_file(d / "u8.tif", (s2 // 64).astype(np.uint8))
    write_raster_file(d / "refl.tif", s2.astype(np.float32) / 10000)
    write_raster_file(d / "neg.tif", s2.astype(np.int16) - 200)
    with rasterio.open(d / "s1.tif") as src:
        write_raster_file(d / "lin.tif", (10 ** (src.read() / 10)).astype(np.float32))
    for name, words in (("u8.tif", "is uint8"), ("refl.tif", "look like reflectance"),
                        ("neg.tif", "negative values")):  # fmt: skip
        caplog.clear()
        assert main(["mask", str(d / name), str(d / f"m_{name}"), "--quiet"]) == 0
        assert words in caplog.text and name in caplog.text
    caplog.clear()
    args = ["predict", "--s2", str(d / "s2.tif"), "--s1", str(d / "lin.tif"), "--weights",
            str(d / "w.safetensors"), "--out", str(d / "o.tif"), "--device", "cpu", "--quiet"]
    assert main(args) == 0
    assert "look like linear power" in caplog.text
    caplog.clear()
    assert main(["mask", str(d / "s2.tif"), str(d / "plain.tif")]) == 0
    assert "warning" not in caplog.text


# --------------------------------------------------------------------------- signals


def _spawn_predict(d: Path, out: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dsen2cr.cli", "predict", "--s2", "big_s2.tif", "--s1", "big_s1.tif",
         "--weights", "w.safetensors", "--out", out, "--mask-out", f"m_{out}", "--tile", "64",
         "--device", "cpu", "--quiet"],
        cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_staging(d: Path, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not any(p.name.startswith(".") and "@" in p.name for p in d.iterdir()):  # a staging file
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout, "no staging file appeared"
        time.sleep(0.05)


@pytest.fixture
def big(template: Path, tmp_path: Path) -> Path:
    d = _copy_template(template, tmp_path / "sig")
    sc = make_scene(1024, 1024, seed=4, cloud_cover=0.4)
    write_raster_file(d / "big_s2.tif", sc["s2_cloudy"])
    write_raster_file(d / "big_s1.tif", sc["s1"])
    torch.manual_seed(0)
    DSen2CR(features=16, blocks=4).save_pretrained(d / "w.safetensors")
    return d


@pytest.mark.slow
def test_sigterm_cleans_up_like_sigint(big: Path) -> None:
    before = snapshot(big)
    proc = _spawn_predict(big, "o.tif")
    _wait_for_staging(big, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "dsen2cr predict: terminated (SIGTERM)"
    assert snapshot(big) == before  # no output, no staging file, inputs unchanged


@pytest.mark.slow
def test_a_killed_run_leaves_nothing_after_the_next_run(big: Path) -> None:
    proc = _spawn_predict(big, "o.tif")
    _wait_for_staging(big, proc)
    proc.kill()
    proc.wait()
    stale = sorted(p.name for p in big.iterdir() if p.name.startswith("."))
    assert stale and all(f"@{proc.pid}" in n for n in stale)  # SIGKILL cannot be handled
    # a live process's staging file in the same folder is never touched
    live = staging_path(big / "other.tif", "partial")
    live.write_bytes(b"being written")
    assert main(["mask", str(big / "s2.tif"), str(big / "m2.tif"), "--quiet"]) == 0
    assert sorted(p.name for p in big.iterdir() if p.name.startswith(".")) == [live.name]
    assert not (big / "o.tif").exists() and (big / "m2.tif").exists()
    live.unlink()


def test_remove_stale_staging_spares_other_hosts_and_plain_files(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    mine = staging_path(tmp_path / "a.tif")
    names = [f".a.partial@{mine.name.split('@')[1]}@{dead}.tif",  # this host, dead: removed
             f".a.stage@{mine.name.split('@')[1]}@{dead}.ovr2.tif",  # its overview level too
             f".a.partial@otherhost@{dead}.tif",  # another host: its process may be alive
             mine.name, ".hidden.tif", f"a.partial@x@{dead}.tif"]  # fmt: skip
    for n in names:
        (tmp_path / n).write_text("x")
    removed = remove_stale_staging(tmp_path)
    assert sorted(p.name for p in removed) == sorted(names[:2])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])


# --------------------------------------------------------------------------- verify


def test_index_verify_finds_every_kind_of_bad_file(template: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    d = _copy_template(template, tmp_path / "v")
    root = d / "data"
    assert main(["index", str(root), "--verify", "--workers", "2"]) == 0
    clean = json.loads(capsys.readouterr().out)["verify"]
    assert clean["bad"] == 0 and clean["files"] == clean["ok"] == 36 and clean["patch_size"] == [32, 32]
    assert Path(clean["bad_list"]).read_text() == ""
    s1 = sorted(root.rglob("*_s1_*.tif"))
    s2 = sorted(root.rglob("*_s2_[0-9]*.tif"))
    files = [s1[0], s1[1], s2[0], s2[1], s1[2], s2[2], s2[3]]
    files[0].write_bytes(files[0].read_bytes()[:2000])  # a cut download (uncompressed)
    files[1].write_bytes(b"")  # an empty file
    files[2].write_bytes(b"<html>503 Service Unavailable</html>")  # an error page
    write_raster_file(files[3], np.zeros((13, 32, 32), np.uint8), crs="EPSG:32632")  # wrong dtype
    write_raster_file(files[4], np.zeros((5, 32, 32), np.float32), crs="EPSG:32632")  # wrong bands
    write_raster_file(files[5], np.ones((13, 16, 16), np.uint16), crs="EPSG:32632")  # wrong size
    deflate = write_raster_file(d / "x.tif", np.ones((13, 32, 32), np.uint16), compress="deflate",
                                block=16)  # fmt: skip
    files[6].write_bytes(deflate.read_bytes()[: deflate.stat().st_size - 200])  # cut compressed
    bad_list = tmp_path / "bad.txt"
    assert main(["index", str(root), "--verify", "--bad-list", str(bad_list)]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)["verify"]
    assert report["bad"] == 7 and report["ok"] == 29 and report["files"] == 36
    assert set(report["problems"]) == {"empty", "truncated", "unreadable", "dtype", "bands", "size"}
    listed = dict(line.split("\t") for line in bad_list.read_text().splitlines())
    assert set(listed) == {str(f) for f in files[:7]}
    assert captured.err.strip().endswith(f"list in {bad_list}")


@pytest.mark.slow
def test_training_on_a_corrupt_patch_in_a_worker_ends_with_one_line(template: Path, tmp_path: Path) -> None:
    """Found during training (in a data-loader worker): Lightning's banner, then one line, no
    traceback, and no run folder (no checkpoint was written)."""
    d = _copy_template(template, tmp_path / "tr")
    f = sorted((d / "data").rglob("*_s2_cloudy_*.tif"))
    for p in f:
        if "spring_s2_cloudy_1_" in p.name or "_s2_cloudy_10_" in p.name:
            p.write_bytes(p.read_bytes()[:3000])  # cut downloads among the train patches
    cfg = _train_config(d, crop_size=16, batch_size=64, num_workers=2)
    before = snapshot(d)
    proc = subprocess.run([sys.executable, "-m", "dsen2cr.cli", "train", "--config", str(cfg)],
                          cwd=d, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("dsen2cr train: error: cannot read S2 cloudy image"), last
    assert "corrupt or truncated" in last and "Traceback" not in proc.stderr
    assert snapshot(d) == before
