"""Cloud removal for whole Sentinel-2 scenes: exact tiled prediction with bounded memory.

:func:`predict` reads a scene (:mod:`dsen2cr.scene.sentinel2`, S1 on its grid by
:mod:`dsen2cr.scene.sentinel1`), runs the network tile by tile with a halo of at least its
receptive field (:mod:`dsen2cr.scene.tiling`: the result is the whole-scene prediction up to
float round-off), through the threaded pipeline (:mod:`dsen2cr.scene.pipeline`), and writes a
georeferenced Cloud-Optimized GeoTIFF (:mod:`dsen2cr.scene.writers`). :func:`predict_array` is
the same engine on arrays in memory. The optional cloud/shadow mask is computed on the same
tiles: its halo also covers :data:`~dsen2cr.cloudmask.MASK_RADIUS`, and the image-wide
statistics of its shadow test come from a cheap first pass over the whole scene (valid pixels
only) - exactly what ``dsen2cr mask`` (:mod:`dsen2cr.scene.mask`) computes.

Units: inputs are S2 L1C DN (offset removed) and S1 dB; the network runs in the scaled domain
(:mod:`dsen2cr.scaling`); the output is DN = prediction x 2000, rounded, uint16.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dsen2cr import __version__
from dsen2cr.cloudmask import DEFAULT_THRESHOLD
from dsen2cr.errors import DataError, DSen2CRError, OptionError, WeightsError
from dsen2cr.io import bounded_gdal, guard_outputs
from dsen2cr.models import load_weights, network_digest
from dsen2cr.performance import SpeedOptions, check_precision, resolve_device
from dsen2cr.scene.cog import COMPRESSIONS
from dsen2cr.scene.inputs import ArrayInputs, FileInputs, SceneInputs, scene_shadow_statistics
from dsen2cr.scene.pipeline import MaskSpec, TileComputer, run_tiles
from dsen2cr.scene.sentinel1 import implausible_s1, open_s1
from dsen2cr.scene.sentinel2 import S2Scene, implausible_s2, open_s2
from dsen2cr.scene.writers import MASK_VALUES, ArraySink, write_scene

log = logging.getLogger(__name__)

MIN_TILE = 16
"""Smallest core tile size."""


@dataclass(frozen=True)
class PredictOptions:
    """How a scene is predicted (``dsen2cr predict``'s options; ``dsen2cr mask`` uses the
    tiling, device, threshold, compression and progress ones).

    Attributes:
        tile: core tile size in pixels; the network sees ``tile + 2 halo`` pixels per tile
            (halo = receptive field 2B + 2, at least the mask's 7).
        batch: tiles per forward pass (None: 4 on CUDA, 1 on CPU).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        precision: ``"fp32"`` or ``"bf16"`` (``torch.autocast``, also on CPU).
        threshold: cloud threshold of the mask.
        compress: compression of the outputs (``DEFLATE``, ``ZSTD``, ``LZW``, ``NONE``).
        s1_linear: S1 holds linear power instead of dB (converted with 10 log10).
        readers: threads reading (and reprojecting) the inputs, each with its own GDAL handles
            (None: 1 on CPU, where the network needs the cores; on CUDA a quarter of the CPU
            cores, 1 to 4).
        speed: memory format and compilation of the network (:class:`SpeedOptions`).
        progress: show a progress bar (tiles/s) when stderr is a terminal.
    """

    tile: int = 512
    batch: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    threshold: float = DEFAULT_THRESHOLD
    compress: str = "DEFLATE"
    s1_linear: bool = False
    readers: int | None = None
    speed: SpeedOptions = field(default_factory=SpeedOptions)
    progress: bool = True

    def __post_init__(self) -> None:
        def positive(name: str, value: Any, low: int = 1) -> None:
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise OptionError(name, f"must be an integer >= {low}, got {value!r}")

        positive("tile", self.tile, MIN_TILE)
        if self.tile is None:
            raise OptionError("tile", "must be an integer >= 16, got None")
        positive("batch", self.batch)
        positive("readers", self.readers)
        check_precision(self.precision)
        if not isinstance(self.threshold, (int, float)) or not math.isfinite(self.threshold):
            raise OptionError("threshold", f"must be a finite number, got {self.threshold!r}")
        compress = str(self.compress).upper()
        if compress not in COMPRESSIONS:
            raise OptionError("compress", f"must be one of {', '.join(COMPRESSIONS)}, got {self.compress!r}")
        object.__setattr__(self, "compress", compress)

    def fingerprint(self) -> dict[str, Any]:
        """The options that define an output file, recorded in it (``DSEN2CR_OPTIONS``).

        A batch skips a scene whose output has the same fingerprint (and weights and inputs):
        ``tile``, ``precision``, ``threshold``, ``compress`` and ``s1_linear``. The options that
        only change the speed (``batch``, ``device``, ``readers``, ``speed``, ``progress``) are
        not part of it.
        """
        return {"tile": self.tile, "precision": self.precision, "threshold": float(self.threshold),
                "compress": self.compress, "s1_linear": self.s1_linear}  # fmt: skip

    def batch_for(self, device: torch.device) -> int:
        """The batch size on ``device`` (:attr:`batch`, or its default)."""
        return self.batch or (4 if device.type == "cuda" else 1)


def tiling_model(weights_or_model: str | os.PathLike[str] | nn.Module, device: torch.device) -> nn.Module:
    """The network to tile a scene with, in eval mode on ``device``.

    Args:
        weights_or_model: a weight file (any format :func:`dsen2cr.models.load_weights` reads) or
            a network.

    Raises:
        WeightsError: the network has no finite receptive field (the pix2pix U-Net), so a scene
            cannot be tiled exactly.
    """
    if isinstance(weights_or_model, nn.Module):
        net = weights_or_model
    elif isinstance(weights_or_model, (str, os.PathLike)):
        net = load_weights(weights_or_model)
    else:
        raise TypeError(f"expected a weight file or a network, got {type(weights_or_model)}")
    if not hasattr(net, "receptive_field_radius"):
        raise WeightsError(
            f"{getattr(net, 'name', type(net).__name__)}: a {type(net).__name__} has no finite "
            "receptive field, so a scene cannot be tiled exactly; predict takes DSen2-CR weights"
        )
    return net.to(device).eval()


def prediction_tags(
    scene: S2Scene, s1_path: Path | None, weights_name: str, net: nn.Module, options: PredictOptions
) -> dict[str, str]:
    """The metadata a prediction COG carries (version, weights, model, inputs, units, options)."""
    tags = {
        "DSEN2CR_VERSION": __version__,
        "DSEN2CR_WEIGHTS": weights_name,
        "DSEN2CR_MODEL": json.dumps(net.config),
        "DSEN2CR_S2": str(scene.path),
        "DSEN2CR_S1": str(s1_path) if s1_path is not None else "",
        "DSEN2CR_UNITS": "DN: L1C top-of-atmosphere reflectance x 10000 (prediction x 2000); "
        "0 = nodata",
        "DSEN2CR_WEIGHTS_SHA256": network_digest(net),
        "DSEN2CR_OPTIONS": json.dumps(options.fingerprint(), sort_keys=True),
        "DSEN2CR_TILE": str(options.tile),
        "DSEN2CR_PRECISION": options.precision,
    }
    if scene.baseline is not None:
        tags["DSEN2CR_S2_BASELINE"] = scene.baseline
    return tags


def mask_tags(scene: S2Scene, threshold: float) -> dict[str, str]:
    """The metadata a mask COG carries (the same for ``predict --mask-out`` and ``mask``)."""
    return {
        "DSEN2CR_VERSION": __version__,
        "DSEN2CR_S2": str(scene.path),
        "DSEN2CR_THRESHOLD": str(threshold),
        "DSEN2CR_VALUES": MASK_VALUES,
    }


def add_seconds(timing: dict[str, Any], seconds: float, pixels: int) -> dict[str, Any]:
    """``timing`` of :func:`~dsen2cr.scene.pipeline.run_tiles` with ``seconds`` of work before
    the tiles (the mask statistics pass) counted in its ``seconds`` and rates."""
    total = timing["seconds"] + seconds
    timing.update(
        seconds=total,
        tiles_per_s=timing["tiles"] / total if total > 0 else float("inf"),
        megapixels_per_s=pixels / 1e6 / total if total > 0 else 0.0,
        statistics_seconds=seconds,
    )
    return timing


def mask_spec(inputs: SceneInputs, threshold: float) -> tuple[MaskSpec, float]:
    """The mask of a scene (scene-wide shadow statistics, valid pixels only) and the seconds the
    statistics pass took."""
    t0 = time.perf_counter()
    stats = scene_shadow_statistics(inputs)
    return MaskSpec(threshold, stats), time.perf_counter() - t0


def predict(
    s2: str | os.PathLike[str],
    weights_or_model: str | os.PathLike[str] | nn.Module,
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
            training ``.ckpt``) or a :class:`~dsen2cr.models.DSen2CR`.
        out: output GeoTIFF: 13 bands uint16 DN (L1C TOA reflectance x 10000) on the S2 grid
            (same CRS, transform, size), Cloud-Optimized layout (512 blocks, compression,
            overviews), band descriptions B1..B12, nodata 0 where the S2 input is nodata or, for
            a SAR model, where S1 does not cover the pixel (valid values are clipped to >= 1).
        s1: Sentinel-1 VV/VH GeoTIFF in dB (any CRS/resolution: reprojected bilinearly onto the
            S2 grid). Required for SAR models; ignored, with a note, for optical-only ones.
        mask_out: optional int8 COG of the cloud/shadow mask of the input: 1 cloud, -1 shadow,
            0 clear, -128 nodata (the same file ``dsen2cr mask`` writes).
        preview: optional PNG: input RGB, (SAR,) (mask,) prediction RGB side by side.
        options: tiling, device, precision, compression, ... (:class:`PredictOptions`).
        overwrite: replace outputs that exist (else they are an error, as with rasterio's
            ``rio``). An output that is an input, or another output, is always refused.

    Returns:
        A JSON-serialisable summary: paths, grid, tiles, timing (``seconds``: the mask
        statistics pass, reading, network and writing the full-resolution raster,
        ``megapixels_per_s`` and ``tiles_per_s`` over that; ``cog_seconds``: overviews and the
        COG translation), fractions of nodata / cloud / shadow pixels.

    Raises:
        DSen2CRError: bad inputs (missing or corrupt files, wrong band counts, S1 not
            overlapping S2, invalid weights or options), outputs that exist or are inputs, a
            result without a single valid pixel. No output file is left behind.
    """
    opts = options or PredictOptions()
    weights_file = weights_or_model if isinstance(weights_or_model, (str, os.PathLike)) else None
    guard_outputs({"out": out, "mask_out": mask_out, "preview": preview},
                  [s2, s1, weights_file], overwrite=overwrite)  # fmt: skip
    scene = open_s2(s2)
    dev = resolve_device(opts.device)
    net = tiling_model(weights_or_model, dev)
    s1src = None
    if net.uses_sar:
        if s1 is None:
            raise DSen2CRError("the weights use SAR (sar_channels=2): give the Sentinel-1 image (s1)")
        s1src = open_s1(s1, scene, linear=opts.s1_linear)
    for warning in implausible_s2(scene) + (implausible_s1(s1src) if s1src else []):
        log.warning("warning: %s", warning)
    if s1src is None and s1 is not None:
        log.warning("note: the weights do not use SAR; ignoring the S1 input %s", s1)
    batch = opts.batch_for(dev)
    inputs = FileInputs(scene, s1src)
    weights_name = (Path(weights_or_model).name if isinstance(weights_or_model, (str, os.PathLike))
                    else "<in-memory model>")  # fmt: skip
    with bounded_gdal():
        mask, stats_seconds = mask_spec(inputs, opts.threshold) if (mask_out or preview) else (None, 0.0)
        computer = TileComputer(net, dev, opts.precision, mask, opts.speed,
                                # a compiled network would compile again for a smaller last batch
                                pad_batch=batch if opts.speed.compile else None)  # fmt: skip
        timing, counters = write_scene(
            scene, inputs, computer,
            out=Path(out), mask_out=Path(mask_out) if mask_out is not None else None,
            preview=Path(preview) if preview is not None else None,
            tile=opts.tile, batch=batch, readers=opts.readers, compress=opts.compress,
            tags=prediction_tags(scene, s1src.path if s1src else None, weights_name, net, opts),
            mask_tags=mask_tags(scene, opts.threshold), title=scene.name, progress=opts.progress,
        )  # fmt: skip
    n = scene.height * scene.width
    summary: dict[str, Any] = {
        "s2": str(scene.path),
        "s1": str(s1src.path) if s1src is not None else None,
        "out": str(out),
        "mask_out": str(mask_out) if mask_out is not None else None,
        "preview": str(preview) if preview is not None else None,
        "width": scene.width,
        "height": scene.height,
        "crs": str(scene.crs) if scene.crs is not None else None,
        "device": str(dev),
        "precision": opts.precision,
        "batch": batch,
        "channels_last": opts.speed.channels_last,
        "compile": opts.speed.compile,
        **add_seconds(timing, stats_seconds, n),
        "nodata_fraction": counters.nodata / n,
    }
    if mask is not None:
        summary["cloud_fraction"] = counters.cloud / n
        summary["shadow_fraction"] = counters.shadow / n
    return summary


def predict_array(
    model: str | os.PathLike[str] | nn.Module,
    s2: np.ndarray,
    s1: np.ndarray | None = None,
    *,
    options: PredictOptions | None = None,
    with_mask: bool = False,
) -> dict[str, np.ndarray | None]:
    """Tiled prediction of an in-memory scene (the engine of :func:`predict`, without files).

    Args:
        model: a :class:`~dsen2cr.models.DSen2CR` or a weight file.
        s2: (13, H, W) cloudy Sentinel-2 L1C in DN; pixels with all bands 0 are nodata.
        s1: (2, H, W) Sentinel-1 VV, VH in dB on the same grid (NaN = missing), required when the
            model uses SAR.
        options: tile, batch (default 1), device (default ``"auto"``), precision, threshold,
            speed (:class:`PredictOptions`; the file options are ignored).
        with_mask: also compute the cloud/shadow mask tile by tile.

    Returns:
        ``{"prediction": (13, H, W) float32 scaled (x 2000 = DN; 0 where nodata),
        "valid": (H, W) bool, "mask": (H, W) int8 {-1, 0, 1} (-128 where S2 is nodata) or
        None}``.
    """
    opts = options or PredictOptions(progress=False)
    dev = resolve_device(opts.device)
    net = tiling_model(model, dev)
    s2 = np.asarray(s2)
    if s2.ndim != 3 or s2.shape[0] != 13:
        raise DataError(f"s2 must be a (13, H, W) array, got shape {s2.shape}")
    if net.uses_sar:
        if s1 is None:
            raise DSen2CRError("this model uses SAR: pass s1=(2, H, W) in dB")
        s1 = np.asarray(s1, np.float32)
        if s1.shape != (2, *s2.shape[1:]):
            raise DataError(f"s1 must have shape {(2, *s2.shape[1:])}, got {s1.shape}")
    else:
        s1 = None
    inputs = ArrayInputs(s2, s1)
    mask = mask_spec(inputs, opts.threshold)[0] if with_mask else None
    batch = opts.batch or 1
    computer = TileComputer(net, dev, opts.precision, mask, opts.speed,
                            pad_batch=batch if opts.speed.compile else None)  # fmt: skip
    sink = ArraySink(inputs.height, inputs.width, with_mask)
    run_tiles(inputs, computer, sink.sink, tile=opts.tile, batch=batch, readers=opts.readers)
    return {"prediction": sink.prediction, "valid": sink.valid, "mask": sink.mask}
