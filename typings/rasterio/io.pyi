"""rasterio's dataset classes and in-memory files."""

from types import TracebackType
from typing import Any, Self, overload

from rasterio._io import DatasetReaderBase, DatasetWriterBase

class DatasetReader(DatasetReaderBase): ...
class DatasetWriter(DatasetWriterBase): ...

class MemoryFile:
    name: str
    def __init__(
        self,
        file_or_bytes: bytes | None = None,
        dirname: str | None = None,
        filename: str | None = None,
        ext: str = ".tif",
    ) -> None: ...
    @overload
    def open(
        self,
        driver: str | None = None,
        *,
        width: int,
        height: int,
        count: int,
        dtype: Any,
        **kwargs: Any,
    ) -> DatasetWriter: ...
    @overload
    def open(self, driver: str | None = None, sharing: bool = False) -> DatasetReader: ...
    def getbuffer(self) -> memoryview: ...
    def read(self, size: int = -1) -> bytes: ...
    def write(self, data: bytes) -> int: ...
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
