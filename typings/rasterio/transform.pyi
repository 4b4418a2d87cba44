"""rasterio's affine transforms (the ``affine`` package, which is typed)."""

from typing import Any

from affine import Affine as Affine

def from_origin(west: float, north: float, xsize: float, ysize: float) -> Affine: ...
def from_bounds(
    west: float, south: float, east: float, north: float, width: int, height: int
) -> Affine: ...
def __getattr__(name: str) -> Any: ...
