"""Evaluation: report files, identity baseline, weight formats, CLI (dsen2cr.evaluation)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dsen2cr.cli import main
from dsen2cr.cloudmask import binary_mask
from dsen2cr.data import SEN12MSCR
from dsen2cr.data.synthetic import generate_dataset
from dsen2cr.errors import DSen2CRError
from dsen2cr.evaluation import IDENTITY, evaluate, format_table, pick_examples
from dsen2cr.metrics import METRIC_KEYS, TABLE1_COLUMNS, image_metrics
from dsen2cr.models import DSen2CR, Pix2PixPredictor, UNetGenerator
from dsen2cr.scaling import scaled_to_reflectance, scaled_to_s2

OUTPUTS = ("metrics.json", "metrics.csv", "table.md", "band_nrmse.png", "examples.png")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("sen12mscr"), rois=6, patches=2, size=32)


@pytest.fixture(scope="module")
def test_split(data_root: Path):
    ds = SEN12MSCR(data_root, split="test", crop_size=None)
    assert len(ds) > 0
    return ds


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    out = {}
    sar = DSen2CR(features=8, blocks=1)
    out["sar"] = sar.save_pretrained(d / "tiny_sar.safetensors")
    nosar = DSen2CR(features=8, blocks=1, sar_channels=0)
    out["nosar"] = nosar.save_pretrained(d / "tiny_nosar.safetensors")
    zero = DSen2CR(features=8, blocks=1)
    with torch.no_grad():  # a zero tail makes the long skip return the cloudy input exactly
        zero.tail.weight.zero_()
        zero.tail.bias.zero_()
    out["zero"] = zero.save_pretrained(d / "zero_tail.safetensors")
    out["keras"] = _write_keras(sar, d / "tiny_sar_keras.hdf5")
    out["pix2pix"] = Pix2PixPredictor(UNetGenerator(ngf=4, num_downs=3)).save_pretrained(
        d / "tiny_pix2pix.safetensors"
    )
    return out


def _write_keras(model: DSen2CR, path: Path) -> Path:
    """The model's weights in the Keras 2.x weights-only HDF5 layout (HWIO kernels)."""
    import h5py

    convs = [model.head] + [c for b in model.body for c in (b.conv1, b.conv2)] + [model.tail]
    names = [f"conv2d_{i + 1}" for i in range(len(convs))]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array(["input_1", *names], dtype="S")
        f.attrs["keras_version"] = b"2.2.4"
        f.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S")
        for name, conv in zip(names, convs, strict=True):
            g = f.create_group(name)
            g.attrs["weight_names"] = np.array([f"{name}/kernel:0", f"{name}/bias:0"], dtype="S")
            g.create_dataset(f"{name}/kernel:0", data=conv.weight.detach().numpy().transpose(2, 3, 1, 0))
            g.create_dataset(f"{name}/bias:0", data=conv.bias.detach().numpy())
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, data_root: Path, weights: dict[str, Path]):
    out = tmp_path_factory.mktemp("eval")
    result = evaluate(
        [weights[k] for k in ("sar", "nosar", "zero", "keras", "pix2pix")],
        data_root,
        split="test",
        out_dir=out,
        names=["sar", "nosar", "zero", "keras", "pix2pix"],
        batch_size=3,
        examples=2,
        device="cpu",
    )
    return out, result


def test_report_files_and_keys(report, test_split) -> None:
    out, result = report
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert set(on_disk["models"]) == {"sar", "nosar", "zero", "keras", "pix2pix", IDENTITY}
    assert list(on_disk["models"])[-1] == IDENTITY
    assert on_disk["split"] == "test" and on_disk["images"] == len(test_split)
    assert on_disk["device"] == "cpu"
    for entry in on_disk["models"].values():
        assert set(METRIC_KEYS) <= set(entry)
        assert len(entry["band_nrmse"]) == 13
        assert entry["images"] == len(test_split)
        assert set(entry["undefined"]) == set(METRIC_KEYS)
        assert entry["target_mae"] > 0 and math.isfinite(entry["target_psnr"])
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 * len(test_split)
    assert {"model", "season", "roi", "patch", "cloud_fraction", *METRIC_KEYS} <= set(rows[0])
    table = (out / "table.md").read_text()
    lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    assert len(lines) == 2 + 6
    assert len(lines[0].split("|")) - 2 == 1 + len(TABLE1_COLUMNS)
    assert "PSNR" in lines[0] and "SSIM" in lines[0] and "SAM Recon" in lines[0]


def test_identity_matches_independent_image_metrics(report, test_split) -> None:

    _, result = report
    per_key: dict[str, list[float]] = {k: [] for k in METRIC_KEYS}
    for i in range(len(test_split)):
        s = test_split[i]
        cloudy = s["optical"].numpy().astype(np.float64)
        mask = binary_mask(scaled_to_s2(s["optical"].numpy()))
        values = image_metrics(
            scaled_to_reflectance(cloudy),
            scaled_to_reflectance(s["target"].numpy().astype(np.float64)),
            scaled_to_reflectance(cloudy),
            mask,
        )
        for k in METRIC_KEYS:
            per_key[k].append(values[k])
    ident = result["models"][IDENTITY]
    for k in METRIC_KEYS:
        vals = np.array(per_key[k])
        finite = vals[np.isfinite(vals)]
        if finite.size == 0:
            assert ident[k] is None, k
            continue
        assert ident[k] == pytest.approx(finite.mean(), rel=1e-5, abs=1e-7), k
        assert ident["undefined"][k] == int((~np.isfinite(vals)).sum()), k
    assert ident["reprod_mae"] in (0.0, None)  # the input reproduces itself exactly


def test_zero_tail_model_equals_identity(report) -> None:
    _, result = report
    ident, zero = result["models"][IDENTITY], result["models"]["zero"]
    for k in METRIC_KEYS:
        if ident[k] is None:
            assert zero[k] is None
        else:
            assert zero[k] == pytest.approx(ident[k], rel=1e-6, abs=1e-9), k
    assert zero["band_nrmse"] == pytest.approx(ident["band_nrmse"], rel=1e-6)


def test_keras_layout_gives_the_native_numbers(report) -> None:
    _, result = report
    sar, keras = result["models"]["sar"], result["models"]["keras"]
    for k in METRIC_KEYS:
        if sar[k] is not None:
            assert keras[k] == pytest.approx(sar[k], rel=1e-5, abs=1e-8), k
    # a random untrained network is worse than returning the input
    assert sar["target_mae"] != pytest.approx(result["models"][IDENTITY]["target_mae"])


def test_format_table_marks_undefined() -> None:
    res = {"models": {"m": {k: 0.5 for k in METRIC_KEYS} | {"recon_mae": None}}}
    table = format_table(res, caption="cap")
    row = next(ln for ln in table.splitlines() if ln.startswith("| m "))
    assert "n/a" in row and "0.5000" in row and table.rstrip().endswith("cap")


def test_pick_examples_is_deterministic_and_spread() -> None:
    fractions = [0.0, 0.9, 0.1, 0.5, 0.0, 0.3, 1.0, 0.7]
    picks = pick_examples(fractions, 3)
    assert picks == pick_examples(fractions, 3)
    assert len(picks) == 3 and all(fractions[i] > 0 for i in picks)
    assert [fractions[i] for i in picks] == sorted(fractions[i] for i in picks)
    assert pick_examples(fractions, 0) == []
    assert sorted(pick_examples([0.2, 0.0], 5)) == [0, 1]


def test_errors(data_root: Path, weights: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DSen2CRError, match="not found"):
        evaluate([tmp_path / "missing.safetensors"], data_root, out_dir=tmp_path / "o")
    with pytest.raises(DSen2CRError, match="data folder not found"):
        evaluate([weights["sar"]], tmp_path / "nodata", out_dir=tmp_path / "o")
    with pytest.raises(DSen2CRError, match="name"):
        evaluate([weights["sar"]], data_root, out_dir=tmp_path / "o", names=["a", "b"])
    with pytest.raises(DSen2CRError, match="reserved"):
        evaluate([weights["sar"]], data_root, out_dir=tmp_path / "o", names=[IDENTITY])
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a weight file")
    with pytest.raises(DSen2CRError):
        evaluate([bad], data_root, out_dir=tmp_path / "o")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DSen2CRError):
        evaluate([weights["sar"]], empty, out_dir=tmp_path / "o")
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_cli_evaluate(data_root: Path, weights: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    argv = ["evaluate", "--weights", str(weights["nosar"]), "--data", str(data_root),
            "--out", str(out), "--max-images", "2", "--examples", "1", "--num-workers", "0",
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert set(result["models"]) == {"tiny_nosar", IDENTITY} and result["images"] == 2
    assert "| tiny_nosar |" in capsys.readouterr().out

    argv = ["evaluate", "--weights", str(tmp_path / "nope.safetensors"), "--data", str(data_root),
            "--out", str(tmp_path / "cli2")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dsen2cr evaluate: error:") and "nope" in err[0]
