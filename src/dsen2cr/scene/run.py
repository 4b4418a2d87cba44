"""One scene run: the one home of ``predict``, ``mask``, batch prediction and ``evaluate --scenes``.

:func:`run_scene` opens a scene's inputs (:mod:`dsen2cr.scene.sentinel2`, S1 on its grid by
:mod:`dsen2cr.scene.sentinel1`), checks them, computes the cloud mask's scene-wide statistics
when a mask is asked for, runs the tiles through the pipeline (:mod:`dsen2cr.scene.pipeline`)
into the file sink (:mod:`dsen2cr.scene.writers`), lays out the COGs, renames every output into
place only when all are complete, and returns one summary with the time of every stage.
:class:`PredictOptions` are its options, :func:`prediction_tags` and :func:`mask_tags` the
metadata its outputs carry. ``dsen2cr predict`` (:func:`dsen2cr.scene.predict`), ``dsen2cr
mask`` (:func:`dsen2cr.scene.mask_scene`), batches (:func:`dsen2cr.scene.predict_batch`) and
``evaluate --scenes`` are thin faces over it, each passing a network loaded once
(:func:`dsen2cr.scene.network.load_network`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dsen2cr import __version__
from dsen2cr.cloudmask import DEFAULT_THRESHOLD
from dsen2cr.cog import COMPRESSIONS
from dsen2cr.data.synthetic import is_synthetic
from dsen2cr.errors import DataError, DSen2CRError, OptionError
from dsen2cr.io import atomic_output, bounded_gdal, cpu_count, guard_outputs
from dsen2cr.models import trained_on_synthetic
from dsen2cr.performance import SpeedOptions, check_precision, resolve_device, resolve_precision
from dsen2cr.scene.inputs import FileInputs, SceneInputs, scene_shadow_statistics
from dsen2cr.scene.network import LoadedNetwork
from dsen2cr.scene.pipeline import (
    MaskSpec,
    TileComputer,
    TileRun,
    check_tile_fits,
    run_tiles,
    tile_halo,
)
from dsen2cr.scene.sentinel1 import S1Source, implausible_s1, open_s1
from dsen2cr.scene.sentinel2 import S2Scene, band_order_problem, implausible_s2, open_s2
from dsen2cr.scene.stages import StageClock
from dsen2cr.scene.writers import MASK_VALUES, Counters, SceneSink, check_valid

log = logging.getLogger(__name__)

MIN_TILE = 16
"""Smallest core tile size."""
MAX_CLEAR_MARGIN = 27
"""Largest ``clear_margin``: the paper model's halo (34) covers the mask's radius (7) plus it."""


@dataclass(frozen=True)
class PredictOptions:
    """How a scene is predicted (``dsen2cr predict``'s options; ``dsen2cr mask`` uses the
    tiling, device, threshold, compression, thread and progress ones).

    Attributes:
        tile: core tile size in pixels; the network sees ``tile + 2 halo`` pixels per tile
            (halo = receptive field 2B + 2, at least the mask's 7).
        batch: tiles per forward pass (None: 4 on CUDA, 1 on CPU).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        precision: ``"fp32"`` (IEEE), ``"tf32"`` (CUDA) or ``"bf16"``; None: the device's
            default (:func:`~dsen2cr.performance.default_precision`: tf32 on CUDA, fp32 on CPU).
        threshold: cloud threshold of the mask.
        compress: compression of the outputs (``DEFLATE``, ``ZSTD``, ``LZW``, ``NONE``).
        s1_linear: S1 holds linear power instead of dB (converted with 10 log10).
        readers: threads reading the inputs, each with its own GDAL handles (None: 1 on CPU,
            where the network needs the cores; on CUDA a quarter of the CPU cores, 1 to 4).
        threads: CPU threads of each stage that can use many: GDAL's decoding and S1 warping
            threads per reader, and the writer threads that convert, mask (CPU) and compress
            (None: every core this process may use).
        speed: memory format and compilation of the network (:class:`SpeedOptions`).
        progress: show a progress bar (tiles/s) when stderr is a terminal.
        band_check: refuse a 13-band GeoTIFF whose bands are not in the order B1 ... B12
            (:func:`~dsen2cr.scene.sentinel2.band_order_problem`); False proceeds anyway.
        keep_clear: keep the input's DN where the cloud/shadow mask says clear and predict only
            under clouds and shadows; the prediction gets a 14th band, the per-pixel provenance
            (:func:`dsen2cr.scene.writers.keep_clear`).
        clear_margin: with ``keep_clear``, pixels by which clouds and shadows grow first (the
            mask misses the thin edges of clouds), 0 to 27.
    """

    tile: int = 512
    batch: int | None = None
    device: str = "auto"
    precision: str | None = None
    threshold: float = DEFAULT_THRESHOLD
    compress: str = "DEFLATE"
    s1_linear: bool = False
    readers: int | None = None
    threads: int | None = None
    speed: SpeedOptions = field(default_factory=SpeedOptions)
    progress: bool = True
    band_check: bool = True
    keep_clear: bool = False
    clear_margin: int = 0

    def __post_init__(self) -> None:
        def positive(name: str, value: object, low: int = 1) -> None:
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise OptionError(name, f"must be an integer >= {low}, got {value!r}")

        positive("tile", self.tile, MIN_TILE)
        if self.tile is None:
            raise OptionError("tile", f"must be an integer >= {MIN_TILE}, got None")
        positive("batch", self.batch)
        positive("readers", self.readers)
        positive("threads", self.threads)
        if not isinstance(self.clear_margin, int) or not 0 <= self.clear_margin <= MAX_CLEAR_MARGIN:
            raise OptionError("clear_margin", f"must be an integer from 0 to {MAX_CLEAR_MARGIN}, "
                              f"got {self.clear_margin!r}")  # fmt: skip
        if self.precision is not None:
            check_precision(self.precision)
        if not isinstance(self.threshold, (int, float)) or not math.isfinite(self.threshold):
            raise OptionError("threshold", f"must be a finite number, got {self.threshold!r}")
        compress = str(self.compress).upper()
        if compress not in COMPRESSIONS:
            raise OptionError("compress", f"must be one of {', '.join(COMPRESSIONS)}, got {self.compress!r}")
        object.__setattr__(self, "compress", compress)

    def precision_on(self, device: torch.device) -> str:
        """The precision of a run.

        Args:
            device: where it runs.

        Returns:
            :attr:`precision`, or the device's default.
        """
        return resolve_precision(self.precision, device)

    def fingerprint(self, device: torch.device) -> dict[str, str | int | float | bool]:
        """The options that define an output file, recorded in it (``DSEN2CR_OPTIONS``).

        A batch skips a scene whose output has the same fingerprint (and weights and inputs):
        ``tile``, ``precision`` (as run on ``device``), ``threshold``, ``compress``,
        ``s1_linear`` and, when set, ``keep_clear`` with ``clear_margin``. The options that only
        change the speed (``batch``, ``device``, ``readers``, ``threads``, ``speed``,
        ``progress``) are not part of it.

        Args:
            device: where the run happens (it decides the default precision).

        Returns:
            The fingerprint, JSON-able.
        """
        out: dict[str, str | int | float | bool] = {
            "tile": self.tile, "precision": self.precision_on(device),
            "threshold": float(self.threshold), "compress": self.compress,
            "s1_linear": self.s1_linear}  # fmt: skip
        if self.keep_clear:  # absent otherwise: outputs made before it existed still match
            out.update(keep_clear=True, clear_margin=self.clear_margin)
        return out

    def batch_for(self, device: torch.device) -> int:
        """The batch size of a run.

        Args:
            device: where it runs.

        Returns:
            :attr:`batch`, or its default (4 on CUDA, 1 elsewhere).
        """
        return self.batch or (4 if device.type == "cuda" else 1)

    def threads_here(self) -> int:
        """:attr:`threads`, or every core this process may use."""
        return self.threads or cpu_count()


@dataclass(frozen=True)
class SceneOutputs:
    """The files of one scene run (None: not written).

    Attributes:
        out: the prediction COG (13 bands uint16 DN).
        mask_out: the cloud/shadow mask COG (int8).
        preview: the PNG preview.
    """

    out: Path | None = None
    mask_out: Path | None = None
    preview: Path | None = None

    @classmethod
    def of(cls, out: str | os.PathLike[str] | None = None,
           mask_out: str | os.PathLike[str] | None = None,
           preview: str | os.PathLike[str] | None = None) -> SceneOutputs:  # fmt: skip
        """The outputs from paths.

        Args:
            out: the prediction, or None.
            mask_out: the mask, or None.
            preview: the preview, or None.
        """
        def p(x: str | os.PathLike[str] | None) -> Path | None:
            return Path(x) if x is not None else None

        return cls(p(out), p(mask_out), p(preview))


def check_outputs(outputs: SceneOutputs, inputs: Sequence[str | os.PathLike[str] | None],
                  overwrite: bool) -> None:  # fmt: skip
    """Refuse outputs that exist (unless ``overwrite``), are inputs or collide
    (:func:`dsen2cr.io.guard_outputs`), before anything is read or written.

    Args:
        outputs: the scene's outputs.
        inputs: its input files (None: not given).
        overwrite: an existing output may be replaced.

    Raises:
        OptionError: an output is an input or another output, or cannot be written.
        OutputExistsError: an output exists and ``overwrite`` is False.
    """
    guard_outputs({"out": outputs.out, "mask_out": outputs.mask_out, "preview": outputs.preview},
                  inputs, overwrite=overwrite)  # fmt: skip


def prediction_tags(scene: S2Scene, s1: S1Source | None, network: LoadedNetwork,
                    options: PredictOptions) -> dict[str, str]:  # fmt: skip
    """The metadata a prediction COG carries.

    Args:
        scene: the S2 input.
        s1: the S1 input, or None.
        network: the network.
        options: the run's options.

    Returns:
        GeoTIFF tags: version, weights, model, inputs, units, options.
    """
    precision = options.precision_on(network.device)
    tags = {
        "DSEN2CR_VERSION": __version__,
        "DSEN2CR_WEIGHTS": network.name,
        "DSEN2CR_MODEL": json.dumps(network.config),
        "DSEN2CR_S2": str(scene.path),
        "DSEN2CR_S1": str(s1.path) if s1 is not None else "",
        "DSEN2CR_UNITS": "DN: L1C top-of-atmosphere reflectance x 10000 (prediction x 2000); "
        "0 = nodata",
        "DSEN2CR_WEIGHTS_SHA256": network.digest,
        "DSEN2CR_OPTIONS": json.dumps(options.fingerprint(network.device), sort_keys=True),
        "DSEN2CR_TILE": str(options.tile),
        "DSEN2CR_PRECISION": precision,
    }
    if scene.baseline is not None:
        tags["DSEN2CR_S2_BASELINE"] = scene.baseline
    if options.keep_clear:
        tags["DSEN2CR_KEEP_CLEAR"] = json.dumps({
            "margin": options.clear_margin, "provenance_band": 14,
            "values": "0 nodata, 1 input kept (clear), 2 reconstructed under cloud, "
                      "3 reconstructed under shadow",
            "kept": "the input's DN, bit for bit (after the offset of L1C baseline >= 04.00)",
        })  # fmt: skip
    return tags


def mask_tags(scene: S2Scene, threshold: float) -> dict[str, str]:
    """The metadata a mask COG carries (the same for ``predict --mask-out`` and ``mask``).

    Args:
        scene: the S2 input.
        threshold: the cloud threshold.

    Returns:
        GeoTIFF tags: version, input, threshold, values.
    """
    return {
        "DSEN2CR_VERSION": __version__,
        "DSEN2CR_S2": str(scene.path),
        "DSEN2CR_THRESHOLD": str(threshold),
        "DSEN2CR_VALUES": MASK_VALUES,
    }


def mask_spec(inputs: SceneInputs, threshold: float, margin: int = 0) -> MaskSpec:
    """The mask of a scene.

    Args:
        inputs: the scene (its S2 is read once, in row chunks).
        threshold: the cloud threshold.
        margin: pixels by which ``keep_clear`` dilates clouds and shadows.

    Returns:
        The :class:`~dsen2cr.scene.pipeline.MaskSpec`: threshold, scene-wide shadow statistics
        (over valid pixels) and margin.
    """
    return MaskSpec(threshold, scene_shadow_statistics(inputs), margin)


def open_inputs(s2: str | os.PathLike[str], s1: str | os.PathLike[str] | None,
                network: LoadedNetwork | None, options: PredictOptions) -> tuple[S2Scene, S1Source | None]:  # fmt: skip
    """Open and check a scene's inputs: S2, and S1 on its grid when the network uses SAR.

    Implausible inputs (8-bit or reflectance-valued S2, S1 in the wrong unit) are logged as one
    ``warning:`` line each; S1 given to a network without SAR is ignored with a note.

    Args:
        s2: the S2 input (GeoTIFF, ``.SAFE`` or ``.zip``).
        s1: the S1 input, or None.
        network: the network (None: the mask alone, no S1 is opened).
        options: the run's options (``band_check``, ``s1_linear``).

    Returns:
        The S2 scene and its S1 source (None without SAR).

    Raises:
        DSen2CRError: a missing or unreadable input, S2 bands out of order (unless
            ``options.band_check`` is False), SAR weights without S1, S1 not overlapping.
    """
    scene = open_s2(s2)
    problem = band_order_problem(scene) if options.band_check else None
    if problem is not None:
        raise DataError(problem.template, **problem.params)
    s1src = None
    if network is not None and network.uses_sar:
        if s1 is None:
            raise DSen2CRError("the weights use SAR (sar_channels=2): give the Sentinel-1 image ({s1})",
                               s1=None)  # fmt: skip
        s1src = open_s1(s1, scene, linear=options.s1_linear)
    for warning in implausible_s2(scene) + (implausible_s1(s1src) if s1src else []):
        log.warning("warning: %s", warning)
    _warn_synthetic_weights(network, scene)
    if network is not None and s1src is None and s1 is not None:
        log.warning("note: the weights do not use SAR; ignoring the S1 input %s", s1)
    return scene, s1src


_WARNED: set[str] = set()


def _warn_synthetic_weights(network: LoadedNetwork | None, scene: S2Scene) -> None:
    """One warning line per process and network when weights trained on synthetic data meet real
    imagery (an input that ``synth-data`` did not make)."""
    if network is None or not trained_on_synthetic(network.info) or network.digest in _WARNED:
        return
    if scene.kind == "geotiff" and is_synthetic(scene.path):
        return
    _WARNED.add(network.digest)
    log.warning("warning: the weights %s were trained on synthetic data: they test the pipeline "
                "but blur and tint real imagery; for real scenes use the authors' weights "
                "(README, 'Your own scene')", network.name)


def run_scene(
    s2: str | os.PathLike[str],
    s1: str | os.PathLike[str] | None,
    network: LoadedNetwork | None,
    outputs: SceneOutputs,
    options: PredictOptions,
    *,
    overwrite: bool = False,
    title: str | None = None,
) -> dict[str, Any]:
    """Run one scene into its files (see the module docs).

    Args:
        s2: cloudy Sentinel-2 L1C (13-band GeoTIFF in DN, ``.SAFE`` folder or ``.zip``).
        s1: Sentinel-1 VV/VH in dB (or linear with ``options.s1_linear``), for SAR networks.
        network: the network (None: the cloud mask alone).
        outputs: the files to write; every one appears only when all are complete, and none
            (nor any staging file) is left after a failure or an interrupt.
        options: tiling, device, precision, threads, ...
        overwrite: replace outputs that exist (else they are an error). An output that is an
            input, or another output, is always refused.
        title: label of the progress bar and the preview (default: the scene's name).

    Returns:
        The summary: inputs, outputs, grid, device, precision, tiling, pixel fractions and
        timing: ``seconds`` (the mask statistics pass and the tile loop), ``cog_seconds`` (laying
        out the COGs after the last tile), ``startup_seconds`` (opening and checking inputs
        before the first tile), ``wall_seconds`` (the whole run), ``stages`` (seconds per stage
        summed over threads, :data:`~dsen2cr.scene.stages.STAGES`), ``megapixels_per_s``.

    Raises:
        DSen2CRError: bad inputs or options, outputs that exist or are inputs, a result without
            a single valid pixel.
    """
    t_start = time.perf_counter()
    check_outputs(outputs, [s2, s1, network.path if network is not None else None], overwrite)
    scene, s1src = open_inputs(s2, s1, network, options)
    plan = _plan_run(scene, s1src, network, outputs, options, title)
    clock = StageClock()
    inputs = FileInputs(scene, s1src, threads=plan.threads)
    with bounded_gdal(plan.threads), contextlib.ExitStack() as stack:
        mask = None
        if plan.want_mask:
            with clock.time("statistics"):
                mask = mask_spec(inputs, options.threshold, plan.margin)
        compiled = network is not None and network.speed.compile  # one input shape per process
        computer = TileComputer(network, plan.device, plan.precision, mask,
                                pad_batch=plan.batch if compiled else None, dn=True)  # fmt: skip
        # every output is renamed into place when the block ends without an error
        staged = {k: stack.enter_context(atomic_output(p)) if p is not None else None
                  for k, p in (("out", outputs.out), ("mask", outputs.mask_out),
                               ("preview", outputs.preview))}  # fmt: skip
        sink = _scene_sink(plan, staged["out"], staged["mask"], mask is not None, clock)
        t_loop = time.perf_counter()
        timing, cog_seconds = _write_tiles(plan, inputs, computer, sink, clock)
        if staged["preview"] is not None and sink.preview is not None:
            sink.preview.write(staged["preview"], plan.label)
    seconds = _Seconds(t_start, t_loop, cog_seconds, clock.seconds())
    return _summary(plan, timing, sink.counters, mask is not None, seconds)


@dataclass(frozen=True)
class _RunPlan:
    """What one scene run does (:func:`_plan_run`): its inputs, outputs, device and tiling.

    Attributes:
        device: where the network (or the mask) runs.
        precision: the precision there (``"fp32"`` without a network).
        threads: GDAL and writer threads (:meth:`PredictOptions.threads_here`).
        batch: tiles per batch.
        keep_clear: the input is kept where clear (``options.keep_clear`` with a network).
        want_mask: the cloud mask is computed (a mask output, a preview, no network, or
            ``keep_clear``).
        label: the progress bar's and the preview's title.
    """

    scene: S2Scene
    s1: S1Source | None
    network: LoadedNetwork | None
    outputs: SceneOutputs
    options: PredictOptions
    device: torch.device
    precision: str
    threads: int
    batch: int
    keep_clear: bool
    want_mask: bool
    label: str

    @property
    def margin(self) -> int:
        """Pixels by which ``keep_clear`` grows clouds and shadows (0 without it)."""
        return self.options.clear_margin if self.keep_clear else 0


def _plan_run(scene: S2Scene, s1: S1Source | None, network: LoadedNetwork | None,
              outputs: SceneOutputs, options: PredictOptions, title: str | None) -> _RunPlan:  # fmt: skip
    """The :class:`_RunPlan` of a scene, its tiles checked to fit in memory.

    Raises:
        OptionError: a batch of tile windows does not fit (:func:`check_tile_fits`).
    """
    dev = network.device if network is not None else resolve_device(options.device)
    keep = options.keep_clear and network is not None
    want_mask = outputs.mask_out is not None or outputs.preview is not None or network is None or keep
    plan = _RunPlan(
        scene=scene, s1=s1, network=network, outputs=outputs, options=options, device=dev,
        precision=options.precision_on(dev) if network is not None else "fp32",
        threads=options.threads_here(), batch=options.batch_for(dev), keep_clear=keep,
        want_mask=want_mask, label=title or scene.name,
    )  # fmt: skip
    halo = tile_halo(network, plan.margin if want_mask else None)
    check_tile_fits(options.tile, halo, plan.batch, network, dev, max(scene.height, scene.width))
    return plan


def _scene_sink(plan: _RunPlan, out: Path | None, mask: Path | None, masked: bool,
                clock: StageClock) -> SceneSink:  # fmt: skip
    """The file sink of a run, writing to the staging files ``out`` and ``mask``."""
    scene, network, options, outputs = plan.scene, plan.network, plan.options, plan.outputs
    return SceneSink(
        scene.grid, prediction=out, mask=mask, finals=(outputs.out, outputs.mask_out),
        compress=options.compress,
        tags=prediction_tags(scene, plan.s1, network, options) if network is not None else {},
        mask_tags=mask_tags(scene, options.threshold), preview=outputs.preview is not None,
        with_sar=plan.s1 is not None, with_mask=masked, clock=clock,
        keep_clear=options.clear_margin if plan.keep_clear else None,
    )  # fmt: skip


def _write_tiles(plan: _RunPlan, inputs: FileInputs, computer: TileComputer, sink: SceneSink,
                 clock: StageClock) -> tuple[TileRun, float]:  # fmt: skip
    """Run every tile into ``sink`` and lay its COGs out; the COG files are removed if anything
    fails (or the scene has no valid pixel).

    Returns:
        The tile loop's :class:`~dsen2cr.scene.pipeline.TileRun` and the seconds of laying out
        the COGs after the last tile.
    """
    options = plan.options
    try:
        timing = run_tiles(inputs, computer, sink, tile=options.tile, batch=plan.batch,
                           readers=options.readers, workers=plan.threads, clock=clock,
                           progress=options.progress, desc=plan.label)  # fmt: skip
        check_valid(sink.counters, plan.scene, plan.s1)
        t_cog = time.perf_counter()
        sink.close()
    except BaseException:
        sink.abort()
        raise
    return timing, time.perf_counter() - t_cog


@dataclass(frozen=True)
class _Seconds:
    """When a run started and its tile loop began (``time.perf_counter``), the seconds of laying
    out the COGs, and the seconds per stage."""

    start: float
    loop: float
    cog: float
    stages: dict[str, float]


def _summary(plan: _RunPlan, timing: TileRun, counters: Counters, masked: bool,
             seconds: _Seconds) -> dict[str, Any]:  # fmt: skip
    """The summary :func:`run_scene` returns (JSON-able; see its docs)."""
    scene, s1src, outputs = plan.scene, plan.s1, plan.outputs
    n = scene.height * scene.width
    stats_seconds = seconds.stages.get("statistics", 0.0)
    loop = timing["seconds"] + stats_seconds
    summary: dict[str, Any] = {
        "s2": str(scene.path),
        "s1": str(s1src.path) if s1src is not None else None,
        "out": _str(outputs.out),
        "mask_out": _str(outputs.mask_out),
        "preview": _str(outputs.preview),
        "width": scene.width,
        "height": scene.height,
        "crs": str(scene.crs) if scene.crs is not None else None,
        "device": str(plan.device),
        "precision": plan.precision if plan.network is not None else None,
        "batch": plan.batch,
        "threads": plan.threads,
        **timing,
        "seconds": loop,
        "tiles_per_s": timing["tiles"] / loop if loop > 0 else float("inf"),
        "megapixels_per_s": n / 1e6 / loop if loop > 0 else 0.0,
        "statistics_seconds": stats_seconds,
        "cog_seconds": seconds.cog,
        "startup_seconds": seconds.loop - seconds.start - stats_seconds,
        "wall_seconds": time.perf_counter() - seconds.start,
        "stages": seconds.stages,
        "nodata_fraction": counters.nodata / n,
    }
    if masked:
        summary["cloud_fraction"] = counters.cloud / n
        summary["shadow_fraction"] = counters.shadow / n
        summary["clear_fraction"] = (n - counters.nodata - counters.cloud - counters.shadow) / n
    return summary


def _str(p: Path | None) -> str | None:
    return str(p) if p is not None else None
