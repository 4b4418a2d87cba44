"""Render real cloudy Sentinel-2 patches next to their cloud/shadow masks.

Reads the SEN12MS-CR samples in ``../shared/realdata`` (see its README) and writes a grid of
pairs: true-colour RGB (B4, B3, B2, DN 0-3000) and the mask of :func:`dsen2cr.cloudmask.
cloud_shadow_mask` (clear black, cloud white, shadow blue), titled with the cloud and shadow
fractions.

    python docs/scripts/mask_gallery.py [--out docs/images/masks_realdata.png] [--ids ...]

Ids are triplet ids (``316``, ``2266``, ...) or ``georef`` for the georeferenced cloudy patch.
"""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path

import numpy as np

from dsen2cr.cloudmask import cloud_shadow_mask
from dsen2cr.figures import mask_composite, new_figure, rgb_composite, save_figure
from dsen2cr.io import read_raster

REPO = Path(__file__).resolve().parents[2]
REALDATA = REPO.parent / "shared" / "realdata"
DEFAULT_IDS = ["2266", "4287", "5254", "georef", "581", "6780", "316", "1302"]
"""Overcast; cumulus with shadows (3); two the data README calls clear that are hazy; a clear
one with bright soil; a clear one with open water (which the shadow test flags)."""


def _path(key: str, realdata: Path) -> Path:
    if key == "georef":
        return realdata / "sen12mscr_georef" / "ROIs1868_summer_s2_cloudy_19_p30.tif"
    return realdata / "sen12mscr_triplets" / f"{key}_s2_cloudy.tif"


def render(ids: list[str], out: Path, realdata: Path = REALDATA, cols: int = 4) -> None:
    """Write the gallery PNG for the given patch ids (pairs of panels, ``cols`` panels a row)."""
    pairs_per_row = max(cols // 2, 1)
    rows = math.ceil(len(ids) / pairs_per_row)
    fig, axes = new_figure(rows, 2 * pairs_per_row, size=2.4)
    for ax in axes.ravel()[2 * len(ids) :]:
        ax.axis("off")
    for i, key in enumerate(ids):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the triplets carry no georeferencing
            image, _ = read_raster(_path(key, realdata), expected_bands=13, what="S2 image")
        mask = cloud_shadow_mask(image)
        r, c = divmod(i, pairs_per_row)
        ax_rgb, ax_mask = axes[r, 2 * c], axes[r, 2 * c + 1]
        ax_rgb.imshow(rgb_composite(image))
        ax_rgb.set_title(f"{key} RGB", fontsize=9)
        ax_mask.imshow(mask_composite(mask), interpolation="nearest")
        cloud, shadow = float(np.mean(mask == 1)), float(np.mean(mask == -1))
        ax_mask.set_title(f"cloud {cloud:.0%}  shadow {shadow:.0%}", fontsize=9)
    save_figure(fig, out, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "masks_realdata.png")
    parser.add_argument("--ids", nargs="+", default=DEFAULT_IDS)
    parser.add_argument("--realdata", type=Path, default=REALDATA)
    parser.add_argument("--cols", type=int, default=4, help="panels per row (2 per patch)")
    args = parser.parse_args()
    render(args.ids, args.out, args.realdata, args.cols)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
