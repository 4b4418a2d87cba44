"""rasterio's bounding boxes."""

from typing import Any, NamedTuple

class BoundingBox(NamedTuple):
    left: float
    bottom: float
    right: float
    top: float

def __getattr__(name: str) -> Any: ...
