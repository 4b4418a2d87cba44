"""Batches of scenes: many processes, one job, resumable, one bad scene stopping nothing.

``dsen2cr predict`` with several S2 inputs (paths, quoted globs, or a ``--pairs`` file) writes
into folders: ``<name>_dsen2cr.tif``, ``<name>_mask.tif``, ``<name>_preview.png``. It is built
to run for days on a cluster without supervision:

* **Many processes.** Under ``torchrun``, ``srun`` or a job array each process takes a fixed
  share of the sorted scene list (:mod:`dsen2cr.scene.launch`) and never waits for another; its
  GPU comes from its local rank. A single process on a machine with several GPUs starts one
  worker process per GPU, each with its own fixed share.
* **Explicit pairing.** S1 goes with S2 by a checked rule (:mod:`dsen2cr.scene.pairing`): a
  pairs file, or the S1 image covering most of the scene's footprint. A scene without an S1
  is reported, not shifted onto another one's.
* **Resumable.** A scene whose outputs already exist, made with the same weights (the digest of
  the network, :func:`dsen2cr.models.network_digest`), the same output options
  (:meth:`PredictOptions.fingerprint`) and the same inputs (by file name), as recorded in their
  GeoTIFF metadata, is skipped; ``overwrite`` redoes it. An output made otherwise is never
  replaced without ``overwrite``: that scene fails with the reason.
* **One process per scene.** Each scene is claimed before it is predicted
  (:mod:`dsen2cr.scene.claims`): a second launch of the same batch on the same folder (a job
  resubmitted while the first still runs) skips the scenes another live process is predicting
  (status ``busy``) and takes the others.
* **Failures stay local.** A scene that fails is reported with its one-line reason and the rest
  go on; :attr:`BatchResult.ok` is False at the end (``dsen2cr predict`` exits with status 1).
* **Manifest and progress.** Every process appends one JSON line per scene to the manifest
  (:mod:`dsen2cr.scene.manifest`), prints one progress line per scene on stderr and a final
  summary line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import rasterio
import torch
import torch.multiprocessing as mp

from dsen2cr.errors import DataError, DSen2CRError, OptionError, one_line
from dsen2cr.io import file_identity, guard_outputs
from dsen2cr.models import load_weights
from dsen2cr.scene.claims import Claims
from dsen2cr.scene.launch import Shard, shard_from_env
from dsen2cr.scene.manifest import Manifest
from dsen2cr.scene.network import LoadedNetwork, load_network
from dsen2cr.scene.pairing import Pair, expand_inputs, pair_by_footprint, read_pairs
from dsen2cr.scene.run import PredictOptions, SceneOutputs, run_scene

__all__ = ["BatchResult", "plan_batch", "plan_predict", "predict_batch"]

MANIFEST_NAME = "manifest.jsonl"
"""Default manifest file name, in the output folder."""


@dataclass
class BatchResult:
    """What one process (or the worker processes it started) did.

    Attributes:
        records: one manifest record per scene of the share(s), in order.
        shard: this process's share.
        manifest: the manifest file.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    shard: Shard = field(default_factory=Shard)
    manifest: Path | None = None

    def count(self, status: str) -> int:
        """Number of scenes with this status.

        Args:
            status: ``done``, ``skipped``, ``busy`` or ``failed``.
        """
        return sum(r["status"] == status for r in self.records)

    @property
    def ok(self) -> bool:
        """No scene failed."""
        return self.count("failed") == 0


@dataclass(frozen=True)
class _Outputs:
    out: Path
    mask: Path | None
    preview: Path | None


@dataclass(frozen=True)
class _Batch:
    """What every share of a batch has in common (picklable: local worker processes get it).

    Attributes:
        scenes: every scene of the batch, sorted (:func:`plan_batch`).
        s1_candidates: S1 images to match by footprint, or None (pairs given, or no S1).
        weights: the weight file.
        out_dir: folder of the predictions.
        mask_dir: folder of the masks, or None.
        preview_dir: folder of the previews, or None.
        overwrite: redo scenes whose outputs exist.
        manifest: the manifest file.
        quiet: no progress lines.
    """

    scenes: list[Pair]
    s1_candidates: list[Path] | None
    weights: Path
    out_dir: Path
    mask_dir: Path | None
    preview_dir: Path | None
    overwrite: bool
    manifest: Path
    quiet: bool


def plan_batch(
    s2: Sequence[str | os.PathLike[str]] | None = None,
    pairs: str | os.PathLike[str] | None = None,
) -> list[Pair]:
    """Every scene of a batch, sorted by S2 path (S1 not yet matched for globs).

    Args:
        s2: S2 paths or glob patterns.
        pairs: a pairs file instead (see :func:`dsen2cr.scene.pairing.read_pairs`).

    Raises:
        DataError: nothing to predict, a pattern without matches, or two scenes with the same
            name and no explicit output (their outputs would collide).
    """
    if (s2 is None) == (pairs is None):
        raise OptionError("s2", "give the S2 inputs or a pairs file (one of them)")
    scenes = read_pairs(pairs) if pairs is not None else [Pair(p) for p in expand_inputs(s2 or [], "S2 image")]
    scenes = sorted(scenes, key=lambda p: str(p.s2))
    if not scenes:
        raise DataError("no S2 scene to predict")
    names: dict[str, Path] = {}
    for p in scenes:
        if p.name in names:
            hint = "give each its own out in the {pairs} file" if pairs else "give outputs in a {pairs} file"
            raise DataError(f"{p.s2} and {names[p.name]} would both write outputs named "
                            f"{p.name!r} (prediction, mask, preview, manifest record); {hint}",
                            pairs=None)  # fmt: skip
        names[p.name] = p.s2
    return scenes


def _check_outputs_are_not_inputs(scenes: list[Pair], extra_inputs: Sequence[Path],
                                  outs: list[_Outputs]) -> None:  # fmt: skip
    """No output of the batch may be an input of the batch (any scene's S2 or S1)."""
    inputs = {file_identity(q): q for p in scenes for q in (p.s2, p.s1) if q is not None}
    inputs.update({file_identity(q): q for q in extra_inputs})
    for o in outs:
        for path in (o.out, o.mask, o.preview):
            if path is not None and file_identity(path) in inputs:
                raise OptionError("out", f"{path} is the input {inputs[file_identity(path)]}; "
                                  "choose another output path")  # fmt: skip


def _outputs(pair: Pair, out_dir: Path, mask_dir: Path | None, preview_dir: Path | None) -> _Outputs:
    return _Outputs(
        pair.out or out_dir / f"{pair.name}_dsen2cr.tif",
        mask_dir / f"{pair.name}_mask.tif" if mask_dir else None,
        preview_dir / f"{pair.name}_preview.png" if preview_dir else None,
    )


def _tags(path: Path) -> dict[str, str] | None:
    try:
        with rasterio.open(path) as src:
            return dict(src.tags())
    except rasterio.errors.RasterioError:
        return None


def _made_from(tags: dict[str, str], key: str, path: Path | None) -> bool:
    """Whether an output's input tag (``DSEN2CR_S2``/``_S1``) names this input, by file name
    (mounts differ between the nodes of a cluster); an empty tag means none."""
    return Path(tags.get(key, "")).name == (path.name if path is not None else "")


def _own_mask(path: Path, pair: Pair, opts: PredictOptions) -> bool:
    """Whether a mask file was made by dsen2cr from this S2 input with this threshold."""
    tags = _tags(path) or {}
    return (_made_from(tags, "DSEN2CR_S2", pair.s2)
            and tags.get("DSEN2CR_THRESHOLD") == str(opts.threshold))  # fmt: skip


def _existing(outs: _Outputs, pair: Pair, s1: Path | None, network: LoadedNetwork,
              opts: PredictOptions) -> tuple[str, str]:  # fmt: skip
    """``("missing" | "complete" | "partial" | "other", reason)`` of a scene's outputs.

    ``complete``: every output exists and was made with these weights, options and inputs;
    ``partial``: the prediction was, but the mask or the preview is missing (they are redone);
    ``other``: an output exists that was made otherwise (or not by dsen2cr).
    """
    if not outs.out.exists():
        if outs.preview is not None and outs.preview.exists():
            return "other", f"{outs.preview} exists but its prediction {outs.out} does not"
        if outs.mask is not None and outs.mask.exists():
            if not _own_mask(outs.mask, pair, opts):
                return "other", f"{outs.mask} exists, made from another input or threshold"
            return "partial", ""  # a run stopped between its outputs: the mask is redone
        return "missing", ""
    tags = _tags(outs.out) or {}
    want = {
        "DSEN2CR_WEIGHTS_SHA256": network.digest,
        "DSEN2CR_OPTIONS": json.dumps(opts.fingerprint(network.device), sort_keys=True),
    }
    for key, value in want.items():
        if tags.get(key) != value:
            what = "weights" if "WEIGHTS" in key else "options"
            return "other", (f"{outs.out} exists, made with other {what}" if key in tags else
                             f"{outs.out} exists and is not a dsen2cr prediction of this version")  # fmt: skip
    if not _made_from(tags, "DSEN2CR_S2", pair.s2):
        return "other", f"{outs.out} exists, made from another S2 input ({tags.get('DSEN2CR_S2')})"
    if not _made_from(tags, "DSEN2CR_S1", s1):
        return "other", f"{outs.out} exists, made with another S1 input ({tags.get('DSEN2CR_S1') or 'none'})"
    state = "complete"
    if outs.mask is not None:
        if not outs.mask.exists():
            state = "partial"
        elif not _own_mask(outs.mask, pair, opts):
            return "other", f"{outs.mask} exists, made from another input or threshold"
    if outs.preview is not None and not outs.preview.exists():
        state = "partial"
    return state, ""


def _megapixels(path: Path) -> float | None:
    try:
        with rasterio.open(path) as src:
            return src.width * src.height / 1e6
    except rasterio.errors.RasterioError:
        return None


def _progress(shard: Shard, k: int, n: int, rec: dict[str, Any], quiet: bool) -> None:
    if quiet:
        return
    tail = f"- {rec['error']}" if rec["status"] in ("failed", "busy") else f"in {rec['seconds']:.1f} s"
    if rec["status"] == "done" and rec.get("megapixels"):
        tail += f" ({rec['megapixels'] / max(rec['seconds'], 1e-9):.2f} MP/s)"
    print(f"{shard.prefix} {k}/{n} {rec['scene']}: {rec['status']} {tail}", file=sys.stderr, flush=True)


def _run_share(
    batch: _Batch,
    opts: PredictOptions,
    shard: Shard,
    network: LoadedNetwork | None = None,
) -> list[dict[str, Any]]:
    """Predict this process's share, one scene at a time, with the network loaded once (see the
    module docs)."""
    mine = shard.take(batch.scenes)
    quiet = batch.quiet
    log = Manifest(batch.manifest)
    log.append({"event": "start", "rank": shard.index, "shard": f"{shard.index}/{shard.count}",
                "source": shard.source, "host": shard.host, "pid": os.getpid(),
                "device": opts.device, "weights": str(batch.weights),
                "scenes": [p.name for p in mine]})  # fmt: skip
    network = load_network(network or batch.weights, opts.device, opts.speed)
    if batch.s1_candidates is not None and mine:
        matched = pair_by_footprint([p.s2 for p in mine], batch.s1_candidates)
        mine = [replace(m, out=p.out) for m, p in zip(matched, mine, strict=True)]
        if not quiet:
            for m in mine:
                if m.s1 is not None:
                    print(f"{shard.prefix} {m.name}: "
                          f"S1 {m.s1.name} covers {100 * (m.overlap or 0):.0f} % of it",
                          file=sys.stderr, flush=True)  # fmt: skip
    records = []
    t_start = time.perf_counter()
    with Claims() as claims:
        for k, pair in enumerate(mine, start=1):
            outs = _outputs(pair, batch.out_dir, batch.mask_dir, batch.preview_dir)
            rec = _scene(pair, outs, network, opts, batch.overwrite, shard, claims, log)
            records.append(rec)
            _progress(shard, k, len(mine), rec, quiet)
    if not quiet:
        counts = {s: sum(r["status"] == s for r in records) for s in ("done", "skipped", "busy", "failed")}
        print(f"{shard.prefix} finished {len(records)} scene(s) in "
              f"{time.perf_counter() - t_start:.1f} s: "
              + ", ".join(f"{s} {n}" for s, n in counts.items() if n or s != "busy")
              + f"; manifest {batch.manifest}", file=sys.stderr, flush=True)  # fmt: skip
    return records


def _scene(pair: Pair, outs: _Outputs, network: LoadedNetwork, opts: PredictOptions,
           overwrite: bool, shard: Shard, claims: Claims, log: Manifest) -> dict[str, Any]:  # fmt: skip
    """Predict (or skip) one scene of the share and log its manifest record."""
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"scene": pair.name, "status": "failed", "seconds": 0.0,
                           "megapixels": None, "out": str(outs.out), "error": None,
                           "rank": shard.index, "host": shard.host, "s2": str(pair.s2),
                           "s1": str(pair.s1) if pair.s1 else None}  # fmt: skip
    with claims.claim(outs.out) as holder:
        if holder is not None:  # another launch predicts it right now
            rec.update(status="busy", error=f"being predicted by {holder.get('host')} "
                                            f"process {holder.get('pid')}")  # fmt: skip
        else:
            _predict_scene(pair, outs, network, opts, overwrite, rec)
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        try:  # logged while the claim is held: a "busy" line of another launch comes before
            log.append(rec)
        except OSError as exc:  # the scenes still go on; the record is returned and printed
            print(f"warning: cannot append to the manifest {log.path}: {one_line(exc)}",
                  file=sys.stderr, flush=True)  # fmt: skip
    return rec


def _predict_scene(pair: Pair, outs: _Outputs, network: LoadedNetwork, opts: PredictOptions,
                   overwrite: bool, rec: dict[str, Any]) -> None:  # fmt: skip
    """Predict one claimed scene unless its outputs are complete; fills ``rec``."""
    try:
        if pair.error:
            raise DSen2CRError(pair.error)
        if network.uses_sar and pair.s1 is None:
            raise DSen2CRError(f"no S1 for this scene: {pair.note or 'none given'}")
        s1 = pair.s1 if network.uses_sar else None
        state, reason = ("missing", "") if overwrite else _existing(outs, pair, s1, network, opts)
        if state == "other":
            raise DSen2CRError(f"{reason}: add {{overwrite}} to replace it", overwrite=True)
        if state == "complete":
            rec.update(status="skipped", megapixels=_megapixels(outs.out))
        else:
            summary = run_scene(pair.s2, s1, network, SceneOutputs(outs.out, outs.mask, outs.preview),
                                opts, overwrite=overwrite or state == "partial")  # fmt: skip
            rec.update(status="done", megapixels=summary["width"] * summary["height"] / 1e6)
    except (DSen2CRError, OSError, rasterio.errors.RasterioError) as exc:
        rec["error"] = one_line(exc)
    except Exception as exc:  # a bug must not stop the other scenes either
        rec["error"] = f"{type(exc).__name__}: {one_line(exc)}"


def _local_worker(job: tuple[_Batch, PredictOptions, Shard]) -> list[dict[str, Any]]:
    """One local worker process: its device (in its options), its share."""
    batch, opts, shard = job
    if opts.device.startswith("cuda"):
        torch.cuda.set_device(opts.device)  # no context on GPU 0 from every worker
    return _run_share(batch, opts, shard)


def predict_batch(
    s2: Sequence[str | os.PathLike[str]] | None,
    weights: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    s1: Sequence[str | os.PathLike[str]] | None = None,
    *,
    pairs: str | os.PathLike[str] | None = None,
    mask_dir: str | os.PathLike[str] | None = None,
    preview_dir: str | os.PathLike[str] | None = None,
    options: PredictOptions | None = None,
    overwrite: bool = False,
    manifest: str | os.PathLike[str] | None = None,
    shard: Shard | None = None,
    devices: Sequence[str] | None = None,
    quiet: bool = False,
) -> BatchResult:
    """Predict a batch of scenes: this process's share of it (see the module docs).

    Args:
        s2: S2 inputs (paths or glob patterns), or None with ``pairs``.
        weights: the weight file (any format :func:`dsen2cr.models.load_weights` reads).
        out_dir: folder of the predictions ``<name>_dsen2cr.tif`` (a pairs file's ``out`` column
            overrides it per scene).
        s1: S1 candidates (paths or globs), matched to each scene by footprint.
        pairs: a pairs file (``s2,s1[,out]``) instead of ``s2`` and ``s1``.
        mask_dir: folder of the masks ``<name>_mask.tif`` (None: none).
        preview_dir: folder of the previews ``<name>_preview.png`` (None: none).
        options: the options of :func:`~dsen2cr.scene.predict.predict`.
        overwrite: redo scenes whose outputs exist, whatever made them.
        manifest: the manifest file (default ``out_dir/manifest.jsonl``).
        shard: this process's share (default: from the launcher's environment,
            :func:`dsen2cr.scene.launch.shard_from_env`).
        devices: devices of local worker processes, one process and one fixed sub-share of this
            process's share each (default: every GPU when the device is auto or cuda and there
            are several). A process a launcher started per GPU (torchrun, srun: it has a local
            rank) uses its own GPU alone (``devices[local_rank % len(devices)]`` when given).
        quiet: no progress lines on stderr (and no tile progress bars).

    Returns:
        A :class:`BatchResult`; ``ok`` is False when some scene failed.

    Raises:
        DSen2CRError: problems of the whole batch (no scene, colliding names, unreadable
            weights or pairs file); problems of one scene are recorded instead.
    """
    opts = options or PredictOptions()
    batch = _plan_folders(s2, weights, out_dir, s1, pairs, mask_dir, preview_dir, overwrite,
                          manifest, quiet)  # fmt: skip
    me = shard_from_env(explicit=shard)
    _check_outputs_are_not_inputs(
        batch.scenes, [*(batch.s1_candidates or []), batch.weights],
        [_outputs(p, batch.out_dir, batch.mask_dir, batch.preview_dir) for p in batch.scenes])  # fmt: skip
    cuda = torch.cuda.device_count() if opts.device in ("auto", "cuda") else 0
    sar_given = bool(s1) or pairs is not None
    if devices is None and cuda > 1 and me.local_rank is None:
        devices = [f"cuda:{i}" for i in range(cuda)]
    if me.local_rank is not None or not devices or len(devices) == 1:
        return _predict_here(batch, opts, me, devices, cuda, sar_given)
    _check_sar(bool(getattr(load_weights(weights), "uses_sar", False)), sar_given)
    return _predict_on_workers(batch, opts, me, devices)


def _plan_folders(
    s2: Sequence[str | os.PathLike[str]] | None,
    weights: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    s1: Sequence[str | os.PathLike[str]] | None,
    pairs: str | os.PathLike[str] | None,
    mask_dir: str | os.PathLike[str] | None,
    preview_dir: str | os.PathLike[str] | None,
    overwrite: bool,
    manifest: str | os.PathLike[str] | None,
    quiet: bool,
) -> _Batch:
    """The scenes and folders of a batch (:func:`predict_batch`'s arguments), checked before
    anything is predicted.

    Raises:
        DSen2CRError: no scene, colliding names, an output folder that cannot be written.
    """
    scenes = plan_batch(s2 if pairs is None else None, pairs)
    out = Path(out_dir)
    guard_outputs({"out": out, "mask_out": mask_dir, "preview": preview_dir},
                  [weights, pairs], overwrite=True,
                  folders=["out", "mask_out", "preview"])  # fmt: skip
    log = Path(manifest) if manifest is not None else out / MANIFEST_NAME
    candidates = expand_inputs(s1, "S1 image") if (s1 and pairs is None) else None
    masks = Path(mask_dir) if mask_dir else None
    previews = Path(preview_dir) if preview_dir else None
    return _Batch(scenes, candidates, Path(weights), out, masks, previews, overwrite, log, quiet)


def _predict_here(batch: _Batch, opts: PredictOptions, me: Shard, devices: Sequence[str] | None,
                  cuda: int, sar_given: bool) -> BatchResult:  # fmt: skip
    """This process's share in this process, on one device: its launcher's GPU (torchrun,
    srun: a local rank), the one device given, or ``opts.device``."""
    if me.local_rank is not None:  # one process per GPU already (torchrun, srun)
        device = devices[me.local_rank % len(devices)] if devices else me.device(opts.device, cuda)
        one = replace(opts, device=device, progress=False)
    else:
        single = me.count == 1
        one = replace(opts, device=devices[0] if devices else opts.device,
                      progress=opts.progress and not batch.quiet and single)  # fmt: skip
    # a bad weight file, or SAR weights without any S1, is one error for the whole batch
    network = load_network(batch.weights, one.device, one.speed)
    _check_sar(network.uses_sar, sar_given)
    return BatchResult(_run_share(batch, one, me, network), me, batch.manifest)


def _predict_on_workers(batch: _Batch, opts: PredictOptions, me: Shard,
                        devices: Sequence[str]) -> BatchResult:  # fmt: skip
    """This process's share in one worker process per device, each a fixed sub-share of it."""
    n = len(devices)
    jobs = [(batch, replace(opts, device=d, progress=False),
             Shard(me.index * n + i, me.count * n, i,
                   "local" if me.source == "single" else f"{me.source} x local"))
            for i, d in enumerate(devices)]  # fmt: skip
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        parts = list(pool.map(_local_worker, jobs))
    order = {p.name: i for i, p in enumerate(batch.scenes)}
    records = sorted((r for part in parts for r in part), key=lambda r: order[r["scene"]])
    return BatchResult(records, me, batch.manifest)


def _check_sar(uses_sar: bool, sar_given: bool) -> None:
    if uses_sar and not sar_given:
        raise DSen2CRError("the weights use SAR (sar_channels=2): give the S1 images ({s1}) or "
                           "a pairs file ({pairs})", s1=None, pairs=None)  # fmt: skip


def plan_predict(
    s2: Sequence[str | os.PathLike[str]] | None,
    s1: Sequence[str | os.PathLike[str]] | None,
    out: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None = None,
    mask_out: str | os.PathLike[str] | None = None,
    preview: str | os.PathLike[str] | None = None,
    pairs: str | os.PathLike[str] | None = None,
    shard: Shard | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path | None] | None:
    """What ``dsen2cr predict`` predicts: one scene into the file ``out``, or a batch.

    One S2 input (after glob expansion), no pairs file, no launcher's share and an ``out`` that
    is not an existing folder: a single scene, predicted by :func:`~dsen2cr.scene.predict`
    (its outputs are checked here first: :func:`dsen2cr.io.guard_outputs`). Otherwise a batch
    into folders (:func:`predict_batch`).

    Args:
        s2: S2 inputs (paths or glob patterns), or None with ``pairs``.
        s1: S1 inputs (paths or glob patterns), or None.
        out: the prediction file of a single scene, or the folder of a batch.
        weights: the weight file (an output may not be it).
        mask_out: the mask file of a single scene (a folder for a batch), or None.
        preview: the preview file of a single scene (a folder for a batch), or None.
        pairs: a pairs file (always a batch).
        shard: an explicit share of a batch (always a batch).
        overwrite: outputs that exist may be replaced.

    Returns:
        ``(s2, s1)`` of the single scene (``s1`` None when not given), or None for a batch.

    Raises:
        DSen2CRError: one S2 with several S1; single-scene outputs that exist or are inputs; a
            single scene's ``out`` that is not a ``.tif`` file, or a batch's ``out`` that is one.
    """
    scenes = expand_inputs(s2, "S2 image") if s2 is not None and pairs is None else []
    target = Path(out)
    launched = shard is not None or shard_from_env().count > 1
    if len(scenes) == 1 and pairs is None and not target.is_dir() and not launched:
        sars = expand_inputs(s1, "S1 image") if s1 else []
        if len(sars) > 1:
            raise DSen2CRError(f"one S2 scene but {len(sars)} S1 images: give one S1 per S2")
        guard_outputs({"out": target, "mask_out": mask_out, "preview": preview},
                      [scenes[0], *sars, weights], overwrite=overwrite)  # fmt: skip
        if target.suffix.lower() not in (".tif", ".tiff"):
            raise OptionError("out", f"{target}: expected a .tif file name (or an existing folder)")
        return scenes[0], sars[0] if sars else None
    if target.suffix.lower() in (".tif", ".tiff"):
        raise OptionError("out", f"must be a folder for a batch of scenes, not {target}")
    return None
