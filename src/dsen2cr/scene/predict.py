"""Cloud removal for whole Sentinel-2 scenes: exact tiled prediction with bounded memory.

:func:`predict` is the face of ``dsen2cr predict`` for one scene over the one scene run
(:func:`dsen2cr.scene.run.run_scene`): it reads a scene, runs the network tile by tile with a halo
of at least its receptive field (:mod:`dsen2cr.scene.tiling`: the result is the whole-scene
prediction up to float round-off) and writes a georeferenced Cloud-Optimized GeoTIFF.
:func:`predict_array` is the same engine on arrays in memory. The optional cloud/shadow mask is
computed on the same tiles: its halo also covers :data:`~dsen2cr.cloudmask.MASK_RADIUS`, and the
image-wide statistics of its shadow test come from a cheap first pass over the whole scene (valid
pixels only) - exactly what ``dsen2cr mask`` (:mod:`dsen2cr.scene.mask`) computes.

Units: inputs are S2 L1C DN (offset removed) and S1 dB; the network runs in the scaled domain
(:mod:`dsen2cr.scaling`); the output is DN = prediction x 2000, rounded, uint16.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from torch import nn

from dsen2cr.errors import DataError, DSen2CRError
from dsen2cr.scene.inputs import ArrayInputs
from dsen2cr.scene.network import LoadedNetwork, load_network
from dsen2cr.scene.pipeline import TileComputer, run_tiles
from dsen2cr.scene.run import PredictOptions, SceneOutputs, check_outputs, mask_spec, run_scene
from dsen2cr.scene.writers import ArraySink

__all__ = ["PredictOptions", "predict", "predict_array"]


def predict(
    s2: str | os.PathLike[str],
    weights_or_model: str | os.PathLike[str] | nn.Module | LoadedNetwork,
    out: str | os.PathLike[str],
    s1: str | os.PathLike[str] | None = None,
    *,
    mask_out: str | os.PathLike[str] | None = None,
    preview: str | os.PathLike[str] | None = None,
    options: PredictOptions | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Remove clouds from a whole Sentinel-2 scene and write a georeferenced result.

    Args:
        s2: cloudy Sentinel-2 L1C: a 13-band GeoTIFF in DN (SEN12MS-CR band order), a ``.SAFE``
            folder or its ``.zip`` (see :mod:`dsen2cr.scene.sentinel2`).
        weights_or_model: a weight file (``.safetensors``, the authors' Keras ``.hdf5``, a
            training ``.ckpt``), a :class:`~dsen2cr.models.DSen2CR`, or a network loaded once
            for many scenes (:func:`~dsen2cr.scene.network.load_network`).
        out: output GeoTIFF: 13 bands uint16 DN (L1C TOA reflectance x 10000) on the S2 grid
            (same CRS, transform, size), Cloud-Optimized layout (512 blocks, compression,
            overviews), band descriptions B1..B12, nodata 0 where the S2 input is nodata or, for
            a SAR model, where S1 does not cover the pixel (valid values are clipped to >= 1).
        s1: Sentinel-1 VV/VH GeoTIFF in dB (any CRS/resolution: reprojected bilinearly onto the
            S2 grid). Required for SAR models; ignored, with a note, for optical-only ones.
        mask_out: optional int8 COG of the cloud/shadow mask of the input: 1 cloud, -1 shadow,
            0 clear, -128 nodata (the same file ``dsen2cr mask`` writes).
        preview: optional PNG: input RGB, (SAR,) (mask,) prediction RGB side by side.
        options: tiling, device, precision, compression, threads ... (:class:`PredictOptions`).
        overwrite: replace outputs that exist (else they are an error, as with rasterio's
            ``rio``). An output that is an input, or another output, is always refused.

    Returns:
        A JSON-serialisable summary (:func:`~dsen2cr.scene.run.run_scene`) plus
        ``channels_last``, ``compile`` and ``load_seconds`` (reading and preparing the weights;
        0 when they were already loaded in this process).

    Raises:
        DSen2CRError: bad inputs (missing or corrupt files, wrong band counts, S1 not
            overlapping S2, invalid weights or options), outputs that exist or are inputs, a
            result without a single valid pixel. No output file is left behind.
    """
    opts = options or PredictOptions()
    outputs = SceneOutputs.of(out, mask_out, preview)
    weights = weights_or_model if isinstance(weights_or_model, (str, os.PathLike)) else None
    check_outputs(outputs, [s2, s1, weights], overwrite)  # before the weights are read
    t0 = time.perf_counter()
    network = load_network(weights_or_model, opts.device, opts.speed)
    load_seconds = time.perf_counter() - t0
    summary = run_scene(s2, s1, network, outputs, opts, overwrite=overwrite)
    summary.update(channels_last=network.speed.channels_last, compile=network.speed.compile,
                   load_seconds=load_seconds)  # fmt: skip
    return summary


def predict_array(
    model: str | os.PathLike[str] | nn.Module | LoadedNetwork,
    s2: np.ndarray,
    s1: np.ndarray | None = None,
    *,
    options: PredictOptions | None = None,
    with_mask: bool = False,
) -> dict[str, np.ndarray | None]:
    """Tiled prediction of an in-memory scene (the engine of :func:`predict`, without files).

    Args:
        model: a :class:`~dsen2cr.models.DSen2CR`, a weight file or a loaded network.
        s2: (13, H, W) cloudy Sentinel-2 L1C in DN; pixels with all bands 0 are nodata.
        s1: (2, H, W) Sentinel-1 VV, VH in dB on the same grid (NaN = missing), required when the
            model uses SAR.
        options: tile, batch (default 1), device (default ``"auto"``), precision, threshold,
            threads, speed (:class:`PredictOptions`; the file options are ignored).
        with_mask: also compute the cloud/shadow mask tile by tile.

    Returns:
        ``{"prediction": (13, H, W) float32 scaled (x 2000 = DN; 0 where nodata),
        "valid": (H, W) bool, "mask": (H, W) int8 {-1, 0, 1} (-128 where S2 is nodata) or
        None}``.
    """
    opts = options or PredictOptions(progress=False)
    network = load_network(model, opts.device, opts.speed)
    s2 = np.asarray(s2)
    if s2.ndim != 3 or s2.shape[0] != 13:
        raise DataError(f"s2 must be a (13, H, W) array, got shape {s2.shape}")
    if network.uses_sar:
        if s1 is None:
            raise DSen2CRError("this model uses SAR: pass s1=(2, H, W) in dB")
        s1 = np.asarray(s1, np.float32)
        if s1.shape != (2, *s2.shape[1:]):
            raise DataError(f"s1 must have shape {(2, *s2.shape[1:])}, got {s1.shape}")
    else:
        s1 = None
    inputs = ArrayInputs(s2, s1)
    mask = mask_spec(inputs, opts.threshold) if with_mask else None
    batch = opts.batch or 1
    computer = TileComputer(network, network.device, opts.precision_on(network.device), mask,
                            pad_batch=batch if network.speed.compile else None)  # fmt: skip
    sink = ArraySink(inputs.height, inputs.width, with_mask)
    run_tiles(inputs, computer, sink, tile=opts.tile, batch=batch, readers=opts.readers,
              workers=opts.threads_here())  # fmt: skip
    return {"prediction": sink.prediction, "valid": sink.valid, "mask": sink.mask}
