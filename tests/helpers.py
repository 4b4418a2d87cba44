"""Helpers of several test modules: the real-data folder, tiny models, module-scoped writers.

(Fixtures live in ``conftest.py``; this module holds what is needed at collection time or in
module-scoped fixtures, where the function-scoped ``write_raster`` fixture cannot be used.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch

from dsen2cr.models import DSen2CR
from tests.conftest import ORIGIN, UTM, write_raster_file

REPO = Path(__file__).resolve().parents[1]
"""The repository root."""
REALDATA_ENV = "DSEN2CR_REALDATA"
REALDATA_DEFAULT = "../shared/realdata"


def realdata_folder(environ: Mapping[str, str] = os.environ) -> Path:
    """The real-data folder: ``$DSEN2CR_REALDATA`` (an empty value counts as unset), by default
    ``../shared/realdata``; ``~`` is expanded and a relative path is taken from the repository
    root (where ``make`` runs), whatever the working directory."""
    return (REPO / Path(environ.get(REALDATA_ENV) or REALDATA_DEFAULT).expanduser()).resolve()


REALDATA = realdata_folder()
"""The real sample data (absent in some checkouts: tests that read it then skip)."""
TRIPLETS = REALDATA / "sen12mscr_triplets"
GEOREF = REALDATA / "sen12mscr_georef"

__all__ = ["GEOREF", "ORIGIN", "REALDATA", "REALDATA_ENV", "REPO", "TRIPLETS", "UTM", "needs_cuda",
           "needs_files", "realdata_folder", "tiny_model", "write_raster_file"]  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])


def needs_cuda(test: F) -> F:
    """Mark a test ``cuda`` (``make gpu-check`` runs ``pytest -m cuda``) and skip it without a
    CUDA device."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
    return pytest.mark.cuda(skip(test))  # type: ignore[no-any-return]


def needs_files(*paths: Path) -> Callable[[F], F]:
    """Mark a test ``realdata`` and skip it unless every one of ``paths`` exists (the reason
    names the first missing path and ``DSEN2CR_REALDATA``)."""
    missing = [p for p in paths if not p.exists()]
    reason = f"real data not present: {missing[:1]} (set {REALDATA_ENV})"
    skip = pytest.mark.skipif(bool(missing), reason=reason)

    def mark(test: F) -> F:
        return pytest.mark.realdata(skip(test))  # type: ignore[no-any-return]

    return mark


def tiny_model(sar: bool = True, seed: int = 0, features: int = 8, blocks: int = 3) -> DSen2CR:
    """A small seeded DSen2-CR in eval mode."""
    torch.manual_seed(seed)
    return DSen2CR(features=features, blocks=blocks, sar_channels=2 if sar else 0).eval()
