"""``dsen2cr mask``: the cloud / cloud-shadow mask of a whole scene, on the tiled path.

The mask of a scene has one answer: this is the pipeline of :func:`dsen2cr.scene.predict.predict`
without the network. The shadow test's statistics come from a first pass over the valid pixels
of the whole scene, the mask is computed tile by tile with a halo of
:data:`~dsen2cr.cloudmask.MASK_RADIUS` (which reproduces the whole-scene mask exactly), host
memory is bounded by a row of tiles, and the output is the same int8 Cloud-Optimized GeoTIFF as
``predict --mask-out`` (1 cloud, -1 shadow, 0 clear, -128 nodata), pixel for pixel.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from dsen2cr.io import bounded_gdal, guard_outputs
from dsen2cr.performance import resolve_device
from dsen2cr.scene.inputs import FileInputs
from dsen2cr.scene.pipeline import TileComputer
from dsen2cr.scene.predict import PredictOptions, add_seconds, mask_spec, mask_tags
from dsen2cr.scene.sentinel2 import implausible_s2, open_s2
from dsen2cr.scene.writers import write_scene

log = logging.getLogger(__name__)


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
        options: ``threshold``, ``tile``, ``device``, ``readers``, ``compress``, ``progress``
            of :class:`~dsen2cr.scene.predict.PredictOptions` (the network options are unused).
        overwrite: replace ``out`` if it exists (else that is an error); ``out`` may never be
            the input.

    Returns:
        ``{"s2", "out", "width", "height", "crs", "threshold", "cloud_fraction",
        "shadow_fraction", "clear_fraction", "nodata_fraction", "tiles", "seconds",
        "cog_seconds", ...}``; fractions are of all pixels of the scene.

    Raises:
        DSen2CRError: the input is missing, unreadable, does not have 13 bands or is all nodata;
            ``out`` exists or is the input.
    """
    opts = options or PredictOptions()
    guard_outputs({"out": out}, [s2], overwrite=overwrite)
    scene = open_s2(s2)
    for warning in implausible_s2(scene):
        log.warning("warning: %s", warning)
    dev = resolve_device(opts.device)
    inputs = FileInputs(scene, None)
    with bounded_gdal():
        mask, stats_seconds = mask_spec(inputs, opts.threshold)
        timing, counters = write_scene(
            scene, inputs, TileComputer(None, dev, mask=mask),
            out=None, mask_out=Path(out), preview=None, tile=opts.tile, batch=opts.batch_for(dev),
            readers=opts.readers, compress=opts.compress, tags={},
            mask_tags=mask_tags(scene, opts.threshold), title=f"mask {scene.name}",
            progress=opts.progress,
        )  # fmt: skip
    n = scene.height * scene.width
    return {
        "s2": str(scene.path),
        "out": str(out),
        "width": scene.width,
        "height": scene.height,
        "crs": str(scene.crs) if scene.crs is not None else None,
        "threshold": opts.threshold,
        "cloud_fraction": counters.cloud / n,
        "shadow_fraction": counters.shadow / n,
        "clear_fraction": (n - counters.nodata - counters.cloud - counters.shadow) / n,
        "nodata_fraction": counters.nodata / n,
        "device": str(dev),
        **add_seconds(timing, stats_seconds, n),
    }
