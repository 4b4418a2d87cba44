"""rasterio's dataset copying (untyped: everything is permissive)."""

from typing import Any

def __getattr__(name: str) -> Any: ...
