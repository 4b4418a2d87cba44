"""``dsen2cr table``: evaluation results read back, every wrong file a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dsen2cr.cli import main
from dsen2cr.errors import DataError
from dsen2cr.metrics.table import check_result, read_result
from tests.conftest import write_raster_file

GOOD = {
    "models": {
        "tiny": {"target_mae": 0.03, "target_psnr": float("inf"), "recon_sam": None,
                 "band_nrmse": [0.1] * 13, "images": 2, "weights": "w.safetensors",
                 "undefined": {"recon_sam": 2}},
        "identity": {"target_mae": 0.05, "reprod_mae": 0.0},
    },
    "protocol": {"name": "dsen2cr", "crop": None},
    "split": "test",
}  # fmt: skip


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_read_result_accepts_evaluate_output(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _write(run / "metrics.json", GOOD)
    assert read_result(run) == read_result(run / "metrics.json") == json.loads(json.dumps(GOOD))
    assert check_result({"models": {"m": {"target_mae": 1}}}, "x")["models"]["m"]["target_mae"] == 1
    assert check_result({"models": {"m": {"ssim": 0.5, "target_ssim": 0.5}}, "protocol": "GLF-CR"},
                        "x")  # fmt: skip
    assert main(["table", str(run), "--paper"]) == 0
    out = capsys.readouterr().out
    assert "| tiny | 0.0300 | n/a | n/a | n/a | inf |" in out and "| paper: pix2pix |" in out


def _wrong_files(tmp_path: Path) -> list[tuple[Path, str]]:
    model = GOOD["models"]["tiny"]  # type: ignore[index]
    cases: list[tuple[Path, str]] = [
        (_write(tmp_path / "list.json", [GOOD]), "it holds a JSON array, not an object"),
        (_write(tmp_path / "number.json", 3), "it holds a JSON number, not an object"),
        (_write(tmp_path / "no_models.json", {"split": "test"}), "it has no 'models' object"),
        (_write(tmp_path / "models_list.json", {"models": [model]}),
         "its 'models' is a JSON array, not an object"),
        (_write(tmp_path / "no_model.json", {"models": {}}), "its 'models' lists no model"),
        (_write(tmp_path / "entry_number.json", {"models": {"m": 0.5}}),
         "model 'm' is a JSON number, not an object of metrics"),
        (_write(tmp_path / "string_metric.json", {"models": {"m": {"target_mae": "0.03"}}}),
         "model 'm' has target_mae = \"0.03\", not a number"),
        (_write(tmp_path / "bool_metric.json", {"models": {"m": {"target_ssim": True}}}),
         "model 'm' has target_ssim = true, not a number"),
        (_write(tmp_path / "list_metric.json", {"models": {"m": {"target_psnr": [30]}}}),
         "model 'm' has target_psnr = [30], not a number"),
        (_write(tmp_path / "no_metric.json", {"models": {"m": {"loss": 0.1}}}),
         "model 'm' has none of the metrics of Table 1"),
        (_write(tmp_path / "protocol.json", {**GOOD, "protocol": "nope"}),
         "its protocol \"nope\" is not one of dsen2cr, glf-cr, uncrtaints"),
        (_write(tmp_path / "protocol_list.json", {**GOOD, "protocol": ["dsen2cr"]}),
         "its protocol [\"dsen2cr\"] is not one of"),
        (_write(tmp_path / "protocol_name.json", {**GOOD, "protocol": {"name": 3}}),
         "its protocol 3 is not one of"),
    ]  # fmt: skip
    binary = tmp_path / "random.json"
    binary.write_bytes(bytes(range(256)) * 8)
    cases.append((binary, "is not a JSON file"))
    tif = write_raster_file(tmp_path / "image.tif", np.ones((13, 8, 8), np.uint16))
    cases.append((tif, "is not a JSON file"))
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"models": {"modèle": {"target_mae": 0.1}}}'.encode("latin-1"))
    cases.append((latin1, "is not a JSON file"))
    broken = tmp_path / "broken.json"
    broken.write_text('{"models": {"m": {"target_mae": 0.1}')
    cases.append((broken, "is not valid JSON"))
    empty_dir = tmp_path / "empty_run"
    empty_dir.mkdir()
    cases.append((empty_dir, "holds no metrics.json"))
    cases.append((tmp_path / "missing.json", "evaluation result not found"))
    return cases


def test_wrong_files_are_one_line_data_errors(tmp_path: Path, capsys) -> None:
    for path, message in _wrong_files(tmp_path):
        with pytest.raises(DataError) as err:
            read_result(path)
        assert message in str(err.value) and str(path) in str(err.value), path.name
        assert "\n" not in str(err.value)
        assert main(["table", str(path)]) == 2, path.name
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in captured.err
        assert captured.out == ""
