"""A tiny fake SEN12MS-CR in the published layout (random patches of SIZE x SIZE pixels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsen2cr.data.layout import MODALITIES, SEASONS
from tests.conftest import write_raster_file

SIZE = 32


def paths(root: Path, season: str, roi: int, patch: int) -> dict[str, Path]:
    full = SEASONS[season]
    return {
        m: root / full / f"{full}_{m}" / f"{m}_{roi}" / f"{full}_{m}_{roi}_p{patch}.tif"
        for m in MODALITIES
    }


def default_arrays(rng: np.random.Generator, size: int = SIZE) -> dict[str, np.ndarray]:
    return {
        "s1": rng.uniform(-25, -5, (2, size, size)).astype(np.float32),
        "s2": rng.integers(200, 4000, (13, size, size)).astype(np.uint16),
        "s2_cloudy": rng.integers(200, 4000, (13, size, size)).astype(np.uint16),
    }


def write_triplet(root: Path, season: str, roi: int, patch: int, seed: int = 0,
                  skip: tuple[str, ...] = (), **arrays: np.ndarray) -> dict[str, Path]:  # fmt: skip
    rng = np.random.default_rng([roi, patch, seed])
    data = default_arrays(rng)
    data.update(arrays)
    p = paths(root, season, roi, patch)
    for m in MODALITIES:
        if m not in skip:
            write_raster_file(p[m], data[m], crs="EPSG:32632",
                              origin=(500000.0 + 1280 * patch, 5000000.0))
    return p
