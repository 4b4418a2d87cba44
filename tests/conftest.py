"""Shared pytest fixtures (kept minimal: each test module writes its own tiny data)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
"""The real sample data beside the repository (absent in some checkouts: tests then skip)."""


@pytest.fixture(autouse=True)
def _deterministic_torch() -> None:
    """Seed torch before every test so tiny random models are reproducible."""
    torch.manual_seed(0)
