"""Evaluation: report files, identity baseline, weight formats, CLI (dsen2cr.evaluation)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dsen2cr.cli import main
from dsen2cr.cloudmask import binary_mask
from dsen2cr.data import SEN12MSCR
from dsen2cr.data.synthetic import generate_dataset
from dsen2cr.errors import DSen2CRError
from dsen2cr.evaluation import IDENTITY, evaluate, format_table, pick_examples
from dsen2cr.metrics import (
    METRIC_KEYS,
    TABLE1_COLUMNS,
    MetricAccumulator,
    MixedProtocolsError,
    crop_box,
    get_protocol,
    image_metrics,
)
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


def test_metrics_json_records_the_protocol(report) -> None:
    out, result = report
    assert result["protocol"]["name"] == "dsen2cr"
    assert result["protocol"]["ssim_padding"] == "valid"
    assert "Metric protocol `dsen2cr`" in (out / "table.md").read_text()


@pytest.mark.parametrize("protocol", ["uncrtaints", "crop16"])
def test_protocol_crops_inputs_and_scores_like_image_metrics(
    protocol: str, data_root: Path, test_split, weights: dict[str, Path], tmp_path: Path
) -> None:
    """The zero-tail model returns its input: its values are the protocol's image metrics of
    the (cropped) cloudy input, with the mask of the whole patch cropped alike."""
    proto = (get_protocol(protocol) if protocol != "crop16"
             else dataclasses.replace(get_protocol("glf-cr"), name="glf-cr", crop=16))  # fmt: skip
    result = evaluate([weights["zero"]], data_root, out_dir=tmp_path / protocol, names=["zero"],
                      examples=0, device="cpu", protocol=proto)  # fmt: skip
    assert result["protocol"] == proto.to_dict()
    r0, c0, h, w = crop_box(32, 32, proto)
    box = (slice(None), slice(r0, r0 + h), slice(c0, c0 + w))
    acc = MetricAccumulator(averaging=proto.averaging)
    for i in range(len(test_split)):
        s = test_split[i]
        mask = binary_mask(scaled_to_s2(s["optical"].numpy()))[box[1:]]
        cloudy = scaled_to_reflectance(s["optical"].numpy().astype(np.float64))[box]
        target = scaled_to_reflectance(s["target"].numpy().astype(np.float64))[box]
        acc.update(image_metrics(cloudy, target, cloudy, mask, protocol=proto))
    want = acc.compute()
    for k in METRIC_KEYS:
        got = result["models"]["zero"][k]
        if got is None:
            assert math.isnan(want[k]), k
        else:
            assert got == pytest.approx(want[k], rel=1e-5, abs=1e-7), k


def test_format_table_refuses_mixed_protocols() -> None:
    a = {"models": {"m": {"target_mae": 0.1}}, "protocol": {"name": "dsen2cr"}}
    b = {"models": {"m": {"target_mae": 0.1}}, "protocol": {"name": "glf-cr"}}
    assert "| m (2) |" in format_table(a, a)
    with pytest.raises(MixedProtocolsError, match="different metric protocols"):
        format_table(a, b)


def test_cli_protocols_and_table(data_root: Path, weights: dict[str, Path], tmp_path: Path,
                                 capsys) -> None:  # fmt: skip
    assert main(["evaluate", "--list-protocols"]) == 0
    listing = capsys.readouterr().out
    assert all(f"{n}:" in listing for n in ("dsen2cr", "uncrtaints", "glf-cr"))
    runs = {}
    for proto in ("dsen2cr", "uncrtaints"):
        runs[proto] = tmp_path / proto
        argv = ["evaluate", "--weights", str(weights["nosar"]), "--data", str(data_root),
                "--out", str(runs[proto]), "--max-images", "2", "--examples", "0",
                "--num-workers", "0", "--device", "cpu", "--protocol", proto]  # fmt: skip
        assert main(argv) == 0
    capsys.readouterr()
    assert main(["table", str(runs["dsen2cr"]), "--paper", "--out", str(tmp_path / "t.md")]) == 0
    text = capsys.readouterr().out
    assert "| tiny_nosar |" in text and "| paper: DSen2-CR on CARL |" in text
    assert (tmp_path / "t.md").read_text() == text
    assert main(["table", str(runs["dsen2cr"]), str(runs["uncrtaints"] / "metrics.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different metric protocols" in err[0]
    assert main(["evaluate", "--weights", str(weights["nosar"]), "--data", str(data_root),
                 "--out", str(tmp_path / "x"), "--protocol", "nope"]) == 2  # fmt: skip
    assert "--protocol must be one of dsen2cr" in capsys.readouterr().err
