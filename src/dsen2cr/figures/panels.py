"""Figures: composites for looking at Sentinel data, and the plots reports are made of.

Composites follow the paper's conventions (Fig. 1):

* optical: true-colour RGB from B4, B3, B2, linearly stretched; the default stretch maps
  reflectance [0, 0.3] (DN [0, 3000]) to [0, 1] and clips, the same fixed stretch for every image
  so that pictures compare; ``stretch="percentile"`` maps the 2nd-98th percentiles of the
  image's pixels with data instead.
* SAR: R = 0, G = VH, B = VV, each dB band clipped to its DSen2-CR range and scaled to [0, 1].
* mask: clear = black, cloud = white, shadow = blue.

Every image panel states its scale in one way, made here (:func:`rgb_caption`,
:func:`sar_caption`, :func:`grey_caption`, :func:`mask_caption`): the reflectance range of an
RGB stretch (its values, also for a percentile stretch), the dB range of each SAR channel, the
reflectance drawn black and white in a grey panel; :func:`image_panel` and :func:`rgb_panel`
draw a panel with its caption under it. Every plot has axis labels with units.

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
    S1_BANDS,
    S1_CLIP_DB,
    S2_BANDS,
    S2_RESOLUTION_M,
    as_numpy,
    is_tensor,
)

RGB_STRETCH_DN: tuple[float, float] = (0.0, 3000.0)
"""Default fixed stretch for RGB composites, in DN (reflectance 0 to 0.3)."""
PERCENTILES: tuple[float, float] = (2.0, 98.0)
"""Percentiles of the ``"percentile"`` stretch (RGB) and of the grey stretch of single bands."""
CAPTION_SIZE = 6
"""Font size of the scale caption under an image panel."""


def _np(x: Any) -> np.ndarray:
    if is_tensor(x):
        x = x.float()
    return as_numpy(x)


# --------------------------------------------------------------------------- captions
def _num(v: float) -> str:
    """A stretch limit for a caption: three significant digits, no trailing zeros."""
    return "0" if v == 0 else f"{float(v):.3g}"


def _span(lo: float, hi: float) -> str:
    """``0-0.3``, or ``-25 to 0`` when a limit is negative (a dash would read as a minus)."""
    return f"{_num(lo)} to {_num(hi)}" if min(lo, hi) < 0 else f"{_num(lo)}-{_num(hi)}"


def rgb_caption(stretch_dn: tuple[float, float] = RGB_STRETCH_DN, percentile: bool = False) -> str:
    """The caption of an RGB composite: bands and the reflectance range of its stretch.

    Args:
        stretch_dn: the ``(lo, hi)`` DN actually mapped to black and full intensity (for a
            percentile stretch the values :func:`rgb_stretch` found for that image).
        percentile: whether the range is the image's own percentile stretch (said so).

    Returns:
        e.g. ``"RGB B4/B3/B2, reflectance 0-0.3"`` or
        ``"RGB B4/B3/B2, reflectance 0.0123-0.187 (2-98 % stretch)"``.
    """
    bands = "/".join(S2_BANDS[b] for b in RGB_BANDS)
    lo, hi = (v / REFLECTANCE_SCALE for v in stretch_dn)
    text = f"RGB {bands}, reflectance {_span(lo, hi)}"
    if percentile:
        text += f" ({_num(PERCENTILES[0])}-{_num(PERCENTILES[1])} % stretch)"
    return text


def sar_caption(sep: str = ", ") -> str:
    """The caption of a SAR composite (:func:`sar_composite`): channels and their dB ranges.

    Args:
        sep: separator between the channels (``"\\n"`` for a narrow panel).

    Returns:
        ``"R = 0, G = VH -32.5 to 0 dB, B = VV -25 to 0 dB"`` (from ``S1_CLIP_DB``).
    """
    clip = dict(zip(S1_BANDS, S1_CLIP_DB, strict=True))
    return sep.join(["R = 0", f"G = VH {_span(*clip['VH'])} dB", f"B = VV {_span(*clip['VV'])} dB"])


def grey_caption(band: str, lo_dn: float, hi_dn: float) -> str:
    """The caption of one band drawn in grey: the reflectance drawn black and white.

    Args:
        band: the band's name (``"B1"``).
        lo_dn: DN drawn black (and everything below it).
        hi_dn: DN drawn white (and everything above it).

    Returns:
        e.g. ``"B1 reflectance: black 0.0512, white 0.213"``.
    """
    lo, hi = lo_dn / REFLECTANCE_SCALE, hi_dn / REFLECTANCE_SCALE
    return f"{band} reflectance: black {_num(lo)}, white {_num(hi)}"


def mask_caption(shadow: bool = True) -> str:
    """The caption of a mask picture (:func:`mask_composite`).

    Args:
        shadow: the mask tells shadow (-1, blue) from cloud (1, white); False for a binary
            cloud-or-shadow mask.

    Returns:
        ``"black clear, white cloud, blue shadow"`` or ``"black clear, white cloud/shadow"``.
    """
    return "black clear, white cloud, blue shadow" if shadow else "black clear, white cloud/shadow"


def image_panel(ax: Any, img: np.ndarray, title: str, caption: str, **kwargs: Any) -> Any:
    """Draw one image panel: the image, its title above and its scale caption below.

    Args:
        ax: a matplotlib axes (ticks off, e.g. from :func:`new_figure`).
        img: (H, W, 3) picture in [0, 1] or (H, W) values for a colour map.
        title: what the panel shows.
        caption: its scale (:func:`rgb_caption`, :func:`sar_caption`, :func:`grey_caption`,
            :func:`mask_caption`), drawn small under the image.
        **kwargs: passed to ``imshow`` (``cmap``, ``vmin``, ``vmax``, ``interpolation``).

    Returns:
        The ``AxesImage`` (for a colour bar).
    """
    kwargs.setdefault("interpolation", "nearest")
    im = ax.imshow(img, **kwargs)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(caption, fontsize=CAPTION_SIZE)
    return im


# --------------------------------------------------------------------------- composites
def rgb_stretch(
    s2_dn: object,
    stretch: str | tuple[float, float] = RGB_STRETCH_DN,
) -> tuple[float, float]:
    """The DN range an RGB composite of this image maps to [0, 1] (see :func:`rgb_composite`).

    Args:
        s2_dn: (13, H, W) image in DN.
        stretch: ``(lo, hi)`` in DN (returned as is), or ``"percentile"``: the 2nd and 98th
            percentiles of B4, B3, B2 over the pixels with data (finite, not all 0 = nodata).

    Returns:
        ``(lo, hi)`` in DN.
    """
    if not isinstance(stretch, str):
        return float(stretch[0]), float(stretch[1])
    if stretch != "percentile":
        raise ValueError(f"unknown stretch {stretch!r}")
    img = _np(s2_dn)
    rgb = np.stack([img[b] for b in RGB_BANDS], axis=-1).astype(np.float64)
    valid = np.isfinite(rgb).all(axis=-1) & (rgb != 0).any(axis=-1)
    if not valid.any():
        return RGB_STRETCH_DN
    lo, hi = np.percentile(rgb[valid], PERCENTILES)
    return float(lo), float(hi)


def rgb_composite(
    s2_dn: object,
    stretch: str | tuple[float, float] = RGB_STRETCH_DN,
) -> np.ndarray:
    """True-colour composite of a 13-band Sentinel-2 image.

    Args:
        s2_dn: (13, H, W) image in DN (multiply scaled values by 2000 first).
        stretch: ``(lo, hi)`` in DN mapped linearly to [0, 1] (default 0-3000), or
            ``"percentile"`` for a per-image 2-98 % stretch over the three bands
            (:func:`rgb_stretch` gives the values, :func:`rgb_caption` the caption).

    Returns:
        (H, W, 3) float32 RGB in [0, 1].
    """
    img = _np(s2_dn).astype(np.float32)
    rgb = np.stack([img[b] for b in RGB_BANDS], axis=-1)
    lo, hi = rgb_stretch(img, stretch)
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
NRMSE_LABEL = "nRMSE (%) = 100 RMSE / target band range"
"""The axis label of per-band nRMSE (:func:`dsen2cr.metrics.band_nrmse`)."""


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
    ax.set_ylabel(NRMSE_LABEL + (", log scale" if log else ""))
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


# --------------------------------------------------------------------------- image grids
ERROR_MASKED_COLOUR = "0.6"
"""Colour of the cloud/shadow pixels in the reproduction-error maps (mid grey: magma has no
grey, while its low end is black and would pass for zero error)."""


def _aspect(image: object) -> float:
    """Height / width of a (..., H, W) image."""
    h, w = _np(image).shape[-2:]
    return h / max(w, 1)


def _image_axes(parent: Any, aspects: Sequence[float], cols: int) -> np.ndarray:
    """``len(aspects) x cols`` image axes in a figure or subfigure, each row as tall as its
    images (``aspect`` = height / width), ticks off."""
    axes = parent.subplots(len(aspects), cols, squeeze=False,
                           gridspec_kw={"height_ratios": list(aspects)})  # fmt: skip
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def _image_grid(
    aspects: Sequence[float], cols: int, panel_width: float, extra_width: float = 0.0
) -> tuple[Any, np.ndarray]:
    """A constrained-layout figure (Agg backend) of image rows fitted to their aspect ratios.

    Each row gets ``panel_width * aspect`` inches for its images plus room for a title and a
    two-line caption, so that no empty band is left between the rows; ``extra_width`` inches
    are added for row labels and colour bars.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    height = sum(panel_width * a + 0.55 for a in aspects) + 0.4
    fig = plt.figure(figsize=(panel_width * cols + extra_width, height), layout="constrained")
    return fig, _image_axes(fig, aspects, cols)


def rgb_panel(
    ax: Any, s2_dn: object, title: str, stretch: str | tuple[float, float] = RGB_STRETCH_DN
) -> None:
    """Draw an RGB composite panel captioned with the reflectance range of its stretch.

    Args:
        ax: a matplotlib axes.
        s2_dn: (13, H, W) image in DN (0 = nodata, drawn black by the default stretch).
        title: what the panel shows.
        stretch: as for :func:`rgb_composite`; a percentile stretch is captioned with the
            values found for this image.
    """
    lo_hi = rgb_stretch(s2_dn, stretch)
    caption = rgb_caption(lo_hi, percentile=isinstance(stretch, str))
    image_panel(ax, rgb_composite(s2_dn, lo_hi), title, caption)


def _two_lines(label: str) -> str:
    """``"scene: 91 % cloud"`` -> ``"scene\\n91 % cloud"`` (a row label fits beside a row)."""
    return label.replace(": ", "\n", 1)


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
    ``|prediction - cloudy|`` in reflectance on clear pixels; cloud/shadow pixels drawn grey),
    with one reflectance colour bar per row. Every panel states its scale below it.

    Args:
        examples: one dict per row with ``"cloudy"``, ``"target"`` (13, H, W) DN, ``"sar"``
            (2, H, W) dB, ``"mask"`` (H, W) {0 clear, 1 cloud or shadow},
            ``"predictions"`` ``{name: (13, H, W) DN}`` and an optional ``"label"`` (str).
        model_names: models to show, in column order (keys of ``predictions``).
        path: output PNG.
        stretch: RGB stretch passed to :func:`rgb_composite` (stated under each panel).
        title: figure title; by default one saying what the columns show.
    """
    if not examples:
        raise ValueError("example_grid needs at least one example")
    cols = 3 + 2 * len(model_names) + 1
    fig, axes = _image_grid([_aspect(ex["target"]) for ex in examples], cols, panel_width=2.1,
                            extra_width=0.9)  # fmt: skip
    for r, ex in enumerate(examples):
        _example_row(fig, axes[r], ex, model_names, stretch)
    fig.suptitle(
        title or "Test patches: RGB = B4, B3, B2 (stretch under each panel); reproduction error "
        "|prediction - cloudy| on clear pixels, mean over the 13 bands",
        fontsize=9,
    )
    save_figure(fig, path)


def _example_row(
    fig: Any,
    axes: np.ndarray,
    ex: dict[str, Any],
    model_names: list[str],
    stretch: str | tuple[float, float],
) -> None:
    """One row of :func:`example_grid`."""
    import matplotlib

    mask = _np(ex["mask"]).reshape(_np(ex["mask"]).shape[-2:]) > 0
    cloudy = _np(ex["cloudy"]).astype(np.float32)
    preds = ex["predictions"]
    rgb_panel(axes[0], cloudy, "cloudy input", stretch)
    image_panel(axes[1], sar_composite(ex["sar"]), "SAR", sar_caption("\n"))
    rgb_panel(axes[2], ex["target"], "target", stretch)
    for j, name in enumerate(model_names):
        rgb_panel(axes[3 + j], preds[name], name, stretch)
    k = 3 + len(model_names)
    cover = f"mask ({100 * mask.mean():.0f} % cloud/shadow)"
    image_panel(axes[k], mask_composite(mask), cover, mask_caption(shadow=False))
    errors = []
    for name in model_names:
        err = np.abs(_np(preds[name]).astype(np.float32) - cloudy).mean(axis=0) / REFLECTANCE_SCALE
        errors.append(np.ma.masked_array(err, mask=mask))
    clear = [e.compressed() for e in errors if e.count()]
    vmax = max(float(np.percentile(np.concatenate(clear), 99)) if clear else 0.01, 1e-4)
    cmap = matplotlib.colormaps["magma"].with_extremes(bad=ERROR_MASKED_COLOUR)
    im = None
    for j, (name, err) in enumerate(zip(model_names, errors, strict=True)):
        im = image_panel(axes[k + 1 + j], err, f"reprod. error\n{name}",
                         f"reflectance 0-{_num(vmax)}\ngrey: cloud/shadow",
                         cmap=cmap, vmin=0.0, vmax=vmax)  # fmt: skip
    if im is not None:
        cb = fig.colorbar(im, ax=list(axes[k + 1 :]), fraction=0.05, pad=0.02)
        cb.set_label("|pred - cloudy| (reflectance)", fontsize=7)
        cb.ax.tick_params(labelsize=7)
    if ex.get("label"):
        axes[0].set_ylabel(_two_lines(str(ex["label"])), fontsize=7)


# --------------------------------------------------------------------------- training
LOSS_LABEL = "loss (scaled domain: DN / 2000 = 5 x reflectance)"
"""The y label of training curves of DSen2-CR (the loss is taken on the network's scaled values)."""


def training_curves_plot(
    curves: dict[str, dict[str, tuple[list[int], list[float]]]],
    path: str | os.PathLike[str],
    title: str = "Training curves",
    ylabel: str = LOSS_LABEL,
) -> None:
    """Loss per epoch of one or more training runs.

    Args:
        curves: ``{run name: {series name: (epochs, values)}}``, e.g. series ``"train_loss"`` and
            ``"val_loss"`` (values in the loss's scaled domain).
        path: output PNG.
        title: figure title.
        ylabel: the y label, with the loss's unit (default: DSen2-CR's scaled domain).
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
    ax.set_ylabel(ylabel)
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

    Every panel states its stretch below it; each row is as tall as its scene.

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
    fig, axes = _image_grid([_aspect(sc["target"]) for sc in scenes], cols, panel_width=3.0,
                            extra_width=0.4)  # fmt: skip
    for r, sc in enumerate(scenes):
        panels = [("cloudy input", sc["cloudy"])]
        panels += [(name, sc["predictions"][name]) for name in model_names]
        panels.append(("cloud-free target", sc["target"]))
        for c, (label, img) in enumerate(panels):
            rgb_panel(axes[r, c], img, label, stretch)
        axes[r, 0].set_ylabel(_two_lines(str(sc.get("label", ""))), fontsize=7)
    fig.suptitle("Large test scenes mosaicked from SEN12MS-CR patches (cf. paper Fig. 9); "
                 "RGB = B4, B3, B2, stretch under each panel; nodata black", fontsize=9)  # fmt: skip
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
    fig, axes = plt.subplots(len(scenes), 2, figsize=(11.0, 3.3 * len(scenes)), squeeze=False)
    x = np.arange(len(S2_BANDS))
    for r, sc in enumerate(scenes):
        ax = axes[r, 0]
        for i, name in enumerate(model_names):
            _band_markers(ax, np.asarray(sc["band_nrmse"][name], np.float64), f"C{i}", name)
        log = _log_scale_if_dominated(ax, [sc["band_nrmse"][n] for n in model_names])
        ax.set_ylabel(NRMSE_LABEL + (", log scale" if log else ""), fontsize=8)
        ax.set_title(f"{sc.get('label', '')}: per-channel nRMSE", fontsize=9)
        ax = axes[r, 1]
        spectra = sc["spectra"]
        _band_markers(ax, np.asarray(spectra["input"], np.float64), "0.55", "cloudy input")
        for i, name in enumerate(model_names):
            _band_markers(ax, np.asarray(spectra[name], np.float64), f"C{i}", name)
        _band_markers(ax, np.asarray(spectra["target"], np.float64), "k", "target")
        row, col = sc.get("pixel", ("?", "?"))
        ax.set_ylabel("TOA reflectance (DN / 10000)", fontsize=8)
        ax.set_title(f"central pixel (row {row}, col {col}): spectra", fontsize=9)
        for a in axes[r]:
            a.set_xticks(x)
            a.set_xticklabels(S2_BANDS, fontsize=7)
            a.set_xlabel("Sentinel-2 band", fontsize=8)
            a.grid(alpha=0.3)
            a.legend(fontsize=7, loc="best")
    marks = [Line2D([], [], marker=m, color="0.3", ls="none", label=f"{res} m")
             for res, m in _RESOLUTION_MARKERS.items()]  # fmt: skip
    fig.legend(handles=marks, loc="upper right", fontsize=8, title="band resolution",
               title_fontsize=8)  # fmt: skip
    fig.suptitle("Large test scenes (cf. paper Fig. 10)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.92, 0.97))
    save_figure(fig, path)


SCENE_60M_BANDS: tuple[str, ...] = ("B1", "B9", "B10")
"""The 60 m channels of paper Fig. 12."""


def _grey_stretch(band_dn: np.ndarray) -> tuple[float, float]:
    """The DN drawn black and white for one band: its percentiles over the pixels with data."""
    ok = band_dn[np.isfinite(band_dn) & (band_dn > 0)]
    lo, hi = np.percentile(ok, PERCENTILES) if ok.size else (0.0, 1.0)
    return float(lo), max(float(hi), float(lo) + 1.0)


def scene_60m_figure(
    scenes: list[dict[str, Any]],
    model_name: str,
    path: str | os.PathLike[str],
) -> None:
    """The 60 m channels B1, B9 and B10 of large scenes: input, prediction, target (Fig. 12).

    One block per scene, one row per band: cloudy input, prediction, target in grey with one
    stretch per band and scene (the 2nd-98th percentiles of the target's reflectance), stated
    under every panel and by the row's colour bar. The rows are as tall as the scene.

    Args:
        scenes: one dict per scene: ``"label"``, ``"cloudy"``, ``"target"`` (13, h, w) DN and
            ``"predictions"`` ``{model_name: (13, h, w) DN}``.
        model_name: the model whose prediction is shown.
        path: output PNG.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    if not scenes:
        raise ValueError("scene_60m_figure needs at least one scene")
    width, n = 2.2, len(SCENE_60M_BANDS)
    heights = [n * (width * _aspect(sc["target"]) + 0.55) + 0.35 for sc in scenes]
    fig = plt.figure(figsize=(3 * width + 1.3, sum(heights) + 0.3), layout="constrained")
    subfigs = fig.subfigures(len(scenes), 1, squeeze=False, height_ratios=heights).ravel()
    for sub, sc in zip(subfigs, scenes, strict=True):
        sub.suptitle(str(sc.get("label", "")), fontsize=8)
        axes = _image_axes(sub, [_aspect(sc["target"])] * n, 3)
        panels = [("cloudy input", sc["cloudy"]), (model_name, sc["predictions"][model_name]),
                  ("target", sc["target"])]  # fmt: skip
        for r, band in enumerate(SCENE_60M_BANDS):
            b = S2_BANDS.index(band)
            lo, hi = _grey_stretch(_np(sc["target"])[b].astype(np.float64))
            im = None
            for c, (label, img) in enumerate(panels):
                refl = _np(img)[b].astype(np.float64) / REFLECTANCE_SCALE
                im = image_panel(axes[r, c], refl, f"{band} {label}", grey_caption(band, lo, hi),
                                 cmap="gray", vmin=lo / REFLECTANCE_SCALE,
                                 vmax=hi / REFLECTANCE_SCALE)  # fmt: skip
            cb = sub.colorbar(im, ax=list(axes[r]), fraction=0.04, pad=0.02)
            cb.set_label(f"{band} reflectance", fontsize=7)
            cb.ax.tick_params(labelsize=6)
            axes[r, 0].set_ylabel(f"{band} ({S2_RESOLUTION_M[band]} m)", fontsize=7)
    fig.suptitle("60 m channels B1, B9, B10 of large test scenes (cf. paper Fig. 12); grey: "
                 "2nd-98th percentile of the target per band and scene", fontsize=9)  # fmt: skip
    save_figure(fig, path)
