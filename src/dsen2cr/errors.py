"""User-facing errors.

Anything a user can cause (a missing file, a wrong band count, mismatched grids, a corrupt input,
a bad option or config value) is raised as a :class:`DSen2CRError` with one clear sentence. The
command line prints that sentence and exits with status 2, without a traceback. Programming
errors keep their ordinary exceptions.

Library messages name the Python parameter (``tile``, ``device``); the command line, which knows
its flags, names the flag instead (``--tile``): see :class:`OptionError`.
"""

from __future__ import annotations


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
