"""Exact tiling of a scene.

DSen2-CR is fully convolutional and an output pixel depends only on inputs within
``model.receptive_field_radius`` (= 2B + 2) pixels. A scene is therefore cut into tiles: each tile
keeps a *core* of ``tile x tile`` output pixels and is run with a *halo* of at least that radius
around it, and only the core is kept. Where a tile meets the scene border the halo is clipped at
the border, so the network's zero padding falls exactly where it falls for the whole scene.
The result is the whole-scene prediction up to float round-off, whatever the tile size (tests
prove it). Border tiles are shifted inwards so that every tile has the same input size, which
keeps batches uniform. The cloud mask tiles the same way with a halo of
:data:`~dsen2cr.cloudmask.MASK_RADIUS`.

Scenes wider than :data:`STRIPE_MAX` pixels are cut into vertical stripes of whole tiles, and the
tiles come stripe by stripe (row-major inside a stripe): readers that decode rows of a stripe
then hold a bounded number of pixels whatever the scene's width. A Sentinel-2 tile (10980
pixels) is one stripe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

STRIPE_MAX = 12288
"""Widest stripe of a scene in pixels (a whole number of tiles, at least one)."""


@dataclass(frozen=True)
class Tile:
    """One unit of tiled prediction, in pixel coordinates of the scene grid.

    Attributes:
        core: ``(row, col, height, width)`` of the output pixels this tile provides.
        window: ``(row, col, height, width)`` of the input read for it: the core plus a halo of
            at least the receptive-field radius on every side that is not the scene border.
        stripe: index of the vertical stripe of the scene the tile belongs to.
    """

    core: tuple[int, int, int, int]
    window: tuple[int, int, int, int]
    stripe: int = 0

    @property
    def inner(self) -> tuple[int, int, int, int]:
        """``(row, col, height, width)`` of the core inside the window."""
        r, c, h, w = self.core
        return r - self.window[0], c - self.window[1], h, w

    def core_of(self, a: np.ndarray) -> np.ndarray:
        """The core's pixels of an array of this tile's window.

        Args:
            a: ``(..., window height, window width)``.

        Returns:
            ``(..., core height, core width)``, a view.
        """
        r, c, h, w = self.inner
        return a[..., r : r + h, c : c + w]

    def rio_window(self) -> Window:
        """The input window as a rasterio ``Window``."""
        r, c, h, w = self.window
        return Window(c, r, w, h)

    def rio_core(self) -> Window:
        """The core as a rasterio ``Window``."""
        r, c, h, w = self.core
        return Window(c, r, w, h)


def _axis_tiles(size: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """Along one axis: (core_start, core_len, window_start, window_len) for each tile."""
    wlen = min(tile + 2 * halo, size)
    out = []
    for c0 in range(0, size, tile):
        clen = min(tile, size - c0)
        w0 = min(max(c0 - halo, 0), size - wlen)
        out.append((c0, clen, w0, wlen))
    return out


def plan_tiles(height: int, width: int, tile: int, halo: int, stripe_max: int | None = None) -> list[Tile]:
    """Cut a ``height x width`` scene into tiles with uniform input windows.

    Cores are ``tile x tile`` (smaller in the last row and column); windows have size
    ``min(tile + 2 halo, height) x min(tile + 2 halo, width)`` everywhere, shifted inwards at the
    scene border. Every core pixel is at least ``halo`` pixels inside its window, except towards
    the scene border, where the window ends at the border itself.

    Args:
        height: scene rows.
        width: scene columns.
        tile: core size in pixels (>= 1).
        halo: context in pixels (>= 0), at least the receptive-field radius.
        stripe_max: widest stripe in pixels (default :data:`STRIPE_MAX`; see the module docs).

    Returns:
        Tiles stripe by stripe, row-major inside each stripe (row-major for a scene of one
        stripe).
    """
    if tile < 1 or halo < 0 or height < 1 or width < 1:
        raise ValueError(f"invalid tiling: {height}x{width}, tile {tile}, halo {halo}")
    rows = _axis_tiles(height, tile, halo)
    cols = _axis_tiles(width, tile, halo)
    per_stripe = max(1, (stripe_max or STRIPE_MAX) // tile)
    return [
        Tile((r0, c0, rh, cw), (wr, wc, wrh, wcw), s)
        for s in range(-(-len(cols) // per_stripe))
        for (r0, rh, wr, wrh) in rows
        for (c0, cw, wc, wcw) in cols[s * per_stripe : (s + 1) * per_stripe]
    ]


def stripe_columns(tiles: list[Tile]) -> dict[int, tuple[int, int]]:
    """The columns each stripe's tiles read.

    Args:
        tiles: tiles of a scene (:func:`plan_tiles`).

    Returns:
        ``{stripe: (start, end)}``: the columns ``[start, end)`` (pixels) its tiles' windows
        span.
    """
    spans: dict[int, tuple[int, int]] = {}
    for t in tiles:
        c, w = t.window[1], t.window[3]
        lo, hi = spans.get(t.stripe, (c, c + w))
        spans[t.stripe] = (min(lo, c), max(hi, c + w))
    return spans
