"""Which pixels hold data: the one validity rule for Sentinel-2 and the one for Sentinel-1.

The scene readers, the mosaics, the writers and the scene evaluation decide "is this pixel data
or nodata" here, so that a scene that is read, mosaicked, predicted and evaluated counts the same
pixels everywhere.

* **Sentinel-2** (:func:`s2_valid`; digital numbers, any dtype, band axis first): a pixel is
  valid when some band is non-zero, every band is finite and, for a declared nodata value other
  than 0, some band differs from it. L1C products mark nodata with 0 in every band (their
  ``NODATA`` special value); a GeoTIFF may declare another nodata value; a float image may carry
  NaN. A band that is 0 in an otherwise valid pixel is data (dark water, a DN below the L1C
  offset).
* **Sentinel-1** (:func:`s1_valid`; backscatter in dB or linear power, band axis first): a pixel
  is valid when every band is finite. Warping onto the S2 grid fills outside the swath with NaN,
  and a pixel with one band missing cannot be used by any consumer (the network needs VV and VH).

Decisions where earlier copies of the rule differed:

* The mosaic (:mod:`dsen2cr.data.mosaic`) counted an S1 (float) patch pixel as covered when
  *some* band was not NaN; it now uses :func:`s1_valid` (*every* band finite), the rule of the
  scene reader and of the prediction's nodata. A partly-NaN (or infinite) pixel of a patch is now
  left to the next patch that covers it with complete data, or stays nodata (NaN in every band),
  instead of being copied with its NaN band. None of the real S1 patches in ``../shared/realdata``
  has such a pixel, so their mosaics are unchanged.
* The mosaic judged an S2 (integer) patch pixel by "some band non-zero" only; it now passes the
  patch's declared nodata to :func:`s2_valid`, as the scene readers and the scene evaluation do
  (no real SEN12MS-CR patch declares one, so their mosaics are unchanged).
* The scene evaluation (:func:`dsen2cr.evaluation.scenes.score_scene`) judged coverage by "some
  band non-zero"; it now uses :func:`s2_valid` with each file's declared nodata (the same for the
  uint16, nodata-0 files dsen2cr writes; a NaN pixel of a float file is no longer covered).
* The band-order test (:func:`dsen2cr.scene.sentinel2.band_order_problem`) reads only B3 and B10;
  it applies :func:`s2_valid` to those two bands (as before: its sample of valid pixels is
  unchanged).
"""

from __future__ import annotations

import numpy as np

__all__ = ["s1_valid", "s2_valid"]


def s2_valid(s2: np.ndarray, nodata: float | None = None) -> np.ndarray:
    """Valid-pixel map of a Sentinel-2 array (see the module docs).

    Args:
        s2: (bands, ...) digital numbers (any dtype; 0 in every band = nodata), usually
            (13, H, W).
        nodata: the image's declared nodata value (DN); ``None`` or 0: 0 only. A NaN nodata
            value adds nothing (NaN is never valid in a float image).

    Returns:
        (...) bool, e.g. (H, W): True where the pixel holds data.
    """
    s2 = np.asarray(s2)
    valid = np.asarray((s2 != 0).any(axis=0))
    if nodata is not None and nodata != 0:
        valid &= (s2 != nodata).any(axis=0)
    if s2.dtype.kind in "fc":  # integers are always finite
        valid &= np.isfinite(s2).all(axis=0)
    return valid


def s1_valid(s1: np.ndarray) -> np.ndarray:
    """Valid-pixel map of a Sentinel-1 array (see the module docs).

    Args:
        s1: (bands, ...) backscatter in dB or linear power (NaN = nodata), usually (2, H, W).

    Returns:
        (...) bool, e.g. (H, W): True where every band is finite.
    """
    return np.asarray(np.isfinite(np.asarray(s1)).all(axis=0))
