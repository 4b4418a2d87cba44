"""Testing ``dsen2cr`` subcommands directly, the way rasterio tests ``rio`` with click's runner.

Each subcommand runs in-process through :func:`dsen2cr.cli.main` with its output captured
(:func:`invoke`); the library function its ``run_<command>`` function calls is replaced by a
:class:`Recorder` (:func:`record`), so a test asserts the exact arguments that reach Python
without running a network. A usage error ends with ``SystemExit(2)`` from argparse
(:func:`usage_error`); a library error is returned as status 2 with one line on stderr.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from dsen2cr.cli import main


@dataclass
class Call:
    """One call of a :class:`Recorder`."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class Recorder:
    """Stands in for a library function: records each call, then raises ``error`` if given,
    else returns ``side_effect(*args, **kwargs)`` if given, else ``result``."""

    result: Any = None
    error: BaseException | None = None
    side_effect: Callable[..., Any] | None = None
    calls: list[Call] = field(default_factory=list)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(Call(args, kwargs))
        if self.error is not None:
            raise self.error
        if self.side_effect is not None:
            return self.side_effect(*args, **kwargs)
        return self.result

    @property
    def call(self) -> Call:
        """The one call (fails unless called exactly once)."""
        assert len(self.calls) == 1, f"called {len(self.calls)} times"
        return self.calls[0]


Record = Callable[..., Recorder]


@pytest.fixture
def record(monkeypatch: pytest.MonkeyPatch) -> Record:
    """``record("dsen2cr.scene", "predict", result=...)``: replace the function ``predict`` of
    the module ``dsen2cr.scene`` by a :class:`Recorder` for the test (the CLI imports library
    functions when it runs, so it finds the recorder)."""

    def patch(module: str, name: str, result: Any = None, *, error: BaseException | None = None,
              side_effect: Callable[..., Any] | None = None) -> Recorder:  # fmt: skip
        mod = importlib.import_module(module)
        assert callable(getattr(mod, name)), f"{module}.{name} is not a function"
        rec = Recorder(result, error, side_effect)
        monkeypatch.setattr(mod, name, rec)
        return rec

    return patch


@dataclass
class Result:
    """What a command did: exit status, stdout, stderr."""

    status: int
    out: str
    err: str


Argv = Sequence[str | os.PathLike[str]]
"""A command line; paths are turned into strings."""

Invoke = Callable[[Argv], Result]
UsageError = Callable[[Argv], str]


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Invoke:
    """Run ``dsen2cr ARGV`` in-process; its status and captured output (no traceback)."""

    def run(argv: Argv) -> Result:
        capsys.readouterr()
        status = main([str(x) for x in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return Result(status, out, err)

    return run


@pytest.fixture
def usage_error(capsys: pytest.CaptureFixture[str]) -> UsageError:
    """Run ``dsen2cr ARGV`` expecting argparse's usage error: ``SystemExit(2)``, the usage and
    then one error line on stderr, nothing on stdout; returns the error line."""

    def run(argv: Argv) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main([str(x) for x in argv])
        out, err = capsys.readouterr()
        assert exc.value.code == 2
        assert out == ""
        assert "Traceback" not in err
        lines = err.splitlines()
        assert lines[0].startswith("usage: dsen2cr")
        assert [ln for ln in lines if "error:" in ln] == [lines[-1]]  # one error line, the last
        return lines[-1]

    return run


def one_error_line(result: Result, command: str, message: str) -> None:
    """``result`` is a user error reported as one line: status 2, ``dsen2cr COMMAND: error:
    MESSAGE`` alone on stderr."""
    assert (result.status, result.err) == (2, f"dsen2cr {command}: error: {message}\n")
