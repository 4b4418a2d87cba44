"""Figures (dsen2cr.figures): every panel states its scale, plots label their axes with units,
scene figures have no empty margins, and the stretch captions come from one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dsen2cr import figures
from dsen2cr.data.synthetic import make_scene
from dsen2cr.figures import (
    grey_caption,
    mask_caption,
    rgb_caption,
    rgb_composite,
    rgb_stretch,
    sar_caption,
)
from dsen2cr.scaling import S2_BANDS

UNIT_WORDS = ("reflectance", "dB", "clear")
"""Every image panel's caption names its unit (or, for a mask, its classes)."""


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What each drawing function saved: its figure, laid out, and the renderer measuring it."""
    saved: list[dict[str, Any]] = []
    real = figures.save_figure

    def keep(fig: Any, path: Any, dpi: int = 110) -> None:
        fig.canvas.draw()
        saved.append({"fig": fig, "renderer": fig.canvas.get_renderer()})
        real(fig, path, dpi)

    monkeypatch.setattr(figures.plots, "save_figure", keep)  # where the plots call it
    return saved


def scenes(n: int = 2, h: int = 40, w: int = 64) -> list[dict[str, Any]]:
    """Wide synthetic scenes (DN) with one model's prediction."""
    out = []
    for i in range(n):
        s = make_scene(h, w, seed=i, cloud_cover=0.5)
        out.append({"label": f"ROIs1158_spring_{i}: 60 % cloud/shadow", "cloudy": s["s2_cloudy"],
                    "target": s["s2"], "predictions": {"m": 0.9 * s["s2"]}})  # fmt: skip
    return out


def image_axes(fig: Any) -> list[Any]:
    return [ax for ax in fig.axes if ax.images and not hasattr(ax, "_colorbar")]


def assert_panels_state_their_scale(fig: Any) -> None:
    panels = image_axes(fig)
    assert panels
    for ax in panels:
        caption = ax.get_xlabel()
        assert any(word in caption for word in UNIT_WORDS), (ax.get_title(), caption)
    for ax in fig.axes:
        if hasattr(ax, "_colorbar"):
            assert ax._colorbar.ax.get_ylabel() or ax._colorbar.ax.get_xlabel()


def assert_plots_have_axis_labels(fig: Any) -> None:
    plots = [ax for ax in fig.axes if not ax.images and (ax.lines or ax.patches)]
    assert plots
    for ax in plots:
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()


# --------------------------------------------------------------------------- captions
def test_captions_state_bands_ranges_and_units() -> None:
    assert rgb_caption() == "RGB B4/B3/B2, reflectance 0-0.3"
    assert rgb_caption((123.0, 1870.0), percentile=True) == (
        "RGB B4/B3/B2, reflectance 0.0123-0.187 (2-98 % stretch)"
    )
    assert sar_caption() == "R = 0, G = VH -32.5 to 0 dB, B = VV -25 to 0 dB"
    assert sar_caption("\n").splitlines()[2] == "B = VV -25 to 0 dB"
    assert grey_caption("B1", 512.0, 2130.0) == "B1 reflectance: black 0.0512, white 0.213"
    assert mask_caption() == "black clear, white cloud, blue shadow"
    assert mask_caption(shadow=False) == "black clear, white cloud/shadow"


def test_percentile_stretch_is_the_one_drawn_and_ignores_nodata() -> None:
    img = np.zeros((13, 20, 20), np.float32)
    img[:, :, 10:] = np.linspace(500, 1500, 200, dtype=np.float32).reshape(1, 20, 10)
    lo, hi = rgb_stretch(img, "percentile")
    assert lo == pytest.approx(np.percentile(img[3, :, 10:], 2), rel=1e-3)  # zeros ignored
    assert hi == pytest.approx(np.percentile(img[3, :, 10:], 98), rel=1e-3)
    np.testing.assert_array_equal(rgb_composite(img, "percentile"), rgb_composite(img, (lo, hi)))
    assert rgb_stretch(img) == figures.RGB_STRETCH_DN
    assert rgb_stretch(np.zeros((13, 4, 4)), "percentile") == figures.RGB_STRETCH_DN
    with pytest.raises(ValueError, match="unknown stretch"):
        rgb_stretch(img, "minmax")


# --------------------------------------------------------------------------- figures
@pytest.mark.parametrize("stretch", [figures.RGB_STRETCH_DN, "percentile"])
def test_example_grid_panels_state_their_stretch(tmp_path: Path, drawn: list, stretch) -> None:
    rng = np.random.default_rng(0)
    examples = []
    for i in range(2):
        s = make_scene(32, 32, seed=10 + i, cloud_cover=0.5)
        examples.append({"cloudy": s["s2_cloudy"], "target": s["s2"], "sar": s["s1"],
                         "mask": (rng.random((32, 32)) > 0.6).astype(np.float32),
                         "predictions": {"a": 0.95 * s["s2"]}, "label": f"spring ROI {i} p1"})  # fmt: skip
    figures.example_grid(examples, ["a"], tmp_path / "examples.png", stretch=stretch)
    fig = drawn[0]["fig"]
    assert_panels_state_their_scale(fig)
    captions = {ax.get_title(): ax.get_xlabel() for ax in image_axes(fig)[:4]}
    assert captions["cloudy input"] == rgb_caption(
        rgb_stretch(examples[0]["cloudy"], stretch), percentile=stretch == "percentile"
    )
    assert captions["SAR"] == sar_caption("\n")
    assert "reflectance" in captions["target"] and "reflectance" in captions["a"]


def test_scene_figures_state_scales_and_label_axes(tmp_path: Path, drawn: list) -> None:
    pictures = scenes()
    figures.scene_examples_figure(pictures, ["m"], tmp_path / "ex.png", stretch="percentile")
    figures.scene_60m_figure(pictures[:1], "m", tmp_path / "60m.png")
    rng = np.random.default_rng(1)
    panels = [{"label": "s", "pixel": (3, 4), "band_nrmse": {"m": 10 * rng.random(13)},
               "spectra": {k: rng.random(13) for k in ("input", "target", "m")}}]  # fmt: skip
    figures.scene_spectra_figure(panels, ["m"], tmp_path / "spectra.png")
    figures.band_nrmse_plot({"m": rng.random(13)}, tmp_path / "bands.png")
    figures.training_curves_plot({"m": {"val loss": ([0, 1], [1.0, 0.5])}}, tmp_path / "c.png")
    ex, f60, spectra, bands, curves = (d["fig"] for d in drawn)
    assert_panels_state_their_scale(ex)
    assert_panels_state_their_scale(f60)
    greys = {ax.get_xlabel().split(" ")[0] for ax in image_axes(f60)}
    assert greys == {"B1", "B9", "B10"}
    for fig in (spectra, bands, curves):
        assert_plots_have_axis_labels(fig)
    assert {ax.get_xlabel() for ax in spectra.axes if ax.lines} == {"Sentinel-2 band"}
    assert all("%" in ax.get_ylabel() for ax in spectra.axes[::2])  # nRMSE panels
    assert all(ax.get_xticklabels()[0].get_text() == S2_BANDS[0] for ax in spectra.axes)


@pytest.mark.parametrize("draw", ["scene_60m_figure", "scene_examples_figure"])
def test_scene_figures_have_no_empty_margin(tmp_path: Path, drawn: list, draw: str) -> None:
    """The images fill most of the saved picture (wide scenes left half of it blank before)."""
    pictures = scenes(n=2)
    fn = getattr(figures, draw)
    fn(pictures, "m" if draw == "scene_60m_figure" else ["m"], tmp_path / "f.png")
    fig, renderer = drawn[0]["fig"], drawn[0]["renderer"]
    tight = fig.get_tightbbox(renderer)  # inches, what save_figure keeps
    area = sum(ax.get_window_extent(renderer).width * ax.get_window_extent(renderer).height
               for ax in image_axes(fig)) / fig.dpi**2  # fmt: skip
    assert area / (tight.width * tight.height) > 0.5
