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

import numpy as np

from dsen2cr.scaling import RGB_BANDS, S1_CLIP_DB

RGB_STRETCH_DN: tuple[float, float] = (0.0, 3000.0)
"""Default fixed stretch for RGB composites, in DN (reflectance 0 to 0.3)."""


def _np(x: object) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        return x.detach().float().cpu().numpy()  # type: ignore[attr-defined]
    return np.asarray(x)


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


def new_figure(rows: int, cols: int, size: float = 2.6) -> tuple[object, np.ndarray]:
    """A matplotlib figure (Agg backend) with a ``rows x cols`` grid of image axes, ticks off."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def save_figure(fig: object, path: object, dpi: int = 110) -> None:
    """Save a figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    from dsen2cr.io import atomic_output

    with atomic_output(path) as tmp:  # type: ignore[arg-type]
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
