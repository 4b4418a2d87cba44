"""``dsen2cr convert-weights`` and ``dsen2cr info`` (:mod:`dsen2cr.cli.models`)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dsen2cr.errors import OutputExistsError, WeightsError
from tests.cli.conftest import Invoke, Record, UsageError, one_error_line


def _model(config: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(weight_record=lambda: (config, {}, {}))


def test_convert_weights_maps_arguments(invoke: Invoke, record: Record) -> None:
    convert = record("dsen2cr.models", "convert_weights", _model({"features": 8, "blocks": 2}))
    r = invoke(["convert-weights", "model_SARcarl.hdf5", "w.safetensors"])
    assert (r.status, r.out, r.err) == (0, 'wrote w.safetensors: {"features": 8, "blocks": 2}\n', "")
    assert convert.call.args == (Path("model_SARcarl.hdf5"), Path("w.safetensors"))
    assert convert.call.kwargs == {"overwrite": False}
    invoke(["convert-weights", "a.ckpt", "b.safetensors", "--overwrite"])
    assert convert.calls[1].kwargs == {"overwrite": True}


@pytest.mark.parametrize(("argv", "line"), [
    (["convert-weights", "a.hdf5"],
     "dsen2cr convert-weights: error: the following arguments are required: output"),
    (["convert-weights"],
     "dsen2cr convert-weights: error: the following arguments are required: input, output"),
    (["info"], "dsen2cr info: error: the following arguments are required: weights"),
    (["info", "a", "b"], "dsen2cr: error: unrecognized arguments: b"),
])  # fmt: skip
def test_usage_errors(usage_error: UsageError, record: Record, argv: list[str], line: str) -> None:
    convert = record("dsen2cr.models", "convert_weights")
    describe = record("dsen2cr.models", "describe_weights")
    assert usage_error(argv) == line
    assert convert.calls == [] and describe.calls == []


@pytest.mark.parametrize(("error", "message"), [
    (OutputExistsError("output", Path("w.safetensors")),
     "--output w.safetensors exists: add --overwrite to replace it"),
    (WeightsError("a.hdf5 holds no DSen2-CR layers"), "a.hdf5 holds no DSen2-CR layers"),
])  # fmt: skip
def test_convert_weights_errors_are_one_line(invoke: Invoke, record: Record, error: Exception,
                                             message: str) -> None:  # fmt: skip
    record("dsen2cr.models", "convert_weights", error=error)
    one_error_line(invoke(["convert-weights", "a.hdf5", "w.safetensors"]), "convert-weights",
                   message)  # fmt: skip


def test_info_prints_describe_weights_as_json(invoke: Invoke, record: Record) -> None:
    describe = record("dsen2cr.models", "describe_weights",
                      {"file": Path("w.safetensors"), "parameters": 1234, "uses_sar": True})  # fmt: skip
    r = invoke(["info", "w.safetensors"])
    assert r.status == 0
    assert r.out == ('{\n  "file": "w.safetensors",\n  "parameters": 1234,\n'
                     '  "uses_sar": true\n}\n')  # fmt: skip
    assert (describe.call.args, describe.call.kwargs) == ((Path("w.safetensors"),), {})


def test_info_of_a_missing_file_is_one_line(invoke: Invoke, tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    one_error_line(invoke(["info", missing]), "info", f"weight file not found: {missing}")

