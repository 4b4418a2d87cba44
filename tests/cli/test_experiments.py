"""``dsen2cr train``, ``evaluate``, ``table``, ``demo`` and ``benchmark``
(:mod:`dsen2cr.cli.experiments`)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from dsen2cr.errors import ConfigError, DataError, OptionError, OutputExistsError
from dsen2cr.performance import SpeedOptions
from tests.cli.conftest import Invoke, Record, Recorder, UsageError, one_error_line


# --------------------------------------------------------------------------- train
@pytest.fixture
def training(record: Record) -> dict[str, Recorder]:
    return {
        "train": record("dsen2cr.training", "train", SimpleNamespace(global_zero=True)),
        "describe": record("dsen2cr.training", "describe", '{"run_dir": "runs/r"}'),
    }


def test_train_defaults(invoke: Invoke, training: dict[str, Recorder]) -> None:
    r = invoke(["train", "--config", "configs/a.yaml", "data.root=/d", "trainer.max_epochs=2"])
    assert (r.status, r.out, r.err) == (0, '{"run_dir": "runs/r"}\n', "")
    call = training["train"].call
    assert call.args == (Path("configs/a.yaml"), ["data.root=/d", "trainer.max_epochs=2"])
    assert call.kwargs == {"resume": None}
    assert training["describe"].call.args == (SimpleNamespace(global_zero=True),)


@pytest.mark.parametrize(("devices", "override"), [
    ("0,1", "trainer.devices=[0,1]"), ("4", "trainer.devices=4"), ("-1", "trainer.devices=-1"),
])  # fmt: skip
def test_train_flags_become_trainer_overrides(invoke: Invoke, training: dict[str, Recorder],
                                              devices: str, override: str) -> None:  # fmt: skip
    r = invoke(["train", "--config", "c.yaml", "--resume", "last", f"--devices={devices}",
                "--num-nodes", "2", "--precision", "bf16-mixed", "model.features=8"])  # fmt: skip
    assert r.status == 0
    call = training["train"].call
    assert call.args == (Path("c.yaml"), ["model.features=8", override, "trainer.num_nodes=2",
                                          "trainer.precision=bf16-mixed"])  # fmt: skip
    assert call.kwargs == {"resume": "last"}


def test_train_prints_only_on_global_zero(invoke: Invoke, training: dict[str, Recorder]) -> None:
    training["train"].result = SimpleNamespace(global_zero=False)
    r = invoke(["train", "--config", "c.yaml"])
    assert (r.status, r.out) == (0, "")
    assert training["describe"].calls == []


@pytest.mark.parametrize(("argv", "line"), [
    (["train"], "the following arguments are required: --config"),
    (["train", "--config", "c.yaml", "--num-nodes", "two"],
     "argument --num-nodes: invalid int value: 'two'"),
])  # fmt: skip
def test_train_usage_errors(usage_error: UsageError, training: dict[str, Recorder],
                            argv: list[str], line: str) -> None:  # fmt: skip
    assert usage_error(argv) == f"dsen2cr train: error: {line}"
    assert training["train"].calls == []


@pytest.mark.parametrize(("error", "message"), [
    (ConfigError("c.yaml: trainer.max_epochs must be >= 1, got 0"),
     "c.yaml: trainer.max_epochs must be >= 1, got 0"),
    (OptionError("resume", "no last checkpoint in runs/r"), "--resume no last checkpoint in runs/r"),
])  # fmt: skip
def test_train_errors_are_one_line(invoke: Invoke, training: dict[str, Recorder],
                                   error: Exception, message: str) -> None:  # fmt: skip
    training["train"].error = error
    one_error_line(invoke(["train", "--config", "c.yaml"]), "train", message)


# --------------------------------------------------------------------------- evaluate
EVALUATE = ["evaluate", "--weights", "a.safetensors", "b.hdf5", "--data", "data", "--out", "rep"]


@pytest.fixture
def evaluation(record: Record) -> dict[str, Recorder]:
    return {
        "evaluate": record("dsen2cr.evaluation", "evaluate", {"models": {"a": {}}}),
        "format_table": record("dsen2cr.evaluation", "format_table", "| model |\n"),
    }


def test_evaluate_defaults(invoke: Invoke, evaluation: dict[str, Recorder]) -> None:
    r = invoke(EVALUATE)
    assert (r.status, r.err) == (0, "")
    assert r.out == "| model |\nwrote rep/metrics.json, metrics.csv, table.md and figures\n"
    call = evaluation["evaluate"].call
    assert call.args == ([Path("a.safetensors"), Path("b.hdf5")], Path("data"))
    assert call.kwargs == {
        "split": "test", "out_dir": Path("rep"), "names": None, "batch_size": 8, "device": None,
        "num_workers": 2, "max_images": None, "examples": 4, "split_file": None,
        "overwrite": False, "protocol": "dsen2cr", "scenes": False}  # fmt: skip
    assert evaluation["format_table"].call.args == ({"models": {"a": {}}},)


def test_evaluate_every_flag(invoke: Invoke, evaluation: dict[str, Recorder]) -> None:
    r = invoke([*EVALUATE, "--split", "val", "--protocol", "glf-cr", "--scenes", "--name", "A",
                "B", "--batch", "2", "--device", "cpu", "--num-workers", "0", "--max-images",
                "5", "--examples", "0", "--split-file", "s.csv", "--overwrite"])  # fmt: skip
    assert r.status == 0
    assert r.out.endswith("figures; scenes in rep/scenes\n")
    assert evaluation["evaluate"].call.kwargs == {
        "split": "val", "out_dir": Path("rep"), "names": ["A", "B"], "batch_size": 2,
        "device": "cpu", "num_workers": 0, "max_images": 5, "examples": 0,
        "split_file": Path("s.csv"), "overwrite": True, "protocol": "glf-cr", "scenes": True}  # fmt: skip


def test_evaluate_list_protocols_needs_nothing_else(invoke: Invoke,
                                                   evaluation: dict[str, Recorder]) -> None:  # fmt: skip
    from dsen2cr.metrics import describe_protocol

    r = invoke(["evaluate", "--list-protocols"])
    assert r.status == 0
    assert r.out == "\n\n".join(describe_protocol(n) for n in ("dsen2cr", "glf-cr", "uncrtaints")) + "\n"
    assert evaluation["evaluate"].calls == []


@pytest.mark.parametrize(("argv", "line"), [
    (["evaluate"], "the following arguments are required: --weights, --data, --out"),
    (["evaluate", "--weights", "w"], "the following arguments are required: --data, --out"),
    ([*EVALUATE, "--split", "dev"],
     "argument --split: invalid choice: 'dev' (choose from 'train', 'val', 'test', 'all')"),
    ([*EVALUATE, "--batch", "1.5"], "argument --batch: invalid int value: '1.5'"),
])  # fmt: skip
def test_evaluate_usage_errors(usage_error: UsageError, evaluation: dict[str, Recorder],
                               argv: list[str], line: str) -> None:  # fmt: skip
    assert usage_error(argv) == f"dsen2cr evaluate: error: {line}"
    assert evaluation["evaluate"].calls == []


@pytest.mark.parametrize(("error", "message"), [
    (OptionError("batch_size", "must be at least 1, got 0"), "--batch must be at least 1, got 0"),
    (OptionError("names", "gives 1 name for 2 weight files"), "--name gives 1 name for 2 weight files"),
    (OptionError("max_images", "must be at least 1, got 0"), "--max-images must be at least 1, got 0"),
    (OutputExistsError("out", Path("rep"), "is a folder that is not empty"),
     "--out rep is a folder that is not empty: add --overwrite to replace it"),
    (DataError("{split_file} s.csv names no patch of data", split_file=None),
     "--split-file s.csv names no patch of data"),
])  # fmt: skip
def test_evaluate_errors_name_flags(invoke: Invoke, evaluation: dict[str, Recorder],
                                    error: Exception, message: str) -> None:  # fmt: skip
    evaluation["evaluate"].error = error
    one_error_line(invoke(EVALUATE), "evaluate", message)


# --------------------------------------------------------------------------- table
@pytest.fixture
def table(record: Record) -> dict[str, Recorder]:
    return {
        "read_result": record("dsen2cr.metrics.table", "read_result",
                              side_effect=lambda p: {"models": {Path(p).stem: {}}}),
        "format_table": record("dsen2cr.evaluation", "format_table", "| t |\n"),
    }  # fmt: skip


def test_table_reads_every_result(invoke: Invoke, table: dict[str, Recorder]) -> None:
    r = invoke(["table", "a.json", "b.json"])
    assert (r.status, r.out, r.err) == (0, "| t |\n", "")
    assert [c.args for c in table["read_result"].calls] == [(Path("a.json"),), (Path("b.json"),)]
    assert table["format_table"].call.args == ({"models": {"a": {}}}, {"models": {"b": {}}})


def test_table_paper_rows_and_out_file(invoke: Invoke, table: dict[str, Recorder],
                                       tmp_path: Path) -> None:  # fmt: skip
    from dsen2cr.metrics import PAPER_PROTOCOL, PAPER_TABLE1

    out = tmp_path / "t.md"
    r = invoke(["table", "a.json", "--paper", "--out", out])
    assert (r.status, r.out) == (0, "| t |\n")
    assert out.read_text() == "| t |\n"
    paper = table["format_table"].call.args[1]
    assert paper == {"models": {f"paper: {k}": v for k, v in PAPER_TABLE1.items()},
                     "protocol": PAPER_PROTOCOL}  # fmt: skip
    one_error_line(invoke(["table", "a.json", "--out", out]), "table",
                   f"--out {out} exists: add --overwrite to replace it")  # fmt: skip
    assert invoke(["table", "a.json", "--out", out, "--overwrite"]).status == 0


def test_table_usage_error(usage_error: UsageError, table: dict[str, Recorder]) -> None:
    assert usage_error(["table"]) == "dsen2cr table: error: the following arguments are required: METRICS_JSON"
    assert table["read_result"].calls == []


def test_table_of_a_missing_result_is_one_line(invoke: Invoke, tmp_path: Path) -> None:
    missing = tmp_path / "metrics.json"
    one_error_line(invoke(["table", missing]), "table", f"evaluation result not found: {missing}")


# --------------------------------------------------------------------------- demo
@pytest.fixture
def demo(record: Record) -> Recorder:
    return record("dsen2cr.demo", "run_demo", {"ordering_ok": True})


def test_demo_defaults_and_flags(invoke: Invoke, demo: Recorder) -> None:
    r = invoke(["demo"])
    assert (r.status, r.out, r.err) == (0, "", "")
    assert (demo.call.args, demo.call.kwargs) == (
        (Path("demo_out"),), {"quick": False, "device": None, "overwrite": False})
    invoke(["demo", "--out", "d", "--quick", "--device", "cpu", "--overwrite"])
    assert (demo.calls[1].args, demo.calls[1].kwargs) == (
        (Path("d"),), {"quick": True, "device": "cpu", "overwrite": True})


def test_demo_errors(usage_error: UsageError, invoke: Invoke, demo: Recorder) -> None:
    assert usage_error(["demo", "--device"]) == "dsen2cr demo: error: argument --device: expected one argument"
    assert demo.calls == []
    demo.error = OutputExistsError("out", Path("d"), "is a folder that is not empty")
    one_error_line(invoke(["demo", "--out", "d"]), "demo",
                   "--out d is a folder that is not empty: add --overwrite to replace it")  # fmt: skip


# --------------------------------------------------------------------------- benchmark
@pytest.fixture
def benchmark(record: Record) -> Recorder:
    return record("dsen2cr.benchmark", "run_benchmark", {"device": "cpu", "peak": 1.5})


def test_benchmark_defaults(invoke: Invoke, benchmark: Recorder) -> None:
    from dsen2cr.benchmark import DEFAULT_SECTIONS

    r = invoke(["benchmark"])
    assert (r.status, r.out, r.err) == (0, '{\n  "device": "cpu",\n  "peak": 1.5\n}\n', "")
    assert benchmark.call.args == ("auto",)
    assert benchmark.call.kwargs == {
        "quick": False, "sections": DEFAULT_SECTIONS, "precision": None, "speed": SpeedOptions(),
        "ladder": False, "realdata": None, "weights": None, "scene_size": None, "io_size": None,
        "features": 256, "blocks": 16, "readers": None, "io_threads": None, "inputs_dir": None,
        "progress": True}  # fmt: skip
    assert DEFAULT_SECTIONS == ("peak", "infer", "train", "scene", "bf16")


def test_benchmark_every_flag(invoke: Invoke, benchmark: Recorder, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    r = invoke(["benchmark", "--device", "cpu", "--quick", "--json", out, "--sections", "peak",
                "io", "--precision", "fp32", "--compile", "--readers", "2", "--no-channels-last",
                "--ladder", "--realdata", "real", "--weights", "w.safetensors", "--scene-size",
                "512", "--io-size", "1024", "--io-threads", "1", "2", "--inputs-dir", "inputs",
                "--features", "8", "--blocks", "2", "--quiet"])  # fmt: skip
    assert r.status == 0
    assert json.loads(out.read_text()) == {"device": "cpu", "peak": 1.5}
    assert out.read_text() == r.out
    assert benchmark.call.args == ("cpu",)
    assert benchmark.call.kwargs == {
        "quick": True, "sections": ["peak", "io"], "precision": "fp32",
        "speed": SpeedOptions(channels_last=False, compile=True), "ladder": True,
        "realdata": Path("real"), "weights": Path("w.safetensors"), "scene_size": 512,
        "io_size": 1024, "features": 8, "blocks": 2, "readers": 2, "io_threads": [1, 2],
        "inputs_dir": Path("inputs"), "progress": False}  # fmt: skip


@pytest.mark.parametrize(("argv", "line"), [
    (["benchmark", "--precision", "fp16"],
     "argument --precision: invalid choice: 'fp16' (choose from 'fp32', 'tf32', 'bf16')"),
    (["benchmark", "--io-threads", "one"], "argument --io-threads: invalid int value: 'one'"),
    (["benchmark", "--sections"], "argument --sections: expected at least one argument"),
])  # fmt: skip
def test_benchmark_usage_errors(usage_error: UsageError, benchmark: Recorder, argv: list[str],
                                line: str) -> None:  # fmt: skip
    assert usage_error(argv) == f"dsen2cr benchmark: error: {line}"
    assert benchmark.calls == []


def test_benchmark_errors_name_flags(invoke: Invoke, benchmark: Recorder, tmp_path: Path) -> None:
    exists = tmp_path / "b.json"
    exists.write_text("{}\n")
    one_error_line(invoke(["benchmark", "--json", exists]), "benchmark",
                   f"--json {exists} exists: add --overwrite to replace it")  # fmt: skip
    assert benchmark.calls == []
    benchmark.error = OptionError("scene_size", "must be >= 16, got 8")
    one_error_line(invoke(["benchmark", "--scene-size", "8"]), "benchmark",
                   "--scene-size must be >= 16, got 8")  # fmt: skip
