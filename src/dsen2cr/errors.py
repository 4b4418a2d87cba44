"""User-facing errors, rooted in the builtin exceptions users already catch.

Anything a user can cause (a missing file, a wrong band count, mismatched grids, a corrupt input,
a bad option or config value, a full disk) is raised as a :class:`DSen2CRError` with one clear
sentence. Each class also derives from the builtin a Python user would catch, as torchgeo's do:
a data, weights, config or option error is a ``ValueError``, a missing input a
``FileNotFoundError``, an existing output a ``FileExistsError``, a failed write an ``OSError``
(with its ``errno``). The command line prints the sentence and exits with status 2, without a
traceback. Programming errors keep their ordinary exceptions.

Parameters in messages. A message names the parameters it mentions as ``{name}`` fields with the
parameter's name as keyword (``DataError("... give the Sentinel-1 image ({s1})", s1=None)``,
``OutputExistsError`` mentions ``overwrite=True``). In Python they read as parameters
(``s1``, ``overwrite=True``); inside the command line, which knows its flags, as flags
(``--s1``, ``--overwrite``): :func:`cli_flags` installs the mapping, one place for every
message, warning lines included (:class:`Text`).
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator

_FIELD = re.compile(r"\{(\w+)\}")
_BARE = None
"""A mention without a value: the parameter's name (Python) or its flag (command line)."""
_FLAG_OF: contextvars.ContextVar[Callable[[str], str] | None] = contextvars.ContextVar(
    "dsen2cr_flag_of", default=None
)


def _mention(name: str, value: object) -> str:
    flag_of = _FLAG_OF.get()
    if flag_of is None:
        return name if value is _BARE else f"{name}={value!r}"
    flag = flag_of(name)
    if value is False and flag.startswith("--"):  # a switch that is on by default: --no-<name>
        return f"--no-{flag[2:]}"
    return flag if value is _BARE or value is True else f"{flag} {value}"


class Text:
    """A message that mentions parameters, rendered for Python or for the command line when it
    is turned into a string (see the module docs).

    Args:
        template: the message, with a ``{name}`` field per mentioned parameter.
        params: parameter name -> None (just the name / flag) or a value (``name=value`` in
            Python; ``--flag value`` on the command line, ``--flag`` for True and ``--no-flag``
            for False).
    """

    def __init__(self, template: str, **params: object) -> None:
        self.template = template
        self.params = params

    def __str__(self) -> str:
        if not self.params:
            return self.template
        # only the fields of mentioned parameters: other braces (paths, JSON) stay as they are
        return _FIELD.sub(lambda m: _mention(m[1], self.params[m[1]]) if m[1] in self.params
                          else m[0], self.template)  # fmt: skip

    def __repr__(self) -> str:
        return f"Text({str(self)!r})"


@contextlib.contextmanager
def cli_flags(flag_of: Callable[[str], str]) -> Iterator[None]:
    """Inside the block, messages name parameters by their command-line flags."""
    token = _FLAG_OF.set(flag_of)
    try:
        yield
    finally:
        _FLAG_OF.reset(token)


class DSen2CRError(Exception):
    """An error caused by the user's input, reported without a traceback by the CLI.

    Args:
        message: one sentence; ``{name}`` fields mention the parameters given as keywords.
        params: the mentioned parameters (see :class:`Text`).
    """

    def __init__(self, message: str = "", **params: object) -> None:
        super().__init__(message)
        self.text = Text(message, **params)

    def __str__(self) -> str:
        return str(self.text)

    def __reduce__(self) -> tuple[object, ...]:
        # rebuilt without calling __init__ (subclasses take other arguments), params kept
        state = {**self.__dict__, "errno": getattr(self, "errno", None)}
        return (_restore, (type(self), self.args, state))


def _restore(
    cls: type[DSen2CRError], args: tuple[object, ...], state: dict[str, object]
) -> DSen2CRError:
    obj = cls.__new__(cls)
    Exception.__init__(obj, *args)
    errno = state.pop("errno", None)
    obj.__dict__.update(state)
    if isinstance(obj, OSError):
        obj.errno = errno if isinstance(errno, int) else None
    return obj


class DataError(DSen2CRError, ValueError):
    """A data file is corrupt, or does not have the expected bands, size, dtype or values."""


class InputNotFoundError(DataError, FileNotFoundError):
    """An input file or folder does not exist."""

    def __init__(self, message: str = "", **params: object) -> None:
        DataError.__init__(self, message, **params)


class WeightsError(DSen2CRError, ValueError):
    """A weight file cannot be read or does not describe a supported network."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """A weight file does not exist."""

    def __init__(self, message: str = "", **params: object) -> None:
        WeightsError.__init__(self, message, **params)


class ConfigError(DSen2CRError, ValueError):
    """A training config has an unknown key, a value of the wrong type or out of range."""


class OptionError(DSen2CRError, ValueError):
    """A bad value of a named option (a function parameter here, a flag on the command line).

    Attributes:
        option: the parameter's name, e.g. ``"tile"``.
        problem: what is wrong, e.g. ``"must be an integer >= 16, got 8"``.
    """

    def __init__(self, option: str, problem: str, **params: object) -> None:
        super().__init__(problem, **params)
        self.args = (f"{option} {problem}",)
        self.option = option

    @property
    def problem(self) -> str:
        """What is wrong, without the option's name."""
        return str(self.text)

    def __str__(self) -> str:
        return f"{_mention(self.option, _BARE)} {self.problem}"


class OutputExistsError(OptionError, FileExistsError):
    """An output file (or a non-empty output folder) exists and replacing it was not asked for.

    Attributes:
        path: the existing output.
    """

    def __init__(self, option: str, path: object, what: str = "exists") -> None:
        OptionError.__init__(self, option, f"{path} {what}: add {{overwrite}} to replace it",
                             overwrite=True)  # fmt: skip
        self.path = path
        self.filename = str(path)


class WriteError(DSen2CRError, OSError):
    """Writing an output failed (disk full, quota, file-size limit, read-only file system...).

    Attributes:
        path: the output (its final name: no file is left under it).
        reason: the cause, e.g. ``"No space left on device"``.
        errno: the operating system's error number, when known.
    """

    def __init__(self, path: object, reason: str, errno: int | None = None) -> None:
        DSen2CRError.__init__(self, f"cannot write {path}: {reason}")
        self.path = path
        self.reason = reason
        self.errno = errno
        self.filename = str(path)


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
