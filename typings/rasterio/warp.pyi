"""rasterio's reprojection helpers."""

from typing import Any

from rasterio.crs import CRS

def transform_bounds(
    src_crs: CRS | str | dict[str, Any],
    dst_crs: CRS | str | dict[str, Any],
    left: float,
    bottom: float,
    right: float,
    top: float,
    densify_pts: int = 21,
) -> tuple[float, float, float, float]: ...
def __getattr__(name: str) -> Any: ...
