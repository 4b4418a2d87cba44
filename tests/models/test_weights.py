"""Weight files that lie or are no weight files at all: one WeightsError, nothing allocated."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dsen2cr import cli
from dsen2cr.errors import WeightsError, WeightsNotFoundError
from dsen2cr.models import DSen2CR, Pix2PixPredictor, load_weights, read_weights
from dsen2cr.models.pix2pix import UNetGenerator
from dsen2cr.models.weights import CHECKPOINT_KEY, read_checkpoint
from tests.conftest import write_raster_file


def _forge(path: Path, src: Path, **config: Any) -> Path:
    """A copy of the safetensors file ``src`` whose metadata claims ``config`` (over its own)."""
    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    forged = {**json.loads(meta["config"]), **config}
    save_file(tensors, str(path), metadata={**meta, "config": json.dumps(forged)})
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return DSen2CR(features=8, blocks=1).save_pretrained(tmp_path / "tiny.safetensors")


FORGED = [
    ({"features": -8}, "features=-8 must be between 1 and 4096"),
    ({"features": 8.0}, "features=8.0 must be an integer"),
    ({"features": "8"}, 'features="8" must be an integer'),
    ({"blocks": True}, "blocks=true must be an integer"),
    ({"res_scale": float("inf")}, "res_scale=Infinity must be a finite number"),
    ({"res_scale": "0.1"}, 'res_scale="0.1" must be a number'),
    ({"width": 8}, 'unknown key "width" (known: features, blocks'),
    # within the bounds but not what the tensors are: the skeleton on the meta device says so
    ({"blocks": 2}, "it needs a tensor body.1.conv1.weight, which the file does not have"),
    ({"blocks": 0}, "the file has a tensor \"body.0.conv1.bias\" it does not use"),
    ({"sar_channels": 0}, "it needs head.weight of shape (8, 13, 3, 3), the file's has shape "
     "(8, 15, 3, 3)"),
]  # fmt: skip
"""Forged configurations of a small file (the huge ones run under a memory limit, below)."""


@pytest.mark.parametrize(("config", "message"), FORGED)
def test_forged_safetensors_metadata(tmp_path: Path, tiny: Path, config: dict, message: str) -> None:
    path = _forge(tmp_path / "forged.safetensors", tiny, **config)
    with pytest.raises(WeightsError) as err:
        load_weights(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


LIMITED = (
    "import resource, sys, torch\n"
    "torch.set_num_threads(1)\n"
    "from dsen2cr.errors import WeightsError\n"
    "from dsen2cr.models import load_weights\n"
    "vm = next(int(ln.split()[1]) * 1024 for ln in open('/proc/self/status')\n"
    "          if ln.startswith('VmSize:'))\n"
    "soft, hard = resource.getrlimit(resource.RLIMIT_AS)\n"
    "limit = vm + (1 << 30) if hard == resource.RLIM_INFINITY else min(hard, vm + (1 << 30))\n"
    "resource.setrlimit(resource.RLIMIT_AS, (limit, hard))\n"
    "for path in sys.argv[1:]:\n"
    "    try:\n"
    "        print('loaded', type(load_weights(path)).__name__, flush=True)\n"
    "    except WeightsError as exc:\n"
    "        print('refused', exc, flush=True)\n"
)  # fmt: skip
"""Load each file named on the command line under an address-space limit of 1 GiB over what the
interpreter already holds; one line per file."""


def _checkpoint(path: Path, model: torch.nn.Module, record: dict[str, Any], **extra: Any) -> Path:
    state = {f"{record['prefix']}{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, CHECKPOINT_KEY: record, **extra}, path)
    return path


def test_forged_metadata_allocates_nothing(tmp_path: Path, tiny: Path) -> None:
    """Forged configurations that would need terabytes (or endless modules) are refused with a
    WeightsError under a 1 GiB memory limit: nothing is allocated for what the metadata claims.
    (Before the fix they ended in allocation failures, and without a limit took the machine's
    memory: they run here in a limited child process only.)"""
    model = DSen2CR(features=8, blocks=1)
    record = {"architecture": "DSen2CR", "config": model.config, "prefix": "model."}
    gen = Pix2PixPredictor(UNetGenerator(ngf=4, num_downs=3)).save_pretrained(tmp_path / "g.safetensors")
    cases = [
        (_forge(tmp_path / "features.safetensors", tiny, features=1000000),
         "features=1000000 must be between 1 and 4096"),
        (_forge(tmp_path / "blocks.safetensors", tiny, blocks=10**30),
         "blocks=1000000000000000000000000000000 must be between 0 and 1024"),
        (_forge(tmp_path / "blocks60.safetensors", tiny, blocks=10**60),
         "blocks=1000000000000000000000000000000000000... must be between 0 and 1024"),
        (_forge(tmp_path / "in_bounds.safetensors", tiny, features=4096, blocks=1024),
         "(features=4096, blocks=1024, res_scale=0.1, sar_channels=2, optical_channels=13): it "
         "needs head.weight of shape (4096, 15, 3, 3), the file's has shape (8, 15, 3, 3)"),
        (_forge(tmp_path / "p2p.safetensors", gen, ngf=4096, num_downs=16),
         "it needs model.down.0.weight of shape (4096, 15, 4, 4), the file's has shape (4, 15, 4, 4)"),
        (_checkpoint(tmp_path / "features.ckpt", model,
                     {**record, "config": {**model.config, "features": 1000000}}),
         "features=1000000 must be between 1 and 4096"),
        (_checkpoint(tmp_path / "in_bounds.ckpt", model,
                     {**record, "config": {**model.config, "features": 4096, "blocks": 1024}}),
         "it needs head.weight of shape (4096, 15, 3, 3), the file's has shape (8, 15, 3, 3)"),
    ]  # fmt: skip
    files = [*(path for path, _ in cases), tiny, gen]
    proc = subprocess.run([sys.executable, "-c", LIMITED, *map(str, files)], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    for (path, message), line in zip(cases, lines, strict=False):
        assert line.startswith(f"refused {path}") or line.startswith(f"refused weights in {path}")
        assert message in line, line
    # genuine files still load under the same limit
    assert lines[len(cases) :] == ["loaded DSen2CR", "loaded Pix2PixPredictor"]


def _checkpoint(path: Path, model: torch.nn.Module, record: dict[str, Any], **extra: Any) -> Path:
    state = {f"{record['prefix']}{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, CHECKPOINT_KEY: record, **extra}, path)
    return path


def test_forged_checkpoint_records(tmp_path: Path) -> None:
    model = DSen2CR(features=8, blocks=1)
    record = {"architecture": "DSen2CR", "config": model.config, "prefix": "model."}
    ok = _checkpoint(tmp_path / "ok.ckpt", model, record)
    assert load_weights(ok).config == model.config
    cases = [({**model.config, "features": -1}, "features=-1 must be between 1 and 4096"),
             ({**model.config, "features": 16}, "it needs head.weight of shape (16, 15, 3, 3), "
              "the file's has shape (8, 15, 3, 3)"),
             ({**model.config, "depth": 3}, 'unknown key "depth"'),
             ([["features", 8]], "is not a dsen2cr training checkpoint (no network record)")]  # fmt: skip
    for config, message in cases:
        path = _checkpoint(tmp_path / "forged.ckpt", model, {**record, "config": config})
        with pytest.raises(WeightsError) as err:
            load_weights(path)
        assert message in str(err.value) and str(path) in str(err.value)
    # odd but harmless values around the record: read, not a crash
    odd = _checkpoint(tmp_path / "odd.ckpt", model, record, epoch="seven", global_step=None,
                      hyper_parameters={"config": {"out": "x"}})  # fmt: skip
    assert load_weights(odd).training_info["epochs"] == 0


def test_forged_pix2pix_generator(tmp_path: Path) -> None:
    gen = Pix2PixPredictor(UNetGenerator(ngf=4, num_downs=3))
    path = gen.save_pretrained(tmp_path / "g.safetensors")
    assert load_weights(path).config == gen.config
    for config, message in (({"ngf": 8}, "it needs model.down.0.weight of shape (8, 15, 4, 4), "
                              "the file's has shape (4, 15, 4, 4)"),
                            ({"num_downs": 1000}, "num_downs=1000 must be between 2 and 16"),
                            ({"dropout": "yes"}, 'dropout="yes" must be true or false')):  # fmt: skip
        with pytest.raises(WeightsError) as err:
            load_weights(_forge(tmp_path / "forged.safetensors", path, **config))
        assert message in str(err.value)


def _not_weights(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    tif = write_raster_file(tmp_path / "scene.tif", np.ones((13, 8, 8), np.uint16))
    text = tmp_path / "notes.safetensors"
    text.write_text("some notes, not weights\n" * 4)
    short = tmp_path / "short.bin"
    short.write_bytes(b"abc")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    fake_ckpt = tmp_path / "fake.ckpt"
    fake_ckpt.write_text("hello world\n" * 10)
    tif_ckpt = tmp_path / "scene.ckpt"
    tif_ckpt.write_bytes(tif.read_bytes())
    h5 = tmp_path / "keras.weights"  # an HDF5 file under another name
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    formats = "dsen2cr reads native .safetensors, the authors' Keras .hdf5/.h5 and training .ckpt files"
    return {"tif": (tif, f"{tif} is not a weight file (it is a TIFF image); {formats}"),
            "text": (text, f"{text} is not a weight file; {formats}"),
            "short": (short, f"{short} is not a weight file; {formats}"),
            "empty": (empty, f"{empty} is not a weight file; {formats}"),
            "fake ckpt": (fake_ckpt, f"cannot read checkpoint {fake_ckpt}: it is not a weight "
                          f"file; {formats}"),
            "tif ckpt": (tif_ckpt, f"cannot read checkpoint {tif_ckpt}: it is not a weight file "
                         f"(it is a TIFF image); {formats}"),
            "hdf5 elsewhere": (h5, f"{h5} is not a weight file (it is an HDF5 file: Keras weights "
                               f"are read from files named .hdf5 or .h5); {formats}")}  # fmt: skip


def test_files_that_are_not_weights(tmp_path: Path, capsys) -> None:
    for name, (path, message) in _not_weights(tmp_path).items():
        with pytest.raises(WeightsError) as err:
            load_weights(path)
        assert str(err.value) == message, name
        assert cli.main(["info", str(path)]) == 2
        captured = capsys.readouterr()
        assert captured.err.splitlines() == [f"dsen2cr info: error: {err.value}"], name
        assert captured.out == ""
    with pytest.raises(WeightsError, match=f"^weights {re.escape(str(tmp_path))} is a folder, expected"):
        load_weights(tmp_path)
    tif = tmp_path / "scene.tif"  # resuming training asks for a checkpoint: only that is offered
    with pytest.raises(WeightsError) as err:
        read_weights(tif, format="checkpoint")
    assert str(err.value) == (f"cannot read checkpoint {tif}: it is not a training checkpoint (it "
                              "is a TIFF image)")  # fmt: skip
    tiny = DSen2CR(features=4, blocks=1).save_pretrained(tmp_path / "w.safetensors")
    cut = tmp_path / "cut.safetensors"  # a real safetensors file cut short: not "not weights"
    cut.write_bytes(tiny.read_bytes()[: tiny.stat().st_size // 2])
    with pytest.raises(WeightsError, match=r"^cannot read weight file .*cut\.safetensors"):
        load_weights(cut)


class _Code:
    """An object that a checkpoint may not hold: unpickling it would run this module's code."""


def test_read_checkpoint_is_the_one_safe_reader(tmp_path: Path) -> None:
    ckpt = tmp_path / "run.ckpt"
    torch.save({"state_dict": {"model.w": torch.ones(2)}, "epoch": 3}, ckpt)
    content = read_checkpoint(ckpt)
    assert content["epoch"] == 3 and torch.equal(content["state_dict"]["model.w"], torch.ones(2))
    with pytest.raises(WeightsNotFoundError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "missing.ckpt")
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Code()}, evil)
    with pytest.raises(WeightsError, match="refused without unpickling code"):
        read_checkpoint(evil)
    bare = tmp_path / "bare.ckpt"
    torch.save({"epoch": 1}, bare)
    with pytest.raises(WeightsError, match=r"not a dsen2cr training checkpoint \(no state_dict"):
        read_checkpoint(bare)
    with pytest.raises(WeightsError, match="it is not a training checkpoint"):
        read_checkpoint(write_raster_file(tmp_path / "scene.tif", np.ones((1, 4, 4), np.uint16)))


def test_no_other_torch_load_in_the_package() -> None:
    """Every checkpoint is read by models.weights.read_checkpoint (weights_only, typed errors)."""
    src = Path(__file__).resolve().parents[2] / "src" / "dsen2cr"
    users = sorted(str(p.relative_to(src)) for p in src.rglob("*.py")
                   if re.search(r"torch\.load\(", p.read_text()))  # fmt: skip
    assert users == [str(Path("models") / "weights.py")]
