"""The ``dsen2cr`` parser and dispatch (:mod:`dsen2cr.cli.main`, :mod:`dsen2cr.cli.common`):
the subcommands, their run functions, and how every error ends."""

from __future__ import annotations

import argparse
import importlib
import inspect
import typing

import pytest

from dsen2cr import __version__
from dsen2cr.cli import build_parser, main
from dsen2cr.cli.common import command_parser, given, register, require
from dsen2cr.cli.main import COMMANDS, Terminated, error_message, flag_of
from dsen2cr.errors import DSen2CRError, OptionError, Text, WriteError
from tests.cli.conftest import Invoke, Record, UsageError

SUBCOMMANDS = ["predict", "mask", "convert-weights", "info", "synth-data", "index", "mosaic",
               "train", "evaluate", "table", "demo", "benchmark"]  # fmt: skip


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_help_lists_every_subcommand_in_workflow_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(_subparsers()) == SUBCOMMANDS
    assert len(COMMANDS) == len(SUBCOMMANDS)
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()
              if line.startswith("    ") and not line.startswith("     ")]  # fmt: skip
    assert listed == SUBCOMMANDS


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_runs_a_typed_documented_module_level_function(name: str) -> None:
    sub = _subparsers()[name]
    run = sub.get_default("func")
    assert run.__name__ == "run_" + name.replace("-", "_")
    assert run.__qualname__ == run.__name__  # not a closure
    module = importlib.import_module(run.__module__)
    assert module.__name__.startswith("dsen2cr.cli.") and getattr(module, run.__name__) is run
    assert typing.get_type_hints(run) == {"a": argparse.Namespace, "return": int}
    doc = inspect.getdoc(run) or ""
    assert "Args:" in doc and "Returns:" in doc
    assert sub.get_default("parser") is sub
    assert isinstance(sub.get_default("flags"), dict)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert (exc.value.code, capsys.readouterr().out) == (0, f"dsen2cr {__version__}\n")


def test_no_subcommand_prints_help_and_returns_2(invoke: Invoke) -> None:
    r = invoke([])
    assert r.status == 2
    assert r.out.startswith("usage: dsen2cr [-h] [--version] COMMAND ...\n")


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["predcit"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "dsen2cr: error: argument COMMAND: invalid choice: 'predcit' (choose from "
        + ", ".join(f"'{c}'" for c in SUBCOMMANDS) + ")")  # fmt: skip


def test_flag_of_maps_parameters_to_flags() -> None:
    plain = argparse.Namespace()
    assert flag_of(plain, "tile") == "--tile"
    assert flag_of(plain, "clear_margin") == "--clear-margin"
    evaluate = build_parser().parse_args(["evaluate", "--list-protocols"])
    assert flag_of(evaluate, "batch_size") == "--batch"
    assert flag_of(evaluate, "names") == "--name"
    assert flag_of(evaluate, "split_file") == "--split-file"
    mosaic = build_parser().parse_args(["mosaic", "data", "out"])
    assert flag_of(mosaic, "out") == "output"


def test_error_message_renders_parameters_as_flags() -> None:
    args = build_parser().parse_args(["evaluate", "--list-protocols"])
    assert error_message(args, OptionError("batch_size", "must be at least 1, got 0")) == (
        "--batch must be at least 1, got 0")
    assert error_message(args, DSen2CRError("o exists: add {overwrite} to replace it",
                                            overwrite=True)) == "o exists: add --overwrite to replace it"  # fmt: skip
    assert error_message(args, PermissionError(13, "Permission denied", "/ro/x")) == (
        "Permission denied: /ro/x")
    assert error_message(args, WriteError("o.tif", "No space left on device", 28)) == (
        "cannot write o.tif: No space left on device")
    assert error_message(args, DSen2CRError("first\nsecond  line")) == "first second line"
    assert str(OptionError("batch_size", "must be at least 1, got 0")) == (
        "batch_size must be at least 1, got 0")  # in Python, outside the command line


@pytest.mark.parametrize(("raised", "status", "line"), [
    (KeyboardInterrupt(), 130, "dsen2cr info: interrupted\n"),
    (Terminated(), 143, "dsen2cr info: terminated (SIGTERM)\n"),
    (PermissionError(13, "Permission denied", "w"), 2, "dsen2cr info: error: Permission denied: w\n"),
])  # fmt: skip
def test_interrupts_and_os_errors_end_with_one_line(invoke: Invoke, record: Record,
                                                    raised: BaseException, status: int,
                                                    line: str) -> None:  # fmt: skip
    record("dsen2cr.models", "describe_weights", error=raised)
    r = invoke(["info", "w"])
    assert (r.status, r.out, r.err) == (status, "", line)


def test_a_programming_error_is_not_hidden(invoke: Invoke, record: Record) -> None:
    record("dsen2cr.models", "describe_weights", error=ZeroDivisionError("bug"))
    with pytest.raises(ZeroDivisionError):
        invoke(["info", "w"])


def test_messages_printed_while_running_name_flags(invoke: Invoke, record: Record) -> None:
    record("dsen2cr.scene", "mask_scene",
           side_effect=lambda *a, **k: {"note": str(Text("lower {threshold}", threshold=0.1))})  # fmt: skip
    r = invoke(["mask", "s2.tif", "m.tif"])
    assert (r.status, r.out) == (0, '{"note": "lower --threshold 0.1"}\n')
    assert str(Text("lower {threshold}", threshold=0.1)) == "lower threshold=0.1"  # Python again


# --------------------------------------------------------------------------- common helpers
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dsen2cr x")
    p.add_argument("--tile", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    return p


def test_given_keeps_only_the_options_given() -> None:
    a = _parser().parse_args(["--tile", "0"])
    assert given(a, "tile", "batch") == {"tile": 0}
    assert given(a) == {}


def test_require_fails_like_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    p = _parser()
    require(p, [("--tile", 1), ("--batch", 2)])  # all given: nothing happens
    with pytest.raises(SystemExit) as exc:
        require(p, [("--tile", None), ("--x", 0), ("--batch", None)])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "dsen2cr x: error: the following arguments are required: --tile, --batch")


def test_register_and_command_parser() -> None:
    p = _parser()

    def run_x(a: argparse.Namespace) -> int:
        return 0

    register(p, run_x, batch_size="--batch")
    a = p.parse_args([])
    assert (a.func, a.flags, command_parser(a)) == (run_x, {"batch_size": "--batch"}, p)
    with pytest.raises(TypeError):
        command_parser(argparse.Namespace())


def test_usage_errors_of_every_subcommand_are_one_error_line(usage_error: UsageError) -> None:
    required = {"predict": "--weights, --out", "mask": "s2, out", "convert-weights": "input, output",
                "info": "weights", "synth-data": "out", "index": "root", "mosaic": "root, out",
                "train": "--config", "evaluate": "--weights, --data, --out",
                "table": "METRICS_JSON"}  # fmt: skip
    for name, missing in required.items():
        assert usage_error([name]) == (
            f"dsen2cr {name}: error: the following arguments are required: {missing}")
    for name in ("demo", "benchmark"):  # nothing required: a bad value instead
        assert usage_error([name, "--device"]) == (
            f"dsen2cr {name}: error: argument --device: expected one argument")
