"""``dsen2cr mask``: the cloud / cloud-shadow mask of a whole scene, on the tiled path.

The mask of a scene has one answer: this is the scene run of ``dsen2cr predict``
(:func:`dsen2cr.scene.run.run_scene`) without the network. The shadow test's statistics come from
a first pass over the valid pixels of the whole scene, the mask is computed tile by tile with a
halo of :data:`~dsen2cr.cloudmask.MASK_RADIUS` (which reproduces the whole-scene mask exactly) on
all writer threads, host memory is bounded by tiles, and the output is the same int8
Cloud-Optimized GeoTIFF as ``predict --mask-out`` (1 cloud, -1 shadow, 0 clear, -128 nodata),
pixel for pixel.
"""

from __future__ import annotations

import os
from typing import Any

from dsen2cr.io import guard_outputs
from dsen2cr.scene.run import PredictOptions, SceneOutputs, run_scene

__all__ = ["mask_scene"]


def mask_scene(
    s2: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    options: PredictOptions | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the cloud (1) / shadow (-1) / clear (0) mask of a Sentinel-2 scene.

    Args:
        s2: a 13-band S2 L1C GeoTIFF in DN, a ``.SAFE`` folder or its ``.zip``.
        out: output int8 COG on the input's grid (CRS and transform copied; an input without
            georeferencing gives an output without it), nodata -128 where the input is nodata.
        options: ``threshold``, ``tile``, ``device``, ``readers``, ``threads``, ``compress``,
            ``progress`` of :class:`~dsen2cr.scene.run.PredictOptions` (the network options are
            unused).
        overwrite: replace ``out`` if it exists (else that is an error); ``out`` may never be
            the input.

    Returns:
        ``{"s2", "out", "width", "height", "crs", "threshold", "cloud_fraction",
        "shadow_fraction", "clear_fraction", "nodata_fraction", "tiles", "seconds",
        "cog_seconds", "stages", ...}``; fractions are of all pixels of the scene.

    Raises:
        DSen2CRError: the input is missing, unreadable, does not have 13 bands or is all nodata;
            ``out`` exists or is the input.
    """
    opts = options or PredictOptions()
    guard_outputs({"out": out}, [s2], overwrite=overwrite)  # errors name this function's `out`
    summary = run_scene(s2, None, None, SceneOutputs.of(mask_out=out), opts, overwrite=overwrite,
                        title=f"mask {os.path.basename(os.fspath(s2))}")  # fmt: skip
    for key in ("s1", "mask_out", "preview", "precision", "batch"):
        summary.pop(key, None)
    summary["out"] = str(out)
    summary["threshold"] = opts.threshold
    return summary
