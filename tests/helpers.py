"""Helpers of several test modules: the real-data folder, tiny models, module-scoped writers.

(Fixtures live in ``conftest.py``; this module holds what is needed at collection time or in
module-scoped fixtures, where the function-scoped ``write_raster`` fixture cannot be used.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch

from dsen2cr.models import DSen2CR
from tests.conftest import ORIGIN, UTM, write_raster_file

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
"""The real sample data beside the repository (absent in some checkouts: tests then skip)."""
TRIPLETS = REALDATA / "sen12mscr_triplets"
GEOREF = REALDATA / "sen12mscr_georef"

__all__ = ["GEOREF", "ORIGIN", "REALDATA", "TRIPLETS", "UTM", "needs_cuda", "needs_files",
           "tiny_model", "write_raster_file"]  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])


def needs_cuda(test: F) -> F:
    """Mark a test ``cuda`` (``make gpu-check`` runs ``pytest -m cuda``) and skip it without a
    CUDA device."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
    return pytest.mark.cuda(skip(test))  # type: ignore[no-any-return]


def needs_files(*paths: Path) -> pytest.MarkDecorator:
    """Skip a test unless every one of ``paths`` exists (marks it ``realdata``)."""
    missing = [p for p in paths if not p.exists()]
    return pytest.mark.skipif(bool(missing), reason=f"real data not present: {missing[:1]}")


def tiny_model(sar: bool = True, seed: int = 0, features: int = 8, blocks: int = 3) -> DSen2CR:
    """A small seeded DSen2-CR in eval mode."""
    torch.manual_seed(seed)
    return DSen2CR(features=features, blocks=blocks, sar_channels=2 if sar else 0).eval()
