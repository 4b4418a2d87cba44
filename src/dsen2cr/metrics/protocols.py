"""Declared metric protocols: the conventions behind a published SEN12MS-CR table.

Papers that report MAE, RMSE, PSNR, SAM and SSIM on SEN12MS-CR computed them with different
conventions (what is cropped and clipped, what PSNR is for a perfect image, how SSIM pads its
window, what SAM does with an all-zero spectrum, how images are averaged), so numbers from
different papers are not comparable unless the conventions are the same. A :class:`Protocol`
states every such choice; :func:`dsen2cr.metrics.image_metrics`, ``dsen2cr evaluate --protocol``
and the table writers take one by name, and tables refuse to mix results of different protocols.

Protocols (``dsen2cr evaluate --list-protocols`` prints them):

* ``dsen2cr`` (default) - this package's conventions, closest to the DSen2-CR paper: whole
  patch, no clipping, SSIM only where the window fits inside the image, undefined values left
  out of the means.
* ``uncrtaints`` - UnCRtainTS (Ebel et al. 2023, PatrickTUM/UnCRtainTS: ``img_metrics`` in
  ``model/src/learning/metrics.py``, ``util/pytorch_ssim``, ``process_MS`` in
  ``data/dataLoader.py``), used by most later papers.
* ``glf-cr`` - GLF-CR (Xu et al. 2022, xufangchn/GLF-CR: ``codes/metrics.py``,
  ``codes/dataloader.py``): the centre 128 x 128 crop, PSNR 100 for a perfect image, an SSIM
  kernel centred half a pixel off its middle.

All metrics are on top-of-atmosphere reflectance (DN / 10000) and the data range is 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

__all__ = [
    "DEFAULT_PROTOCOL",
    "PROTOCOLS",
    "Protocol",
    "describe_protocol",
    "get_protocol",
    "protocol_names",
]

SsimPadding = Literal["valid", "zeros"]
SamZeroNorm = Literal["skip_pixel", "undefined_image"]
Averaging = Literal["finite", "nan_skipping"]


@dataclass(frozen=True)
class Protocol:
    """Every convention that changes a metric's value.

    Attributes:
        name: the protocol's name (``--protocol NAME``).
        title: one line saying whose conventions these are.
        reference: the files the definitions were read from.
        crop: side in pixels of the centre crop scored (and, in ``dsen2cr evaluate``, fed to the
            model); the crop starts at ``(H - crop) // 2, (W - crop) // 2``. ``None``: the whole
            image. An image not larger than the crop is scored whole.
        clip: reflectance range the target and the cloudy input are clipped to before scoring
            (``None``: no clipping). Both peers clip DN to [0, 10000] in their data loaders.
        clip_prediction: whether the prediction is clipped to ``clip`` as well.
        data_range: peak value of PSNR and the range in the SSIM constants (reflectance).
        psnr_perfect: the PSNR of an image with RMSE 0: ``nan`` (undefined), ``inf`` or a
            number (100 for GLF-CR). Otherwise PSNR = 20 log10(data_range / RMSE).
        ssim_window: side of the Gaussian SSIM window (pixels).
        ssim_sigma: standard deviation of the Gaussian window (pixels).
        ssim_center: position of the Gaussian's peak on the window's 0..window-1 axis: 5 for a
            centred 11-pixel window, 5.5 for GLF-CR's ``x - window_size / 2``.
        ssim_k1, ssim_k2: SSIM stabilising constants, C1 = (K1 L)^2, C2 = (K2 L)^2.
        ssim_padding: ``"valid"`` - only positions where the window fits in the image,
            ``(H - 10) x (W - 10)`` (NaN below 11 x 11); ``"zeros"`` - the image is padded by
            ``window // 2`` zeros (``F.conv2d(padding=5)``), giving an H x W map.
        sam_unit: unit of the spectral angle (``"degrees"``).
        sam_zero_norm: a pixel whose predicted or reference spectrum is all zero:
            ``"skip_pixel"`` - left out of the image's mean angle; ``"undefined_image"`` - its
            angle is 0/0, so the image's SAM is NaN (what the peers' code computes).
        averaging: how per-image values become a data-set mean: ``"finite"`` - NaN and +-inf
            are left out and counted as undefined; ``"nan_skipping"`` - only NaN is left out
            (UnCRtainTS' running mean), so one +inf PSNR makes the mean +inf.
    """

    name: str
    title: str
    reference: str
    crop: int | None
    clip: tuple[float, float] | None
    clip_prediction: bool
    data_range: float
    psnr_perfect: float
    ssim_window: int
    ssim_sigma: float
    ssim_center: float
    ssim_k1: float
    ssim_k2: float
    ssim_padding: SsimPadding
    sam_unit: str
    sam_zero_norm: SamZeroNorm
    averaging: Averaging

    def to_dict(self) -> dict[str, object]:
        """JSON-able description (``psnr_perfect`` as ``"nan"``/``"inf"`` when not finite)."""
        out = asdict(self)
        if not math.isfinite(self.psnr_perfect):
            out["psnr_perfect"] = str(self.psnr_perfect)
        if self.clip is not None:
            out["clip"] = list(self.clip)
        return out


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            name="dsen2cr",
            title="this package's conventions, closest to the DSen2-CR paper (default)",
            reference="dsen2cr.metrics (tf.image.ssim / skimage SSIM with Gaussian weights)",
            crop=None,
            clip=None,
            clip_prediction=False,
            data_range=1.0,
            psnr_perfect=math.nan,
            ssim_window=11,
            ssim_sigma=1.5,
            ssim_center=5.0,
            ssim_k1=0.01,
            ssim_k2=0.03,
            ssim_padding="valid",
            sam_unit="degrees",
            sam_zero_norm="skip_pixel",
            averaging="finite",
        ),
        Protocol(
            name="uncrtaints",
            title="UnCRtainTS (Ebel et al. 2023), used by most later SEN12MS-CR papers",
            reference=(
                "PatrickTUM/UnCRtainTS: model/src/learning/metrics.py img_metrics, "
                "util/pytorch_ssim, data/dataLoader.py process_MS"
            ),
            crop=None,
            clip=(0.0, 1.0),
            clip_prediction=False,
            data_range=1.0,
            psnr_perfect=math.inf,
            ssim_window=11,
            ssim_sigma=1.5,
            ssim_center=5.0,
            ssim_k1=0.01,
            ssim_k2=0.03,
            ssim_padding="zeros",
            sam_unit="degrees",
            sam_zero_norm="undefined_image",
            averaging="nan_skipping",
        ),
        Protocol(
            name="glf-cr",
            title="GLF-CR (Xu et al. 2022): centre 128 x 128 crop, PSNR 100 when perfect",
            reference="xufangchn/GLF-CR: codes/metrics.py (PSNR, SSIM), codes/dataloader.py",
            crop=128,
            clip=(0.0, 1.0),
            clip_prediction=False,
            data_range=1.0,
            psnr_perfect=100.0,
            ssim_window=11,
            ssim_sigma=1.5,
            ssim_center=5.5,
            ssim_k1=0.01,
            ssim_k2=0.03,
            ssim_padding="zeros",
            sam_unit="degrees",
            sam_zero_norm="undefined_image",
            averaging="nan_skipping",
        ),
    )
}
"""Every declared protocol by name."""

DEFAULT_PROTOCOL = "dsen2cr"
"""The protocol used when none is named."""


def protocol_names() -> list[str]:
    """Names of the declared protocols, the default first."""
    return [DEFAULT_PROTOCOL, *sorted(n for n in PROTOCOLS if n != DEFAULT_PROTOCOL)]


def get_protocol(protocol: str | Protocol | None = None) -> Protocol:
    """The :class:`Protocol` of a name (``None``: the default); a Protocol is returned as is.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if protocol is None:
        return PROTOCOLS[DEFAULT_PROTOCOL]
    if isinstance(protocol, Protocol):
        return protocol
    key = str(protocol).strip().lower()
    if key not in PROTOCOLS:
        raise ValueError(
            f"unknown metric protocol {protocol!r}; known: {', '.join(protocol_names())}"
        )
    return PROTOCOLS[key]


def _psnr_perfect(value: float) -> str:
    if math.isnan(value):
        return "undefined (NaN)"
    return "+inf" if math.isinf(value) else f"{value:g}"


def describe_protocol(protocol: str | Protocol) -> str:
    """Several lines stating every convention of a protocol, for people."""
    p = get_protocol(protocol)
    crop = "whole image" if p.crop is None else f"centre {p.crop} x {p.crop} (also the model input)"
    if p.clip is None:
        clip = "none"
    else:
        clip = f"target and cloudy input to [{p.clip[0]:g}, {p.clip[1]:g}]"
        clip += ", prediction too" if p.clip_prediction else ", prediction not clipped"
    if p.ssim_padding == "valid":
        pad = "none: only positions where the window fits in the image"
    else:
        pad = f"{p.ssim_window // 2} zeros on every side (map as large as the image)"
    sam0 = {
        "skip_pixel": "left out of the image's mean",
        "undefined_image": "make the image's SAM undefined (0/0)",
    }[p.sam_zero_norm]
    avg = {
        "finite": "mean of the finite per-image values (NaN and inf counted as undefined)",
        "nan_skipping": "mean of the per-image values that are not NaN (inf is kept)",
    }[p.averaging]
    lines = [
        f"{p.name}: {p.title}",
        f"  reference:   {p.reference}",
        f"  crop:        {crop}",
        f"  clipping:    {clip} (reflectance)",
        f"  data range:  {p.data_range:g} (TOA reflectance = DN / 10000)",
        "  MAE, RMSE:   pooled over all bands and pixels of the image",
        f"  PSNR:        20 log10({p.data_range:g} / RMSE); perfect image: "
        f"{_psnr_perfect(p.psnr_perfect)}",
        f"  SSIM:        per band, {p.ssim_window} x {p.ssim_window} Gaussian, sigma "
        f"{p.ssim_sigma:g}, peak at {p.ssim_center:g}, K1 {p.ssim_k1:g}, K2 {p.ssim_k2:g}, "
        "population (co)variances, mean over the map and bands",
        f"  SSIM pad:    {pad}",
        f"  SAM:         {p.sam_unit}, mean over pixels; zero-norm spectra {sam0}",
        f"  averaging:   {avg}",
    ]
    return "\n".join(lines)
