"""rasterio's dataset base class: the attributes every dataset has."""

from types import TracebackType
from typing import Any, Self

from affine import Affine
from rasterio.coords import BoundingBox
from rasterio.crs import CRS

class DatasetBase:
    name: str
    mode: str
    closed: bool
    driver: str
    width: int
    height: int
    count: int
    crs: CRS | None
    transform: Affine
    dtypes: tuple[str, ...]
    nodata: float | None
    nodatavals: tuple[float | None, ...]
    indexes: tuple[int, ...]
    block_shapes: list[tuple[int, int]]
    descriptions: tuple[str | None, ...]
    bounds: BoundingBox
    res: tuple[float, float]
    shape: tuple[int, int]
    profile: dict[str, Any]
    def tags(self, bidx: int = 0, ns: str | None = None) -> dict[str, str]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None: ...
    def __getattr__(self, name: str) -> Any: ...

def __getattr__(name: str) -> Any: ...
