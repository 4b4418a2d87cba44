"""User-facing errors.

Anything a user can cause (a missing file, a wrong band count, mismatched grids, a corrupt input)
is raised as :class:`DSen2CRError` with one clear sentence. The command line prints that sentence
and exits with status 2, without a traceback. Programming errors keep their ordinary exceptions.
"""

from __future__ import annotations


class DSen2CRError(Exception):
    """An error caused by the user's input, reported without a traceback by the CLI."""


class DataError(DSen2CRError):
    """A data file is missing, corrupt, or does not have the expected bands, size or dtype."""


class WeightsError(DSen2CRError):
    """A weight file cannot be read or does not describe a supported network."""
