"""Figure building blocks: captions, composites, image panels and figure files.

Composites follow the paper's conventions (Fig. 1): see :mod:`dsen2cr.figures`. Every image
panel states its scale in one way, made here (:func:`rgb_caption`, :func:`sar_caption`,
:func:`grey_caption`, :func:`mask_caption`); :func:`image_panel` draws a panel with its caption.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias, TypedDict

import numpy as np

from dsen2cr.io import atomic_output
from dsen2cr.scaling import (
    REFLECTANCE_SCALE,
    RGB_BANDS,
    S1_BANDS,
    S1_CLIP_DB,
    S2_BANDS,
    as_numpy,
    is_tensor,
)

if TYPE_CHECKING:  # matplotlib and torch are imported only where they are used
    import torch
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage
    from typing_extensions import Unpack

Image: TypeAlias = "np.ndarray | torch.Tensor"
"""An image given to a figure: a numpy array or a torch tensor, bands first."""


class ImshowOptions(TypedDict, total=False):
    """The ``imshow`` options :func:`image_panel` passes on."""

    cmap: str | Colormap
    vmin: float
    vmax: float
    interpolation: str


RGB_STRETCH_DN: tuple[float, float] = (0.0, 3000.0)
"""Default fixed stretch for RGB composites, in DN (reflectance 0 to 0.3)."""
PERCENTILES: tuple[float, float] = (2.0, 98.0)
"""Percentiles of the ``"percentile"`` stretch (RGB) and of the grey stretch of single bands."""
CAPTION_SIZE = 6
"""Font size of the scale caption under an image panel."""


def image_array(x: object) -> np.ndarray:
    """A numpy array of an image given as an array or a tensor (tensors as float32)."""
    if is_tensor(x):
        x = x.float()
    return as_numpy(x)


# --------------------------------------------------------------------------- captions
def format_number(v: float) -> str:
    """A stretch limit for a caption: three significant digits, no trailing zeros."""
    return "0" if v == 0 else f"{float(v):.3g}"


def _span(lo: float, hi: float) -> str:
    """``0-0.3``, or ``-25 to 0`` when a limit is negative (a dash would read as a minus)."""
    return f"{format_number(lo)} to {format_number(hi)}" if min(lo, hi) < 0 else f"{format_number(lo)}-{format_number(hi)}"


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
        text += f" ({format_number(PERCENTILES[0])}-{format_number(PERCENTILES[1])} % stretch)"
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
    return f"{band} reflectance: black {format_number(lo)}, white {format_number(hi)}"


def mask_caption(shadow: bool = True) -> str:
    """The caption of a mask picture (:func:`mask_composite`).

    Args:
        shadow: the mask tells shadow (-1, blue) from cloud (1, white); False for a binary
            cloud-or-shadow mask.

    Returns:
        ``"black clear, white cloud, blue shadow"`` or ``"black clear, white cloud/shadow"``.
    """
    return "black clear, white cloud, blue shadow" if shadow else "black clear, white cloud/shadow"


def image_panel(
    ax: Axes, img: np.ndarray, title: str, caption: str, **kwargs: Unpack[ImshowOptions]
) -> AxesImage:
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
    img = image_array(s2_dn)
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
    img = image_array(s2_dn).astype(np.float32)
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
    img = image_array(s1_db).astype(np.float32)
    (vv_lo, vv_hi), (vh_lo, vh_hi) = S1_CLIP_DB
    vv = np.clip((img[0] - vv_lo) / (vv_hi - vv_lo), 0, 1)
    vh = np.clip((img[1] - vh_lo) / (vh_hi - vh_lo), 0, 1)
    out = np.stack([np.zeros_like(vv), vh, vv], axis=-1)
    pic: np.ndarray = np.nan_to_num(out).astype(np.float32)
    return pic


def mask_composite(mask: object) -> np.ndarray:
    """Colour picture of a cloud/shadow mask: clear black, cloud white, shadow blue.

    Args:
        mask: (H, W) or (1, H, W) values {-1 shadow, 0 clear, 1 cloud} (a binary {0, 1}
            cloud-or-shadow mask shows as black/white).

    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    m = image_array(mask)
    m = m.reshape(m.shape[-2:])
    out = np.zeros((*m.shape, 3), np.float32)
    out[m > 0] = 1.0
    out[m < 0] = (0.15, 0.35, 1.0)
    return out


def new_figure(rows: int, cols: int, size: float = 2.6) -> tuple[Figure, np.ndarray]:
    """A matplotlib figure (Agg backend) with a ``rows x cols`` grid of image axes, ticks off."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 110) -> None:
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
