"""Exact tiling: cores partition the scene, windows carry the halo, every window has one size."""

from __future__ import annotations

import numpy as np
import pytest

from dsen2cr.scene.tiling import plan_tiles


@pytest.mark.parametrize(("h", "w", "tile", "halo"), [(700, 900, 256, 8), (37, 500, 64, 34),
                                                       (5, 7, 16, 8), (512, 512, 512, 36)])
def test_plan_tiles_partition_and_halo(h, w, tile, halo):
    tiles = plan_tiles(h, w, tile, halo)
    cover = np.zeros((h, w), int)
    shapes = set()
    for t in tiles:
        r, c, th, tw = t.core
        wr, wc, wh, ww = t.window
        cover[r : r + th, c : c + tw] += 1
        shapes.add((wh, ww))
        assert 0 <= wr and wr + wh <= h and 0 <= wc and wc + ww <= w
        # halo on every side that is not the scene border
        assert r - wr >= halo or wr == 0
        assert c - wc >= halo or wc == 0
        assert (wr + wh) - (r + th) >= halo or wr + wh == h
        assert (wc + ww) - (c + tw) >= halo or wc + ww == w
    assert (cover == 1).all()
    assert shapes == {(min(tile + 2 * halo, h), min(tile + 2 * halo, w))}


