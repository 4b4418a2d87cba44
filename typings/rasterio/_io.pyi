"""rasterio's reading and writing dataset bases."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from rasterio._base import DatasetBase
from rasterio.windows import Window

class DatasetReaderBase(DatasetBase):
    def read(
        self,
        indexes: int | Sequence[int] | None = None,
        out: npt.NDArray[Any] | None = None,
        window: Window | tuple[tuple[int, int], tuple[int, int]] | None = None,
        masked: bool = False,
        out_shape: tuple[int, ...] | None = None,
        boundless: bool = False,
        resampling: Any = ...,
        fill_value: float | None = None,
        out_dtype: str | np.dtype[Any] | type | None = None,
    ) -> npt.NDArray[Any]: ...

class DatasetWriterBase(DatasetReaderBase):
    def write(
        self,
        arr: npt.ArrayLike,
        indexes: int | Sequence[int] | None = None,
        window: Window | tuple[tuple[int, int], tuple[int, int]] | None = None,
        masked: bool = False,
    ) -> None: ...
    def set_band_description(self, bidx: int, value: str) -> None: ...
    def update_tags(self, *args: Any, **kwargs: Any) -> None: ...

def __getattr__(name: str) -> Any: ...
