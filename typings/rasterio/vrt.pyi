"""rasterio's warped virtual datasets."""

from typing import Any

from rasterio._io import DatasetReaderBase

class WarpedVRT(DatasetReaderBase):
    def __init__(self, src_dataset: DatasetReaderBase, **kwargs: Any) -> None: ...

def __getattr__(name: str) -> Any: ...
