"""The plots reports are made of: per-band nRMSE, example grids, training curves and the
figures of large scenes (paper Figs. 6-12), built from :mod:`dsen2cr.figures.panels`. Every plot
has axis labels with units; every image panel its stretch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypedDict, cast

import numpy as np

from dsen2cr.figures.panels import (
    PERCENTILES,
    RGB_STRETCH_DN,
    Image,
    format_number,
    grey_caption,
    image_array,
    image_panel,
    mask_caption,
    mask_composite,
    rgb_caption,
    rgb_composite,
    rgb_stretch,
    sar_caption,
    sar_composite,
    save_figure,
)
from dsen2cr.scaling import (
    REFLECTANCE_SCALE,
    S2_BANDS,
    S2_RESOLUTION_M,
)

if TYPE_CHECKING:  # matplotlib and torch are imported only where they are used
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.ticker import MaxNLocator



class _Labelled(TypedDict, total=False):
    label: str
    """A row label (optional)."""


class ExampleImages(_Labelled):
    """One row of :func:`example_grid`.

    Keys: ``cloudy`` and ``target`` (13, H, W) DN, ``sar`` (2, H, W) dB, ``mask`` (H, W)
    {0 clear, 1 cloud or shadow}, ``predictions`` ``{model name: (13, H, W) DN}`` and an optional
    ``label``.
    """

    cloudy: Image
    target: Image
    sar: Image
    mask: Image
    predictions: Mapping[str, Image]


class ScenePictures(_Labelled):
    """One scene of :func:`scene_examples_figure` and :func:`scene_60m_figure`.

    Keys: ``cloudy`` and ``target`` (13, h, w) DN, ``predictions`` ``{model name: (13, h, w)
    DN}`` (decimated scenes; 0 = nodata) and an optional ``label``.
    """

    cloudy: Image
    target: Image
    predictions: Mapping[str, Image]


class _PixelLabelled(_Labelled, total=False):
    pixel: tuple[int, int]
    """(row, col) of the pixel whose spectra are drawn (optional)."""


class SceneSpectraPanel(_PixelLabelled):
    """One scene of :func:`scene_spectra_figure`.

    Keys: ``band_nrmse`` ``{model name: (13,) percent}``, ``spectra`` ``{"input": (13,),
    "target": (13,), model name: (13,)}`` in reflectance, and optional ``label`` and ``pixel``
    ``(row, col)`` of the pixel whose spectra these are.
    """

    band_nrmse: Mapping[str, Sequence[float] | np.ndarray]
    spectra: Mapping[str, Sequence[float] | np.ndarray]


# --------------------------------------------------------------------------- report plots
NRMSE_LABEL = "nRMSE (%) = 100 RMSE / target band range"
"""The axis label of per-band nRMSE (:func:`dsen2cr.metrics.band_nrmse`)."""


def _plot_axes(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure (Agg backend) with one ordinary plot axes (ticks on)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    return fig, ax


def _log_scale_if_dominated(ax: Axes, series: list[object]) -> bool:
    """Put the y axis on a log scale when one value dwarfs the rest (max > 10 x median).

    One band with a tiny target range (B10 over clear land, say) can have an nRMSE ten times
    the others' and flatten them into the axis. Returns whether the scale is logarithmic.
    """
    allv = np.concatenate([image_array(v).astype(np.float64).reshape(-1) for v in series])
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
        values = image_array(nrmse[name]).astype(np.float64).reshape(-1)
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
    h, w = image_array(image).shape[-2:]
    aspect: float = h / max(w, 1)
    return aspect


def _image_axes(parent: Figure | SubFigure, aspects: Sequence[float], cols: int) -> np.ndarray:
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
) -> tuple[Figure, np.ndarray]:
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
    ax: Axes, s2_dn: object, title: str, stretch: str | tuple[float, float] = RGB_STRETCH_DN
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
    examples: Sequence[Mapping[str, object]],
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
        examples: one dict per row (:class:`ExampleImages`) with ``"cloudy"``, ``"target"``
            (13, H, W) DN, ``"sar"`` (2, H, W) dB, ``"mask"`` (H, W) {0 clear, 1 cloud or
            shadow}, ``"predictions"`` ``{name: (13, H, W) DN}`` and an optional ``"label"``
            (str).
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
        _example_row(fig, axes[r], cast(ExampleImages, ex), model_names, stretch)
    fig.suptitle(
        title or "Test patches: RGB = B4, B3, B2 (stretch under each panel); reproduction error "
        "|prediction - cloudy| on clear pixels, mean over the 13 bands",
        fontsize=9,
    )
    save_figure(fig, path)


def _example_row(
    fig: Figure,
    axes: np.ndarray,
    ex: ExampleImages,
    model_names: list[str],
    stretch: str | tuple[float, float],
) -> None:
    """One row of :func:`example_grid`."""
    import matplotlib

    mask = image_array(ex["mask"]).reshape(image_array(ex["mask"]).shape[-2:]) > 0
    cloudy = image_array(ex["cloudy"]).astype(np.float32)
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
        err = np.abs(image_array(preds[name]).astype(np.float32) - cloudy).mean(axis=0) / REFLECTANCE_SCALE
        errors.append(np.ma.masked_array(err, mask=mask))
    clear = [e.compressed() for e in errors if e.count()]
    vmax = max(float(np.percentile(np.concatenate(clear), 99)) if clear else 0.01, 1e-4)
    cmap = matplotlib.colormaps["magma"].with_extremes(bad=ERROR_MASKED_COLOUR)
    im = None
    for j, (name, err) in enumerate(zip(model_names, errors, strict=True)):
        im = image_panel(axes[k + 1 + j], err, f"reprod. error\n{name}",
                         f"reflectance 0-{format_number(vmax)}\ngrey: cloud/shadow",
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
    cast("MaxNLocator", ax.xaxis.get_major_locator()).set_params(integer=True)
    save_figure(fig, path)


# --------------------------------------------------------------------------- large scenes
_RESOLUTION_MARKERS = {10: "o", 20: "^", 60: "s"}
"""Marker of each band resolution in metres (paper Fig. 10): circle, triangle, square."""


def _band_markers(ax: Axes, values: np.ndarray, colour: str, label: str) -> None:
    """One line over the 13 bands with markers by band resolution."""
    x = np.arange(len(S2_BANDS))
    ax.plot(x, values, "-", color=colour, lw=1.2, label=label)
    for res, marker in _RESOLUTION_MARKERS.items():
        idx = [i for i, b in enumerate(S2_BANDS) if S2_RESOLUTION_M[b] == res]
        ax.plot(idx, values[idx], marker, color=colour, ms=5, ls="none")


def scene_examples_figure(
    scenes: Sequence[Mapping[str, object]],
    model_names: list[str],
    path: str | os.PathLike[str],
    stretch: str | tuple[float, float] = RGB_STRETCH_DN,
) -> None:
    """Large scenes as in paper Fig. 9: cloudy input, each model's prediction, target (RGB).

    Every panel states its stretch below it; each row is as tall as its scene.

    Args:
        scenes: one dict per row (:class:`ScenePictures`): ``"label"`` (str), ``"cloudy"``,
            ``"target"`` (13, h, w) DN and ``"predictions"`` ``{name: (13, h, w) DN}``
            (decimated scenes; 0 = nodata, drawn black).
        model_names: models to show, in column order.
        path: output PNG.
        stretch: RGB stretch (:func:`rgb_composite`).
    """
    if not scenes:
        raise ValueError("scene_examples_figure needs at least one scene")
    cols = 2 + len(model_names)
    fig, axes = _image_grid([_aspect(sc["target"]) for sc in scenes], cols, panel_width=3.0,
                            extra_width=0.4)  # fmt: skip
    for r, sc in enumerate(cast("Sequence[ScenePictures]", scenes)):
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
    scenes: Sequence[Mapping[str, object]],
    model_names: list[str],
    path: str | os.PathLike[str],
) -> None:
    """Per-channel nRMSE and the central pixel's spectra of large scenes (paper Fig. 10).

    Markers by band resolution: circles 10 m, triangles 20 m, squares 60 m.

    Args:
        scenes: one dict per row (:class:`SceneSpectraPanel`): ``"label"``, ``"band_nrmse"``
            ``{name: (13,) percent}`` and ``"spectra"`` ``{"input": (13,), "target": (13,),
            name: (13,)}`` in reflectance, with ``"pixel"`` ``(row, col)`` of the pixel.
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
    for r, sc in enumerate(cast("Sequence[SceneSpectraPanel]", scenes)):
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
    scenes: Sequence[Mapping[str, object]],
    model_name: str,
    path: str | os.PathLike[str],
) -> None:
    """The 60 m channels B1, B9 and B10 of large scenes: input, prediction, target (Fig. 12).

    One block per scene, one row per band: cloudy input, prediction, target in grey with one
    stretch per band and scene (the 2nd-98th percentiles of the target's reflectance), stated
    under every panel and by the row's colour bar. The rows are as tall as the scene.

    Args:
        scenes: one dict per scene (:class:`ScenePictures`): ``"label"``, ``"cloudy"``,
            ``"target"`` (13, h, w) DN and ``"predictions"`` ``{model_name: (13, h, w) DN}``.
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
    for sub, sc in zip(subfigs, cast("Sequence[ScenePictures]", scenes), strict=True):
        sub.suptitle(str(sc.get("label", "")), fontsize=8)
        axes = _image_axes(sub, [_aspect(sc["target"])] * n, 3)
        panels = [("cloudy input", sc["cloudy"]), (model_name, sc["predictions"][model_name]),
                  ("target", sc["target"])]  # fmt: skip
        for r, band in enumerate(SCENE_60M_BANDS):
            b = S2_BANDS.index(band)
            lo, hi = _grey_stretch(image_array(sc["target"])[b].astype(np.float64))
            ims = []
            for c, (label, img) in enumerate(panels):
                refl = image_array(img)[b].astype(np.float64) / REFLECTANCE_SCALE
                ims.append(image_panel(axes[r, c], refl, f"{band} {label}",
                                       grey_caption(band, lo, hi), cmap="gray",
                                       vmin=lo / REFLECTANCE_SCALE,
                                       vmax=hi / REFLECTANCE_SCALE))  # fmt: skip
            cb = sub.colorbar(ims[-1], ax=list(axes[r]), fraction=0.04, pad=0.02)
            cb.set_label(f"{band} reflectance", fontsize=7)
            cb.ax.tick_params(labelsize=6)
            axes[r, 0].set_ylabel(f"{band} ({S2_RESOLUTION_M[band]} m)", fontsize=7)
    fig.suptitle("60 m channels B1, B9, B10 of large test scenes (cf. paper Fig. 12); grey: "
                 "2nd-98th percentile of the target per band and scene", fontsize=9)  # fmt: skip
    save_figure(fig, path)
