"""Shared pytest fixtures: deterministic torch, one raster-writing factory.

Tests write their own tiny data; those that read ``../shared/realdata`` skip when it is absent
(:mod:`tests.helpers`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from dsen2cr.io import no_georef_warning

UTM = "EPSG:32633"
ORIGIN = (500000.0, 5600000.0)

RasterWriter = Callable[..., Path]


@pytest.fixture(autouse=True)
def _deterministic_torch() -> None:
    """Seed torch before every test so tiny random models are reproducible."""
    torch.manual_seed(0)


def write_raster_file(
    path: str | Path,
    data: np.ndarray,
    *,
    crs: str | None = UTM,
    transform: Any = None,
    resolution: float = 10.0,
    origin: tuple[float, float] = ORIGIN,
    nodata: float | None = None,
    block: int | None = None,
    compress: str | None = None,
    descriptions: tuple[str, ...] | None = None,
    tags: dict[str, str] | None = None,
) -> Path:
    """Write a (C, H, W) array as a GeoTIFF and return its path.

    Args:
        path: output file (parent folders are created).
        data: the bands; the file gets their dtype.
        crs: CRS; None writes a raster without georeferencing.
        transform: affine transform (default: ``origin`` and ``resolution`` metres).
        resolution: pixel size of the default transform.
        origin: upper-left corner of the default transform.
        nodata: the nodata value, if any.
        block: tile the file in ``block x block`` blocks (default: strips).
        compress: GeoTIFF compression, e.g. ``"deflate"``.
        descriptions: band descriptions.
        tags: dataset metadata.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile: dict[str, Any] = {"driver": "GTiff", "width": data.shape[-1], "height": data.shape[-2],
                               "count": data.shape[0], "dtype": data.dtype.name}  # fmt: skip
    if crs is not None:
        profile["crs"] = crs
        profile["transform"] = transform or from_origin(*origin, resolution, resolution)
    if nodata is not None:
        profile["nodata"] = nodata
    if block is not None:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    if compress is not None:
        profile["compress"] = compress
    with no_georef_warning(), rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, d)
        if tags:
            dst.update_tags(**tags)
    return path


@pytest.fixture
def write_raster() -> RasterWriter:
    """The raster-writing factory :func:`write_raster_file` (``write_raster(path, data, ...)``)."""
    return write_raster_file
