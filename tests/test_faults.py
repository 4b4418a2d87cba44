"""Real faults, run as a user meets them: a full disk, a memory bomb, hostile inputs.

A full disk is a small tmpfs mounted for the test where the test may mount one (root), else the
process's file-size limit (``RLIMIT_FSIZE``, which Python turns into ``EFBIG``). Each command runs
in a child process, as a user would run it; the test asserts one line on stderr naming the
output and the cause, a non-zero exit status, no traceback, and no file, empty or partial,
under any output name (nor any staging file).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from dsen2cr.data.synthetic import generate_dataset, make_scene
from dsen2cr.models import DSen2CR
from tests.conftest import write_raster_file

ROOT = Path(__file__).resolve().parents[1]
DISK = 96 * 1024
"""Bytes of the full disk: every output of the cases below needs more."""


def _mount(folder: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or os.geteuid() != 0 or os.environ.get("DSEN2CR_TEST_NO_TMPFS"):
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(folder)],
                          capture_output=True, text=True)  # fmt: skip
    return proc.returncode == 0


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    sc = make_scene(300, 400, seed=1, cloud_cover=0.5)
    write_raster_file(d / "s2.tif", sc["s2_cloudy"])
    write_raster_file(d / "s1.tif", sc["s1"])
    torch.manual_seed(0)
    DSen2CR(features=32, blocks=2).save_pretrained(d / "w.safetensors")  # 180 kB
    generate_dataset(d / "sen12mscr", rois=4, patches=4, size=64, progress=False)
    return d


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[tuple[Path, Callable[..., subprocess.CompletedProcess[str]]]]:
    """``(folder, run)``: a folder on a disk of :data:`DISK` bytes, and ``run(*argv)`` running
    ``dsen2cr`` in a child process that writes there."""
    folder = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mounted = _mount(folder)

    def limit() -> None:  # no tmpfs here: the file-size limit stands in for a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (DISK, DISK))

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dsen2cr.cli", *argv], cwd=ROOT,
                              capture_output=True, text=True, timeout=300,
                              preexec_fn=None if mounted else limit)  # fmt: skip

    yield folder, run
    if mounted:
        subprocess.run(["umount", str(folder)], check=False)


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    ["predict", "mask", "convert-weights", "mosaic", "synth-data"],
)
def test_a_full_disk_is_one_line_and_leaves_nothing(inputs: Path, full_disk, case: str) -> None:
    disk, run = full_disk
    out = {
        "predict": disk / "pred" / "cloudfree.tif",
        "mask": disk / "mask.tif",
        "convert-weights": disk / "w.safetensors",
        "mosaic": disk / "scenes",
        "synth-data": disk / "synth",
    }[case]
    argv = {
        "predict": ["predict", "--s2", str(inputs / "s2.tif"), "--s1", str(inputs / "s1.tif"),
                    "--weights", str(inputs / "w.safetensors"), "--out", str(out),
                    "--mask-out", str(disk / "pred" / "mask.tif"), "--device", "cpu", "--quiet"],
        "mask": ["mask", str(inputs / "s2.tif"), str(out), "--quiet", "--compress", "NONE"],
        "convert-weights": ["convert-weights", str(inputs / "w.safetensors"), str(out)],
        "mosaic": ["mosaic", str(inputs / "sen12mscr"), str(out), "--split", "all"],
        "synth-data": ["synth-data", str(out), "--rois", "2", "--patches", "4", "--size", "64"],
    }[case]  # fmt: skip
    before = files_in(disk)
    proc = run(*argv)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dsen2cr {case}: error: cannot write {disk}"), proc.stderr
    assert "No space left on device" in last or "File too large" in last, last
    if case in ("predict", "mask", "convert-weights"):
        assert proc.stderr.strip().count("\n") == 0, proc.stderr  # exactly one line
    if case == "mosaic":  # the scenes finished before the disk filled are kept, whole
        left = [f for f in files_in(disk) if f.endswith(".tif")]
        assert len(left) % 3 == 0 and all(os.path.getsize(disk / f) > 0 for f in left)
        assert not [f for f in files_in(disk) if Path(f).name.startswith(".")]
    else:
        assert files_in(disk) == before, files_in(disk)


# --------------------------------------------------------------------------- memory bombs
def run_limited(argv: list[str], address_space: int) -> subprocess.CompletedProcess[str]:
    """``dsen2cr ARGV`` in a child process whose address space is limited (``ulimit -v``)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return subprocess.run([sys.executable, "-m", "dsen2cr.cli", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, preexec_fn=limit)  # fmt: skip


def claimed_scene(path: Path, size: int, **layout: object) -> Path:
    """A GeoTIFF of a few hundred bytes claiming ``size x size`` pixels of 13 bands (no block
    is written: GDAL reads them as 0)."""
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=13,
                       dtype="uint16", crs="EPSG:32633", transform=from_origin(500000, 5600000, 10, 10),
                       sparse_ok=True, compress="deflate", **layout):  # fmt: skip
        pass
    return path


@pytest.mark.slow
def test_memory_bombs_are_refused_or_run_in_bounded_memory(inputs: Path, tmp_path: Path) -> None:
    weights = str(inputs / "w_nosar.safetensors")
    if not Path(weights).exists():
        torch.manual_seed(0)
        DSen2CR(features=8, blocks=1, sar_channels=0).save_pretrained(weights)
    limit = 3 * 2**30  # torch and GDAL need about 1.5 GB of address space to start
    # one strip of 200000 x 200000 pixels: decoding a block would need 969 GiB
    strip = claimed_scene(tmp_path / "strip.tif", 200_000, blockysize=200_000)
    assert strip.stat().st_size < 1000
    proc = run_limited(["predict", "--s2", str(strip), "--weights", weights, "--out",
                        str(tmp_path / "a.tif"), "--device", "cpu", "--quiet"], limit)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "stored in blocks of 200000 x 200000 pixels" in proc.stderr
    # tiled, 6144 x 6144 of nothing: read in stripes of tiles within the limit, then refused
    tiled = claimed_scene(tmp_path / "tiled.tif", 6144, tiled=True, blockxsize=512, blockysize=512)
    proc = run_limited(["predict", "--s2", str(tiled), "--weights", weights, "--out",
                        str(tmp_path / "b.tif"), "--device", "cpu", "--quiet"], limit)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "has no valid pixel" in proc.stderr
    # a tile that cannot fit this process's memory is refused before anything is allocated
    proc = run_limited(["predict", "--s2", str(tiled), "--weights", weights, "--out",
                        str(tmp_path / "c.tif"), "--device", "cpu", "--quiet", "--tile", "6000"],
                       limit)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("dsen2cr predict: error: --tile 6000 gives windows of")
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tif" and p.name[0] in "abc"]


def test_wide_scenes_read_in_stripes_of_bounded_width() -> None:
    from dsen2cr.scene.tiling import STRIPE_MAX, plan_tiles, stripe_columns

    tiles = plan_tiles(1024, 200_000, 512, 34)
    spans = stripe_columns(tiles)
    assert len(spans) == -(-200_000 // STRIPE_MAX)
    assert max(b - a for a, b in spans.values()) <= STRIPE_MAX + 2 * 34
    order = [t.stripe for t in tiles]
    assert order == sorted(order)  # stripe by stripe


# --------------------------------------------------------------------------- hostile inputs
def test_bands_out_of_order_are_refused_unless_asked(tmp_path: Path, capsys) -> None:
    """A 13-band S2 with its bands reversed: named (band descriptions) or not, predict and mask
    stop with one line; --no-band-check proceeds."""
    import rasterio

    from dsen2cr.cli import main

    sc = make_scene(96, 96, seed=3, cloud_cover=0.6)
    s2 = sc["s2_cloudy"]
    write_raster_file(tmp_path / "ok.tif", s2)
    write_raster_file(tmp_path / "reversed.tif", s2[::-1].copy())
    write_raster_file(tmp_path / "named.tif", s2, descriptions=tuple(f"B{i}" for i in
                      (1, 2, 3, 4, 5, 6, 7, 8, "8A", 9, 10, 12, 11)))  # fmt: skip
    assert main(["mask", str(tmp_path / "ok.tif"), str(tmp_path / "m0.tif"), "--quiet"]) == 0
    for name, words in (("reversed", "brighter than its band 3"), ("named", "names its bands")):
        assert main(["mask", str(tmp_path / f"{name}.tif"), str(tmp_path / "m.tif"), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0] and "--no-band-check" in err[0], err
        assert not (tmp_path / "m.tif").exists()
    assert main(["mask", str(tmp_path / "reversed.tif"), str(tmp_path / "m.tif"), "--quiet",
                 "--no-band-check"]) == 0  # fmt: skip
    with rasterio.open(tmp_path / "m.tif") as ds:
        assert ds.count == 1


def test_band_check_has_no_false_alarm_on_real_scenes() -> None:
    """Every real 13-band Sentinel-2 file of ../shared/realdata passes, and fails reversed."""
    import numpy as np
    import rasterio

    from dsen2cr.scene.sentinel2 import band_order_problem, open_s2
    from tests.helpers import REALDATA

    files = [p for p in sorted(REALDATA.rglob("*.tif")) if rasterio.open(p).count == 13]
    if not files:
        pytest.skip(f"real data not present: {REALDATA}")
    for f in files:
        assert band_order_problem(open_s2(f)) is None, f
    with rasterio.open(files[0]) as src:
        data, profile = src.read(), src.profile
    rev = Path(os.environ.get("TMPDIR", "/tmp")) / f"dsen2cr-reversed-{uuid.uuid4().hex}.tif"
    try:
        with rasterio.open(rev, "w", **profile) as dst:
            dst.write(np.ascontiguousarray(data[::-1]))
        assert band_order_problem(open_s2(rev)) is not None
    finally:
        rev.unlink(missing_ok=True)


def test_errors_are_the_builtins_users_catch_and_name_parameters(tmp_path: Path, capsys) -> None:
    from dsen2cr.cli import main
    from dsen2cr.errors import DataError, OptionError, OutputExistsError
    from dsen2cr.scene import PredictOptions, mask_scene

    with pytest.raises(FileNotFoundError):  # a missing input
        mask_scene(tmp_path / "missing.tif", tmp_path / "m.tif")
    with pytest.raises(ValueError):  # a bad option
        PredictOptions(tile=3)
    write_raster_file(tmp_path / "s2.tif", make_scene(32, 32, seed=1)["s2_cloudy"])
    (tmp_path / "m.tif").write_text("mine")
    with pytest.raises(FileExistsError) as err:
        mask_scene(tmp_path / "s2.tif", tmp_path / "m.tif")
    assert isinstance(err.value, OutputExistsError) and isinstance(err.value, OptionError)
    assert "add overwrite=True to replace it" in str(err.value)  # Python: the parameter
    assert main(["mask", str(tmp_path / "s2.tif"), str(tmp_path / "m.tif")]) == 2
    assert "add --overwrite to replace it" in capsys.readouterr().err  # the CLI: its flag
    assert issubclass(DataError, ValueError)
    # an output under a symbolic link that points nowhere is named as such
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    assert main(["mask", str(tmp_path / "s2.tif"), str(tmp_path / "gone" / "m.tif")]) == 2
    assert "is a symbolic link to" in capsys.readouterr().err
