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
from collections.abc import Sequence
from typing import Any

import numpy as np

from dsen2cr.io import atomic_output
from dsen2cr.scaling import (
    REFLECTANCE_SCALE,
    RGB_BANDS,
    S1_CLIP_DB,
    S2_BANDS,
    S2_RESOLUTION_M,
    as_numpy,
    is_tensor,
)

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


def pick_examples(cloud_fractions: Sequence[float], k: int) -> list[int]:
    """Deterministic choice of ``k`` example images spread over the range of cloud cover.

    Images with some cloud are preferred (cloud removal has nothing to show on a clear patch);
    among them the ones at evenly spaced quantiles of the cloud fraction, from light to full
    cover, are taken; ties are broken by position.

    Args:
        cloud_fractions: cloud-or-shadow fraction of each image, in [0, 1].
        k: number of examples wanted.

    Returns:
        Up to ``k`` distinct positions into ``cloud_fractions``, by increasing cloud fraction.
    """
    if k <= 0 or not cloud_fractions:
        return []
    order = sorted(range(len(cloud_fractions)), key=lambda i: (cloud_fractions[i], i))
    cloudy = [i for i in order if cloud_fractions[i] > 0.0]
    pool = cloudy if len(cloudy) >= k else order
    if len(pool) <= k:
        return sorted(pool, key=lambda i: (cloud_fractions[i], i))
    picks = np.linspace(0.15, 0.85, k) if k > 1 else np.array([0.5])
    positions = sorted({round(q * (len(pool) - 1)) for q in picks})
    return [pool[p] for p in positions]


# --------------------------------------------------------------------------- report plots
def _plot_axes(width: float, height: float) -> tuple[Any, Any]:
    """A figure (Agg backend) with one ordinary plot axes (ticks on)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    return fig, ax


def _log_scale_if_dominated(ax: Any, series: list[object]) -> bool:
    """Put the y axis on a log scale when one value dwarfs the rest (max > 10 x median).

    One band with a tiny target range (B10 over clear land, say) can have an nRMSE ten times
    the others' and flatten them into the axis. Returns whether the scale is logarithmic.
    """
    allv = np.concatenate([_np(v).astype(np.float64).reshape(-1) for v in series])
    allv = allv[np.isfinite(allv) & (allv > 0)]
    log = bool(allv.size) and float(allv.max()) > 10.0 * float(np.median(allv))
    if log:
        ax.set_yscale("log")
    return log


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
    log = _log_scale_if_dominated(ax, list(nrmse.values()))
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


# --------------------------------------------------------------------------- large scenes
_RESOLUTION_MARKERS = {10: "o", 20: "^", 60: "s"}
"""Marker of each band resolution in metres (paper Fig. 10): circle, triangle, square."""


def _band_markers(ax: Any, values: np.ndarray, colour: str, label: str) -> None:
    """One line over the 13 bands with markers by band resolution."""
    x = np.arange(len(S2_BANDS))
    ax.plot(x, values, "-", color=colour, lw=1.2, label=label)
    for res, marker in _RESOLUTION_MARKERS.items():
        idx = [i for i, b in enumerate(S2_BANDS) if S2_RESOLUTION_M[b] == res]
        ax.plot(idx, values[idx], marker, color=colour, ms=5, ls="none")


def scene_examples_figure(
    scenes: list[dict[str, Any]],
    model_names: list[str],
    path: str | os.PathLike[str],
    stretch: str | tuple[float, float] = RGB_STRETCH_DN,
) -> None:
    """Large scenes as in paper Fig. 9: cloudy input, each model's prediction, target (RGB).

    Args:
        scenes: one dict per row: ``"label"`` (str), ``"cloudy"``, ``"target"`` (13, h, w) DN
            and ``"predictions"`` ``{name: (13, h, w) DN}`` (decimated scenes; 0 = nodata,
            drawn black).
        model_names: models to show, in column order.
        path: output PNG.
        stretch: RGB stretch (:func:`rgb_composite`).
    """
    if not scenes:
        raise ValueError("scene_examples_figure needs at least one scene")
    cols = 2 + len(model_names)
    fig, axes = new_figure(len(scenes), cols, size=3.0)
    for r, sc in enumerate(scenes):
        panels = [("cloudy input", sc["cloudy"])]
        panels += [(name, sc["predictions"][name]) for name in model_names]
        panels.append(("cloud-free target", sc["target"]))
        for c, (label, img) in enumerate(panels):
            axes[r, c].imshow(rgb_composite(img, stretch), interpolation="nearest")
            axes[r, c].set_title(label, fontsize=8)
        axes[r, 0].set_ylabel(str(sc.get("label", "")), fontsize=7)
    fig.suptitle("Large test scenes mosaicked from SEN12MS-CR patches (cf. paper Fig. 9); "
                 "RGB = B4, B3, B2", fontsize=9)  # fmt: skip
    save_figure(fig, path)


def scene_spectra_figure(
    scenes: list[dict[str, Any]],
    model_names: list[str],
    path: str | os.PathLike[str],
) -> None:
    """Per-channel nRMSE and the central pixel's spectra of large scenes (paper Fig. 10).

    Markers by band resolution: circles 10 m, triangles 20 m, squares 60 m.

    Args:
        scenes: one dict per row: ``"label"``, ``"band_nrmse"`` ``{name: (13,) percent}`` and
            ``"spectra"`` ``{"input": (13,), "target": (13,), name: (13,)}`` in reflectance,
            with ``"pixel"`` ``(row, col)`` of the pixel.
        model_names: models to show.
        path: output PNG.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if not scenes:
        raise ValueError("scene_spectra_figure needs at least one scene")
    fig, axes = plt.subplots(len(scenes), 2, figsize=(11.0, 3.0 * len(scenes)), squeeze=False)
    x = np.arange(len(S2_BANDS))
    for r, sc in enumerate(scenes):
        ax = axes[r, 0]
        for i, name in enumerate(model_names):
            _band_markers(ax, np.asarray(sc["band_nrmse"][name], np.float64), f"C{i}", name)
        log = _log_scale_if_dominated(ax, [sc["band_nrmse"][n] for n in model_names])
        ax.set_ylabel("nRMSE (%)" + (" (log scale)" if log else ""))
        ax.set_title(f"{sc.get('label', '')}: per-channel nRMSE", fontsize=9)
        ax = axes[r, 1]
        spectra = sc["spectra"]
        _band_markers(ax, np.asarray(spectra["input"], np.float64), "0.55", "cloudy input")
        for i, name in enumerate(model_names):
            _band_markers(ax, np.asarray(spectra[name], np.float64), f"C{i}", name)
        _band_markers(ax, np.asarray(spectra["target"], np.float64), "k", "target")
        row, col = sc.get("pixel", ("?", "?"))
        ax.set_ylabel("TOA reflectance")
        ax.set_title(f"central pixel (row {row}, col {col}): spectra", fontsize=9)
        for a in axes[r]:
            a.set_xticks(x)
            a.set_xticklabels(S2_BANDS, fontsize=7)
            a.grid(alpha=0.3)
        axes[r, 1].legend(fontsize=7, loc="best")
        axes[r, 0].legend(fontsize=7, loc="best")
    marks = [Line2D([], [], marker=m, color="0.3", ls="none", label=f"{res} m")
             for res, m in _RESOLUTION_MARKERS.items()]  # fmt: skip
    fig.legend(handles=marks, loc="upper right", fontsize=8, title="band resolution",
               title_fontsize=8)  # fmt: skip
    fig.suptitle("Large test scenes (cf. paper Fig. 10)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.92, 0.97))
    save_figure(fig, path)


def scene_60m_figure(
    scenes: list[dict[str, Any]],
    model_name: str,
    path: str | os.PathLike[str],
) -> None:
    """The 60 m channels B1, B9 and B10 of large scenes: input, prediction, target (Fig. 12).

    Each band is shown in grey with one stretch per band and scene (the 2nd-98th percentiles of
    the target), the same for its input, prediction and target.

    Args:
        scenes: one dict per scene: ``"label"``, ``"cloudy"``, ``"target"`` (13, h, w) DN and
            ``"predictions"`` ``{model_name: (13, h, w) DN}``.
        model_name: the model whose prediction is shown.
        path: output PNG.
    """
    if not scenes:
        raise ValueError("scene_60m_figure needs at least one scene")
    bands = [S2_BANDS.index(b) for b in ("B1", "B9", "B10")]
    fig, axes = new_figure(len(scenes) * 3, len(bands), size=2.4)
    for s, sc in enumerate(scenes):
        rows = [("input", sc["cloudy"]), (model_name, sc["predictions"][model_name]),
                ("target", sc["target"])]  # fmt: skip
        for c, b in enumerate(bands):
            t = _np(sc["target"])[b].astype(np.float64)
            ok = t[t > 0]
            lo, hi = np.percentile(ok, [2, 98]) if ok.size else (0.0, 1.0)
            for k, (label, img) in enumerate(rows):
                ax = axes[3 * s + k, c]
                ax.imshow(_np(img)[b].astype(np.float64), cmap="gray", vmin=lo,
                          vmax=max(hi, lo + 1.0), interpolation="nearest")  # fmt: skip
                ax.set_title(f"{S2_BANDS[b]} {label}", fontsize=8)
            axes[3 * s, 0].set_ylabel(str(sc.get("label", "")), fontsize=7)
    fig.suptitle("60 m channels B1, B9, B10 of large test scenes (cf. paper Fig. 12)", fontsize=9)
    save_figure(fig, path)
