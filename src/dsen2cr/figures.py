"""Figures: composites for looking at Sentinel data, and the plots reports are made of.

Composites follow the paper's conventions (Fig. 1):

* optical: true-colour RGB from B4, B3, B2, linearly stretched; the default stretch maps
  reflectance [0, 0.3] (DN [0, 3000]) to [0, 1] and clips, the same fixed stretch for every image
  so that pictures compare; ``stretch="percentile"`` maps the 2nd-98th percentiles instead.
* SAR: R = 0, G = VH, B = VV, each dB band clipped to its DSen2-CR range and scaled to [0, 1].
* mask: clear = black, cloud = white, shadow = blue.

Matplotlib is used with the non-interactive Agg backend.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from dsen2cr.io import atomic_output
from dsen2cr.scaling import REFLECTANCE_SCALE, RGB_BANDS, S1_CLIP_DB, S2_BANDS, as_numpy, is_tensor

RGB_STRETCH_DN: tuple[float, float] = (0.0, 3000.0)
"""Default fixed stretch for RGB composites, in DN (reflectance 0 to 0.3)."""


def _np(x: Any) -> np.ndarray:
    if is_tensor(x):
        x = x.float()
    return as_numpy(x)


def rgb_composite(
    s2_dn: object,
    stretch: str | tuple[float, float] = RGB_STRETCH_DN,
) -> np.ndarray:
    """True-colour composite of a 13-band Sentinel-2 image.

    Args:
        s2_dn: (13, H, W) image in DN (multiply scaled values by 2000 first).
        stretch: ``(lo, hi)`` in DN mapped linearly to [0, 1] (default 0-3000), or
            ``"percentile"`` for a per-image 2-98 % stretch over the three bands.

    Returns:
        (H, W, 3) float32 RGB in [0, 1].
    """
    img = _np(s2_dn).astype(np.float32)
    rgb = np.stack([img[b] for b in RGB_BANDS], axis=-1)
    if isinstance(stretch, str):
        if stretch != "percentile":
            raise ValueError(f"unknown stretch {stretch!r}")
        finite = rgb[np.isfinite(rgb)]
        lo, hi = (np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0))
    else:
        lo, hi = stretch
    out = (rgb - lo) / max(float(hi - lo), 1e-6)
    return np.nan_to_num(np.clip(out, 0.0, 1.0)).astype(np.float32)


def sar_composite(s1_db: object) -> np.ndarray:
    """False-colour SAR composite as in the paper (R = 0, G = VH, B = VV).

    Args:
        s1_db: (2, H, W) backscatter in dB, bands VV, VH.

    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    img = _np(s1_db).astype(np.float32)
    (vv_lo, vv_hi), (vh_lo, vh_hi) = S1_CLIP_DB
    vv = np.clip((img[0] - vv_lo) / (vv_hi - vv_lo), 0, 1)
    vh = np.clip((img[1] - vh_lo) / (vh_hi - vh_lo), 0, 1)
    out = np.stack([np.zeros_like(vv), vh, vv], axis=-1)
    return np.nan_to_num(out).astype(np.float32)


def mask_composite(mask: object) -> np.ndarray:
    """Colour picture of a cloud/shadow mask: clear black, cloud white, shadow blue.

    Args:
        mask: (H, W) or (1, H, W) values {-1 shadow, 0 clear, 1 cloud} (a binary {0, 1}
            cloud-or-shadow mask shows as black/white).

    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    m = _np(mask)
    m = m.reshape(m.shape[-2:])
    out = np.zeros((*m.shape, 3), np.float32)
    out[m > 0] = 1.0
    out[m < 0] = (0.15, 0.35, 1.0)
    return out


def new_figure(rows: int, cols: int, size: float = 2.6) -> tuple[Any, np.ndarray]:
    """A matplotlib figure (Agg backend) with a ``rows x cols`` grid of image axes, ticks off."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 110) -> None:
    """Save a figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


# --------------------------------------------------------------------------- report plots
def _plot_axes(width: float, height: float) -> tuple[Any, Any]:
    """A figure (Agg backend) with one ordinary plot axes (ticks on)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    return fig, ax


def band_nrmse_plot(
    nrmse: dict[str, object],
    path: str | os.PathLike[str],
    title: str = "Per-band nRMSE over the test images (cf. paper Fig. 11)",
) -> None:
    """Grouped bar chart of the per-band normalised RMSE of several models (paper Fig. 11).

    Args:
        nrmse: ``{model name: (13,) nRMSE in percent}``, bands in S2_BANDS order.
        path: output PNG.
        title: figure title.
    """
    names = list(nrmse)
    if not names:
        raise ValueError("band_nrmse_plot needs at least one model")
    fig, ax = _plot_axes(max(7.0, 0.55 * len(S2_BANDS) + 0.3 * len(names)), 3.6)
    x = np.arange(len(S2_BANDS))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = _np(nrmse[name]).astype(np.float64).reshape(-1)
        ax.bar(x - 0.4 + width * (i + 0.5), values, width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(S2_BANDS)
    ax.set_xlabel("Sentinel-2 band")
    allv = np.concatenate([_np(v).astype(np.float64).reshape(-1) for v in nrmse.values()])
    allv = allv[np.isfinite(allv) & (allv > 0)]
    # one band with a tiny target range (e.g. B10 over clear land) can dwarf the others
    log = bool(allv.size) and float(allv.max()) > 10.0 * float(np.median(allv))
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("nRMSE (%) of the band's value range" + (" (log scale)" if log else ""))
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def example_grid(
    examples: list[dict[str, Any]],
    model_names: list[str],
    path: str | os.PathLike[str],
    stretch: str | tuple[float, float] = RGB_STRETCH_DN,
    title: str | None = None,
) -> None:
    """Example grid in the style of paper Figs. 6-9, one row per example image.

    Columns: cloudy RGB, SAR composite, target RGB, the prediction of every model, the cloud /
    shadow mask, and the reproduction-error map of every model (mean over the 13 bands of
    ``|prediction - cloudy|`` in reflectance on clear pixels; cloud/shadow pixels drawn black,
    as in paper Fig. 7), with one reflectance colour bar per row.

    Args:
        examples: one dict per row with ``"cloudy"``, ``"target"`` (13, H, W) DN, ``"sar"``
            (2, H, W) dB, ``"mask"`` (H, W) {0 clear, 1 cloud or shadow},
            ``"predictions"`` ``{name: (13, H, W) DN}`` and an optional ``"label"`` (str).
        model_names: models to show, in column order (keys of ``predictions``).
        path: output PNG.
        stretch: RGB stretch passed to :func:`rgb_composite` (stated in the title).
        title: figure title; by default one stating the RGB bands and the stretch.
    """
    import matplotlib

    if not examples:
        raise ValueError("example_grid needs at least one example")
    cols = 3 + 2 * len(model_names) + 1
    fig, axes = new_figure(len(examples), cols, size=2.1)
    stretch_text = (
        "per-image 2-98 % percentile stretch"
        if isinstance(stretch, str)
        else f"reflectance {stretch[0] / REFLECTANCE_SCALE:g}-{stretch[1] / REFLECTANCE_SCALE:g} stretched linearly"
    )
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="black")
    for r, ex in enumerate(examples):
        mask = _np(ex["mask"]).reshape(_np(ex["mask"]).shape[-2:]) > 0
        cloudy = _np(ex["cloudy"]).astype(np.float32)
        panels: list[tuple[str, np.ndarray]] = [
            ("cloudy input", rgb_composite(cloudy, stretch)),
            ("SAR (G=VH, B=VV)", sar_composite(ex["sar"])),
            ("target", rgb_composite(ex["target"], stretch)),
        ]
        preds = ex["predictions"]
        for name in model_names:
            panels.append((name, rgb_composite(preds[name], stretch)))
        panels.append((f"mask ({100 * mask.mean():.0f} % cloud/shadow)", mask_composite(mask)))
        errors = []
        for name in model_names:
            err = np.abs(_np(preds[name]).astype(np.float32) - cloudy).mean(axis=0) / REFLECTANCE_SCALE
            errors.append(np.ma.masked_array(err, mask=mask))
        clear = [e.compressed() for e in errors if e.count()]
        vmax = float(np.percentile(np.concatenate(clear), 99)) if clear else 0.01
        vmax = max(vmax, 1e-4)
        for c, (label, img) in enumerate(panels):
            axes[r, c].imshow(img, interpolation="nearest")
            axes[r, c].set_title(label, fontsize=8)
        im = None
        for j, (name, err) in enumerate(zip(model_names, errors, strict=True)):
            ax = axes[r, len(panels) + j]
            im = ax.imshow(err, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
            ax.set_title(f"reprod. error\n{name}", fontsize=8)
        if im is not None:
            cb = fig.colorbar(im, ax=axes[r, len(panels):].tolist(), fraction=0.05, pad=0.02)
            cb.set_label("|pred - cloudy| (reflectance)", fontsize=7)
            cb.ax.tick_params(labelsize=7)
        if ex.get("label"):
            axes[r, 0].set_ylabel(str(ex["label"]), fontsize=7)
    fig.suptitle(
        title or f"RGB = B4, B3, B2, {stretch_text}; reproduction error on clear pixels, "
        "cloud/shadow mask black",
        fontsize=9,
    )
    save_figure(fig, path)


def training_curves_plot(
    curves: dict[str, dict[str, tuple[list[int], list[float]]]],
    path: str | os.PathLike[str],
    title: str = "Training curves",
) -> None:
    """Loss per epoch of one or more training runs.

    Args:
        curves: ``{run name: {series name: (epochs, values)}}``, e.g. series ``"train_loss"`` and
            ``"val_loss"`` (values in the loss's scaled domain).
        path: output PNG.
        title: figure title.
    """
    if not curves:
        raise ValueError("training_curves_plot needs at least one run")
    fig, ax = _plot_axes(6.5, 3.8)
    styles = ["-", "--", ":", "-."]
    colours = [f"C{i}" for i in range(10)]
    for i, (run, series) in enumerate(curves.items()):
        for j, (label, (epochs, values)) in enumerate(series.items()):
            ax.plot(
                epochs, values, styles[j % len(styles)], color=colours[i % len(colours)],
                marker="o", markersize=3, label=f"{run}: {label}",
            )  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (scaled domain)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.xaxis.get_major_locator().set_params(integer=True)
    save_figure(fig, path)
