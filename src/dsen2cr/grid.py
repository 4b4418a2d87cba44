"""A raster's pixel grid as one typed value: CRS, affine transform and size.

Scenes, readers, writers and mosaics pass a :class:`Grid` across module boundaries instead of
loose ``crs``/``transform``/``width``/``height`` values, so that a type checker sees a CRS where a
CRS belongs and an :class:`affine.Affine` where a transform belongs. Windows on a grid are
:class:`rasterio.windows.Window` values (pixel offsets and sizes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from affine import Affine
from rasterio.crs import CRS

__all__ = ["Georeferenced", "Grid"]


class Georeferenced(Protocol):
    """Anything with a grid's four values, e.g. an open rasterio dataset."""

    @property
    def crs(self) -> CRS | None: ...

    @property
    def transform(self) -> Affine: ...

    @property
    def height(self) -> int: ...

    @property
    def width(self) -> int: ...


@dataclass(frozen=True)
class Grid:
    """A pixel grid: where its pixels lie (CRS and transform) and how many there are.

    Attributes:
        crs: coordinate reference system, or ``None`` for an image without georeferencing.
        transform: maps pixel (col, row) to CRS (x, y), origin at the top-left corner of pixel
            (0, 0), in CRS units per pixel; the identity for an image without georeferencing.
        height: rows, pixels.
        width: columns, pixels.
    """

    crs: CRS | None
    transform: Affine
    height: int
    width: int

    @classmethod
    def of(cls, raster: Georeferenced) -> Grid:
        """The grid of a raster.

        Args:
            raster: an open dataset (``crs``, ``transform``, ``height``, ``width``).

        Returns:
            Its grid.
        """
        return cls(raster.crs, raster.transform, raster.height, raster.width)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return self.height, self.width

    def same_as(self, other: Grid, tolerance: float | None = None) -> bool:
        """Whether two grids are the same pixels.

        Args:
            other: another grid.
            tolerance: largest difference of the transforms' coefficients (CRS units, or CRS
                units per pixel); None: :meth:`affine.Affine.almost_equals`'s default (1e-5).

        Returns:
            True when both have the same CRS, size and (within ``tolerance``) transform.
        """
        if self.crs != other.crs or self.shape != other.shape:
            return False
        if tolerance is None:  # affine < 3 takes no None
            return self.transform.almost_equals(other.transform)
        return self.transform.almost_equals(other.transform, precision=tolerance)
