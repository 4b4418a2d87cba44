"""Minimal type stubs of rasterio: the values that cross dsen2cr's module boundaries.

rasterio ships no type information. These stubs type what dsen2cr passes between its modules
(datasets, CRS, windows, transforms); every module ends with a permissive ``__getattr__`` so that
the parts not typed here stay ``Any``, as they are without stubs.
"""

import os
from types import TracebackType
from typing import IO, Any, Literal, Self, overload

from rasterio import coords as coords
from rasterio import crs as crs
from rasterio import enums as enums
from rasterio import errors as errors
from rasterio import io as io
from rasterio import transform as transform
from rasterio import vrt as vrt
from rasterio import windows as windows
from rasterio._base import DatasetBase as DatasetBase
from rasterio.crs import CRS as CRS
from rasterio.io import DatasetReader as DatasetReader
from rasterio.io import DatasetWriter as DatasetWriter
from rasterio.io import MemoryFile as MemoryFile
from rasterio.transform import Affine as Affine

__version__: str

_Path = str | os.PathLike[str] | IO[bytes]

@overload
def open(
    fp: _Path,
    mode: Literal["r"] = "r",
    driver: str | None = None,
    *args: Any,
    **kwargs: Any,
) -> DatasetReader: ...
@overload
def open(
    fp: _Path,
    mode: Literal["w", "w+", "r+"],
    driver: Any = None,
    *args: Any,
    **kwargs: Any,
) -> DatasetWriter: ...
@overload
def open(fp: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any: ...

class Env:
    def __init__(self, *args: Any, **options: Any) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None: ...

def __getattr__(name: str) -> Any: ...
