"""User-facing errors.

Anything a user can cause (a missing file, a wrong band count, mismatched grids, a corrupt input,
a bad option or config value) is raised as a :class:`DSen2CRError` with one clear sentence. The
command line prints that sentence and exits with status 2, without a traceback. Programming
errors keep their ordinary exceptions.

Library messages name the Python parameter (``tile``, ``device``); the command line, which knows
its flags, names the flag instead (``--tile``): see :class:`OptionError`.
"""

from __future__ import annotations

import re


class DSen2CRError(Exception):
    """An error caused by the user's input, reported without a traceback by the CLI."""


class DataError(DSen2CRError):
    """A data file is missing, corrupt, or does not have the expected bands, size or dtype."""


class WeightsError(DSen2CRError):
    """A weight file cannot be read or does not describe a supported network."""


class ConfigError(DSen2CRError):
    """A training config has an unknown key, a value of the wrong type or out of range."""


class OptionError(DSen2CRError):
    """A bad value of a named option (a function parameter here, a flag on the command line).

    Attributes:
        option: the parameter's name, e.g. ``"tile"``.
        problem: what is wrong, e.g. ``"must be an integer >= 16, got 8"``.
    """

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(f"{option} {problem}")


class OutputExistsError(OptionError):
    """An output file (or a non-empty output folder) exists and replacing it was not asked for.

    Attributes:
        path: the existing output.
    """

    def __init__(self, option: str, path: object, what: str = "exists") -> None:
        self.path = path
        super().__init__(option, f"{path} {what} (overwrite=True replaces it)")
        self.problem_cli = f"{path} {what}: add --overwrite to replace it"


_TRACEBACK_MARKERS = ("Original Traceback (most recent call last):", "Traceback (most recent call last):")


def one_line(exc: BaseException) -> str:
    """The message of a user error as one line.

    An error raised in a DataLoader worker process comes back with the worker's whole traceback
    inside its message (PyTorch re-raises it as ``type(exc)(message with traceback)``); the line
    that matters is the original exception's own, the last one. Terminal colour codes and line
    breaks are removed.
    """
    text = str(exc)
    if any(m in text for m in _TRACEBACK_MARKERS):
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        last = lines[-1] if lines else text
        name = type(exc).__name__
        for prefix in (f"{type(exc).__module__}.{name}: ", f"{name}: "):
            if last.startswith(prefix):
                last = last[len(prefix) :]
        text = last
    return " ".join(_ANSI.sub("", text).split())


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, without terminal colour codes (for a
    third-party error whose message runs over several paragraphs)."""
    lines = [ln.strip() for ln in _ANSI.sub("", str(exc)).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
