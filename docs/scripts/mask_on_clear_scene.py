"""The paper's cloud/shadow detector on an essentially cloud-free real scene, and its threshold.

Runs ``dsen2cr mask`` (Python: :func:`dsen2cr.scene.mask_scene`) on the Sen1Floods11 scene
``Spain_7370579_S2Hand.tif`` of the real-data folder (``$DSEN2CR_REALDATA``, default
``../shared/realdata``; see its README) at several cloud thresholds, prints a Markdown table of
the cloud and shadow fractions it reports, and writes a figure: the true-colour RGB (B4, B3, B2,
linear stretch of reflectance 0-0.3, i.e. DN 0-3000, clipped), the mask at the default threshold
(clear black, cloud white, shadow blue) and the smoothed cloud score with the tested thresholds
as contours.

    .venv/bin/python docs/scripts/mask_on_clear_scene.py [--out docs/images/mask_clear_scene.png]
        [--realdata DIR] [--thresholds 0.1 0.2 0.3 0.4 0.5]

Every number in the figure and the table is measured by this run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from dsen2cr.cloudmask import DEFAULT_THRESHOLD, cloud_score, cloud_shadow_mask
from dsen2cr.figures import RGB_STRETCH_DN, mask_composite, new_figure, rgb_composite, save_figure
from dsen2cr.scene import PredictOptions, mask_scene

REPO = Path(__file__).resolve().parents[2]
REALDATA = (REPO / os.environ.get("DSEN2CR_REALDATA", "../shared/realdata")).resolve()
SCENE = Path("sen1floods11") / "Spain_7370579_S2Hand.tif"
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)


def measure(s2: Path, thresholds: tuple[float, ...]) -> list[dict[str, float]]:
    """Cloud and shadow fractions that ``dsen2cr mask --threshold T`` reports, and its mask."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in thresholds:
            out = Path(tmp) / f"mask_{t}.tif"
            summary = mask_scene(s2, out, options=PredictOptions(threshold=t, progress=False))
            with rasterio.open(out) as f:
                mask = f.read(1)
            rows.append({"threshold": t, "cloud": summary["cloud_fraction"],
                         "shadow": summary["shadow_fraction"], "mask": mask})  # fmt: skip
    return rows


def percent(x: float) -> str:
    return f"{x:.1%}" if x >= 0.01 or x == 0 else f"{x:.2%}"


def matplotlib_colour(i: int, n: int) -> tuple[float, float, float]:
    """The i-th of n colours from pale yellow (lowest threshold) to dark red (highest)."""
    import matplotlib

    r, g, b, _ = matplotlib.colormaps["YlOrRd"](0.2 + 0.75 * i / max(n - 1, 1))
    return (r, g, b)


def render(s2: Path, out: Path, thresholds: tuple[float, ...] = THRESHOLDS) -> list[dict]:
    """Write the figure and return the measured rows (threshold, cloud, shadow, mask)."""
    thresholds = tuple(sorted(set(thresholds) | {DEFAULT_THRESHOLD}))
    rows = measure(s2, thresholds)
    with rasterio.open(s2) as f:
        image = f.read()
    default = next(r for r in rows if r["threshold"] == DEFAULT_THRESHOLD)
    # The scene path and the in-memory detector agree (one tile, image-wide shadow statistics).
    assert np.array_equal(default["mask"], cloud_shadow_mask(image)), "mask differs from the CLI's"
    shadow_test = float(np.mean(cloud_shadow_mask(image, threshold=1.0) == -1))  # no cloud at all
    score = cloud_score(image)

    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    fig, axes = new_figure(2, 2, size=4.2)
    lo, hi = RGB_STRETCH_DN
    rgb = rgb_composite(image)
    axes[0, 0].imshow(rgb)
    axes[0, 0].set_title(
        f"RGB = B4, B3, B2; reflectance {lo / 1e4:g}-{hi / 1e4:g}, linear", fontsize=9
    )
    colours = {"cloud": (1.0, 1.0, 1.0), "shadow": (0.15, 0.35, 1.0), "clear": (0.0, 0.0, 0.0)}
    axes[0, 1].imshow(mask_composite(default["mask"]), interpolation="nearest")
    axes[0, 1].set_title(f"mask (dsen2cr mask, threshold {DEFAULT_THRESHOLD})", fontsize=9)
    axes[0, 1].legend(handles=[Patch(facecolor=c, edgecolor="grey", label=n) for n, c in colours.items()],
                      loc="lower right", fontsize=8, framealpha=0.9)  # fmt: skip
    overlay = rgb.copy()
    for value, colour in ((1, (1.0, 0.1, 0.1)), (-1, colours["shadow"])):
        sel = default["mask"] == value
        overlay[sel] = 0.45 * overlay[sel] + 0.55 * np.asarray(colour, np.float32)
    axes[1, 0].imshow(overlay, interpolation="nearest")
    axes[1, 0].set_title("the mask over the RGB: cloud red, shadow blue", fontsize=9)
    # Pixels by the interval of tested thresholds their score lies in.
    levels = [0.0, *thresholds, max(1.0, thresholds[-1] + 1e-6)]
    cmap = ListedColormap(
        ["black", *[matplotlib_colour(i, len(thresholds)) for i in range(len(thresholds))]]
    )
    axes[1, 1].imshow(score, cmap=cmap, norm=BoundaryNorm(levels, cmap.N), interpolation="nearest")
    fractions = {r["threshold"]: r["cloud"] for r in rows}
    axes[1, 1].legend(
        handles=[Patch(facecolor="black", edgecolor="grey", label=f"score < {thresholds[0]:g}")]
        + [Patch(facecolor=matplotlib_colour(i, len(thresholds)), edgecolor="grey",
                 label=f"score {t:g}-{u:g} (>= {t:g}: {percent(fractions[t])})")
           for i, (t, u) in enumerate(zip(thresholds, levels[2:], strict=True))],
        loc="lower right", fontsize=7, framealpha=0.9,
    )  # fmt: skip
    axes[1, 1].set_title("smoothed cloud score: cloud where >= threshold", fontsize=9)
    fig.suptitle(
        f"{s2.name} (Sen1Floods11, essentially cloud-free)\ncloud {default['cloud']:.1%}, "
        f"shadow {default['shadow']:.1%} at threshold {DEFAULT_THRESHOLD}", fontsize=10,
    )  # fmt: skip
    save_figure(fig, out, dpi=110)
    print("| threshold | cloud | shadow |\n| --- | --- | --- |")
    for r in rows:
        print(f"| {r['threshold']:g} | {r['cloud']:.2%} | {r['shadow']:.2%} |")
    print(f"shadow test alone (no cloud precedence): {shadow_test:.2%}")
    r = image.astype(np.float64) / 1e4  # reflectance; NDWI = (B3 - B8) / (B3 + B8)
    ndwi = (r[2] - r[7]) / np.where(r[2] + r[7] == 0, 1.0, r[2] + r[7])
    shadow = default["mask"] == -1
    print(f"pixels flagged as shadow with NDWI > 0: {np.mean(ndwi[shadow] > 0):.0%}; "
          f"highest smoothed cloud score: {score.max():.2f}")  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=REPO / "docs" / "images" / "mask_clear_scene.png"
    )
    parser.add_argument("--realdata", type=Path, default=REALDATA)
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    args = parser.parse_args()
    s2 = args.realdata / SCENE
    if not s2.exists():
        parser.error(f"{s2} not found (set DSEN2CR_REALDATA or pass --realdata)")
    render(s2, args.out, tuple(args.thresholds))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
