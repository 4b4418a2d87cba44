"""``dsen2cr train``: one config in, a run folder with checkpoints, logs and exported weights out.

Everything runs through PyTorch Lightning: checkpoints (every epoch, ``last`` and the best by
``val/loss``), resuming (model, optimiser state and epoch), TensorBoard + CSV logs, progress bar,
bf16 mixed precision and data-parallel training on several GPUs / nodes (DDP). Multi-process
jobs are started with Lightning's own launchers (``torchrun`` or SLURM ``srun``), nothing
home-made: every process runs the same ``dsen2cr train`` command.

What can be checked is checked before the Trainer starts (:func:`preflight`): the config (when it
is read), the resume checkpoint, and the data - the splits hold triplets and the crop fits the
patches. A run that fails or is interrupted before its first checkpoint leaves no run folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from dsen2cr.data.datamodule import SEN12MSCRDataModule
from dsen2cr.data.dataset import S2_DTYPES, open_patch
from dsen2cr.data.synthetic import is_synthetic
from dsen2cr.errors import ConfigError, DataError, DSen2CRError, InputNotFoundError
from dsen2cr.io import atomic_output, new_folders, remove_empty
from dsen2cr.models.weights import read_checkpoint, read_weights
from dsen2cr.training.base import CloudRemovalModule
from dsen2cr.training.config import DSen2CRLoss, TrainConfig, load_config
from dsen2cr.training.dsen2cr import DSen2CRModule
from dsen2cr.training.pix2pix import Pix2PixModule

log = logging.getLogger(__name__)

MODULES: dict[str, type[CloudRemovalModule]] = {"dsen2cr": DSen2CRModule, "pix2pix": Pix2PixModule}
"""The LightningModule of each model family (``model.name``)."""


def build_module(config: TrainConfig | Mapping[str, Any]) -> CloudRemovalModule:
    """The LightningModule of a config (:class:`DSen2CRModule` or :class:`Pix2PixModule`).

    Args:
        config: a :class:`TrainConfig` or its mapping (:func:`load_config`).
    """
    cfg = load_config(config)
    return MODULES[cfg.family.name](cfg)


def build_datamodule(config: TrainConfig) -> SEN12MSCRDataModule:
    """The SEN12MS-CR DataModule of a config's ``data`` section.

    Args:
        config: the run's config.

    Raises:
        DSen2CRError: ``data.root`` is unset or not a folder.
    """
    d = config.data
    if not d.root:
        raise DSen2CRError(
            "no training data: set data.root=/path/to/SEN12MS-CR (in the config or as an override)"
        )
    root = Path(d.root)
    if not root.is_dir():
        raise DSen2CRError(f"data.root {root} is not a folder (expected the SEN12MS-CR root)")
    return SEN12MSCRDataModule(
        **asdict(d) | {"root": root},
        pin_memory=torch.cuda.is_available(),
        persistent_workers=d.num_workers > 0,
    )


# --------------------------------------------------------------------------- train
@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        run_dir: the run folder ``<out.dir>/<out.name>``.
        best_checkpoint: Lightning checkpoint with the lowest ``val/loss`` (None without
            validation).
        last_checkpoint: checkpoint of the last finished epoch (``checkpoints/last.ckpt``).
        weights: the exported network: ``weights.safetensors`` (DSen2-CR) or
            ``generator.safetensors`` (pix2pix), for :func:`dsen2cr.models.load_weights`, made
            from the best checkpoint (else the last).
        history: one dict per epoch trained in this call: ``epoch``, ``train_loss``,
            ``val_loss``, ``val_<metric>``.
        config: the resolved config (also saved as ``run_dir/config.yaml``).
        module: the LightningModule holding the exported weights (on the CPU).
        global_zero: whether this process is the global rank 0 of the run.
    """

    run_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    weights: Path
    history: list[dict[str, float]] = field(default_factory=list, repr=False)
    config: TrainConfig | None = field(default=None, repr=False)
    module: CloudRemovalModule | None = field(default=None, repr=False)
    global_zero: bool = True


class _WriteConfig(L.Callback):
    """Saves the resolved config as ``run_dir/config.yaml`` (global rank 0, at fit start)."""

    def __init__(self, config: TrainConfig, path: Path) -> None:
        self.config = config
        self.path = path

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            with atomic_output(self.path) as tmp:
                tmp.write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=False))


def _resolve_resume(resume: str | os.PathLike[str] | None, ckpt_dir: Path) -> Path | None:
    if resume is None or str(resume) == "":
        return None
    if str(resume) == "last":
        p = ckpt_dir / "last.ckpt"
        if not p.is_file():
            raise DSen2CRError(f"{{resume}}: no checkpoint {p} (was this run started?)", resume="last")
    else:
        p = Path(resume)
        if not p.is_file():
            raise InputNotFoundError(f"resume checkpoint not found: {p}")
    read_weights(p, format="checkpoint")  # a corrupt or foreign checkpoint is one line, now
    return p


def preflight(config: TrainConfig, datamodule: L.LightningDataModule) -> None:
    """Check the data before the Trainer starts (so a problem is one line, not an hour later).

    For a :class:`~dsen2cr.data.datamodule.SEN12MSCRDataModule`: the train split holds triplets,
    and the training crop fits the patches (read from the first triplet's cloudy image).

    Args:
        config: the run's config (``data.crop_size``, pixels).
        datamodule: the data to train on (other DataModules are not checked).

    Raises:
        DSen2CRError: a split without triplets, or a crop larger than the patches.
    """
    if not isinstance(datamodule, SEN12MSCRDataModule):
        return
    train_set = datamodule.dataset("train")
    if len(train_set) == 0:
        raise DataError(f"the train split of {config.data.root} holds no complete triplet")
    first = train_set.triplets[0]
    src = open_patch(first.s2_cloudy, "S2 cloudy image", 13, S2_DTYPES)
    with src:
        h, w = src.height, src.width
    crop = config.data.crop_size
    if crop is not None and crop > min(h, w):
        raise ConfigError(
            f"config key data.crop_size is {crop}, larger than the patches of {config.data.root} "
            f"({h} x {w}, e.g. {first.s2_cloudy})"
        )
    if len(datamodule.dataset("val")) == 0:
        log.warning("the val split of %s holds no triplet: no validation, the last checkpoint "
                    "is exported", config.data.root)  # fmt: skip


# --------------------------------------------------------------------------- console
_LIGHTNING_NOISE = re.compile(r"💡 Tip: |GPU available: |TPU available: ")
"""Lightning's rank-zero info lines that ``train`` drops: its advertisements (the litlogger and
litmodels tips) and the GPU / TPU availability lines. Its other lines and warnings are kept."""
_RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
"""The loggers of Lightning's ``rank_zero_info``."""
_LIGHTNING_DEPRECATION = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
"""torch's FutureWarning that Lightning's own pytree code (not ours) triggers on every fit."""


class _DropLightningNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _LIGHTNING_NOISE.match(record.getMessage())


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Within: Lightning's tips and accelerator lines and the LeafSpec deprecation it triggers
    are dropped (matched by message, and for the warning by Lightning's modules); everything
    else it logs or warns is kept. The filters are removed on exit."""
    noise = _DropLightningNoise()
    loggers = [logging.getLogger(name) for name in _RANK_ZERO_LOGGERS]
    for logger in loggers:
        logger.addFilter(noise)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_LIGHTNING_DEPRECATION, category=FutureWarning,
                                    module=r"(lightning|pytorch_lightning)\.")  # fmt: skip
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(noise)


class EpochProgressBar(TQDMProgressBar):
    """Lightning's progress bar with one bar for training: the validation and sanity-check
    passes inside ``fit`` get no bar of their own (their losses show on the epoch bar)."""

    def init_sanity_tqdm(self) -> Tqdm:
        """No bar for the sanity check."""
        return Tqdm(disable=True)

    def init_validation_tqdm(self) -> Tqdm:
        """No bar for validation."""
        return Tqdm(disable=True)


def _progress_bar(kwargs: Mapping[str, Any], callbacks: Sequence[L.Callback]) -> list[L.Callback]:
    """``[EpochProgressBar()]`` unless the bar is off or the caller brings a progress bar."""
    if not kwargs.get("enable_progress_bar", True) or any(
        isinstance(c, ProgressBar) for c in callbacks
    ):
        return []
    return [EpochProgressBar()]


def _global_rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def train(
    config: TrainConfig | Mapping[str, Any] | str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    datamodule: L.LightningDataModule | None = None,
    resume: str | os.PathLike[str] | None = None,
    callbacks: Sequence[L.Callback] = (),
) -> TrainResult:
    """Train DSen2-CR or pix2pix as configured; the Python side of ``dsen2cr train``.

    Writes into ``run_dir = <out.dir>/<out.name>``: ``config.yaml`` (resolved config),
    ``checkpoints/`` (``last.ckpt`` every epoch and the best by ``val/loss``,
    ``epochNNN.ckpt``), ``tensorboard/version_N`` and ``csv/version_N/metrics.csv`` logs (a new
    version per call), and the exported ``weights.safetensors`` (DSen2-CR) or
    ``generator.safetensors`` (pix2pix).

    The steps: :func:`_prepare_run` (run folder, resume checkpoint), the module and data
    (:func:`build_module`, :func:`build_datamodule`, :func:`preflight`), :func:`_fit` (the
    Lightning Trainer) and :func:`_export` (the best checkpoint's network as a weight file).

    Args:
        config: a :class:`~dsen2cr.training.TrainConfig`, a config file or mapping
            (:func:`~dsen2cr.training.load_config`).
        overrides: ``key.sub=value`` overrides.
        datamodule: data to train on; default: :class:`dsen2cr.data.datamodule.SEN12MSCRDataModule`
            built from the ``data`` section.
        resume: a Lightning checkpoint to continue from, or ``"last"`` for
            ``run_dir/checkpoints/last.ckpt``: restores weights, optimiser and scheduler state
            and the epoch counter (training continues up to ``trainer.max_epochs``).
        callbacks: extra Lightning callbacks.

    Returns:
        A :class:`TrainResult`.

    Raises:
        DSen2CRError: a bad config, missing data, a missing resume checkpoint, or a run folder
            that already holds checkpoints when neither ``resume`` nor ``out.overwrite`` is set.
    """
    cfg = load_config(config, overrides)
    created, resume_path = _prepare_run(cfg, resume)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = build_module(cfg)
    dm = datamodule if datamodule is not None else build_datamodule(cfg)
    preflight(cfg, dm)
    ckpt_cb = _checkpoint_callback(cfg.run_dir / "checkpoints")
    trainer = _fit(cfg, module, dm, ckpt_cb, resume_path, callbacks, created)
    return _export(cfg, module, trainer, ckpt_cb, given_datamodule=datamodule is not None)


def _prepare_run(
    cfg: TrainConfig, resume: str | os.PathLike[str] | None
) -> tuple[list[Path], Path | None]:
    """Check the resume checkpoint and the run folder before anything is built.

    Returns:
        The folders the run will create (removed again if it fails before its first
        checkpoint) and the checkpoint to resume from (None for a fresh run).

    Raises:
        DSen2CRError: a missing or unreadable resume checkpoint, or checkpoints already in the
            run folder when neither ``resume`` nor ``out.overwrite`` is set.
    """
    run_dir = cfg.run_dir
    ckpt_dir = run_dir / "checkpoints"
    created = new_folders(run_dir)  # removed again if the run fails before its first checkpoint
    resume_path = _resolve_resume(resume, ckpt_dir)
    existing = sorted(ckpt_dir.glob("*.ckpt")) if ckpt_dir.is_dir() else []
    if resume_path is None and existing:
        if not cfg.out.overwrite:
            raise DSen2CRError(
                f"run folder {run_dir} already has checkpoints: continue it with {{resume}}, "
                "start over with out.overwrite=true, or pick another out.name", resume="last",
            )
        if _global_rank() == 0:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
    return created, resume_path


def _checkpoint_callback(ckpt_dir: Path) -> ModelCheckpoint:
    """Checkpoints every epoch: ``last.ckpt`` and the best by ``val/loss``, ``epochNNN.ckpt``."""
    return ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="epoch{epoch:03d}",
        monitor="val/loss",
        mode="min",
        save_top_k=1,
        save_last=True,
        auto_insert_metric_name=False,
        every_n_epochs=1,
    )


def _fit(
    cfg: TrainConfig,
    module: CloudRemovalModule,
    dm: L.LightningDataModule,
    ckpt_cb: ModelCheckpoint,
    resume_path: Path | None,
    callbacks: Sequence[L.Callback],
    created: list[Path],
) -> L.Trainer:
    """Build the Lightning Trainer (TensorBoard and CSV loggers, checkpoints, progress bar) and
    fit ``module``; a run that fails before its first checkpoint leaves no run folder.

    Returns:
        The Trainer after ``fit``.
    """
    run_dir, ckpt_dir = cfg.run_dir, cfg.run_dir / "checkpoints"
    loggers = [
        TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", default_hp_metric=False),
        CSVLogger(save_dir=str(run_dir), name="csv"),
    ]
    kwargs = cfg.trainer.lightning_kwargs()
    with quiet_lightning():
        trainer = L.Trainer(
            default_root_dir=str(run_dir),
            logger=loggers,
            callbacks=[ckpt_cb, _WriteConfig(cfg, run_dir / "config.yaml"),
                       *_progress_bar(kwargs, callbacks), *callbacks],
            **kwargs,
        )  # fmt: skip
        try:
            trainer.fit(module, datamodule=dm, ckpt_path=str(resume_path) if resume_path else None)
        except BaseException:  # Lightning turns an interrupt into SystemExit(1)
            if created and trainer.is_global_zero and not any(ckpt_dir.glob("*.ckpt")):
                shutil.rmtree(run_dir, ignore_errors=True)  # nothing to resume: leave no debris
                remove_empty(created[1:])
            raise
    return trainer


def _training_info(cfg: TrainConfig, trainer: L.Trainer, given_datamodule: bool) -> dict[str, Any]:
    """What the exported weights record of their run (``training_info``, JSON values)."""
    info: dict[str, Any] = {
        "name": cfg.out.name,
        "model": cfg.family.name,
        "loss": cfg.loss.name,
        "sar": cfg.model.sar,
        "config": cfg.to_dict(),
        "epochs": int(trainer.current_epoch),
        "global_step": int(trainer.global_step),
        "framework": f"dsen2cr (PyTorch {torch.__version__}, Lightning {L.__version__})",
        "trained_on": trained_on(cfg, given_datamodule=given_datamodule),
    }
    if isinstance(cfg.loss, DSen2CRLoss):
        info["lam"] = cfg.loss.lam
    return info


def _export(
    cfg: TrainConfig,
    module: CloudRemovalModule,
    trainer: L.Trainer,
    ckpt_cb: ModelCheckpoint,
    given_datamodule: bool,
) -> TrainResult:
    """Load the best checkpoint (else the last) into ``module`` and export its network.

    The checkpoint is read by :func:`dsen2cr.models.weights.read_checkpoint` (no unpickling);
    the weight file is written by the global rank 0, then every process waits for it.
    """
    best = Path(ckpt_cb.best_model_path) if ckpt_cb.best_model_path else None
    last = Path(ckpt_cb.last_model_path) if ckpt_cb.last_model_path else None
    weights = cfg.run_dir / module.WEIGHTS_FILE
    source = best if best is not None and best.is_file() else last
    module = module.cpu()
    info = _training_info(cfg, trainer, given_datamodule)
    if source is not None and source.is_file():
        ckpt = read_checkpoint(source)
        module.load_state_dict(ckpt["state_dict"])
        info.update(
            checkpoint=source.name,
            epochs=int(ckpt.get("epoch", -1)) + 1,
            global_step=int(ckpt.get("global_step", 0)),
        )
        if ckpt_cb.best_model_score is not None and source == best:
            info["val_loss"] = float(ckpt_cb.best_model_score)
    if trainer.is_global_zero:
        module.export(weights, info)
    trainer.strategy.barrier()
    return TrainResult(
        run_dir=cfg.run_dir,
        best_checkpoint=best,
        last_checkpoint=last,
        weights=weights,
        history=list(module.history),
        config=cfg,
        module=module.eval(),
        global_zero=bool(trainer.is_global_zero),
    )


class TrainedOn(TypedDict, total=False):
    """What a run trained on (``training_info["trained_on"]``): ``kind`` is always there.

    Keys: ``kind`` (``"synthetic"``, ``"SEN12MS-CR"`` or ``"unknown"``), ``root``, ``split``,
    ``split_file`` and ``note``.
    """

    kind: str
    root: str
    split: str
    split_file: str | None
    note: str


def trained_on(cfg: TrainConfig, given_datamodule: bool = False) -> TrainedOn:
    """What a run trained on, recorded in its weights (``training_info["trained_on"]``).

    Synthetic data is recognised by the marker ``synth-data`` writes.

    Args:
        cfg: the run's config (its ``data`` section).
        given_datamodule: the data came as a DataModule in Python (then it is ``"unknown"``).

    Returns:
        ``{"kind": "synthetic" | "SEN12MS-CR" | "unknown", ...}`` with the data root, split and
        split file.
    """
    root = cfg.data.root
    if given_datamodule or not root:
        return {"kind": "unknown", "note": "a DataModule given in Python"}
    where: TrainedOn = {"root": str(root), "split": "train", "split_file": cfg.data.split_file}
    if is_synthetic(root):
        return {"kind": "synthetic", **where,
                "note": "synthetic scenes (dsen2cr synth-data): for testing, not real imagery"}  # fmt: skip
    return {"kind": "SEN12MS-CR", **where}


def describe(result: TrainResult) -> str:
    """One JSON line summarising a training run (printed by ``dsen2cr train``).

    Args:
        result: what :func:`train` returned.
    """
    last = result.history[-1] if result.history else {}
    return json.dumps(
        {
            "run_dir": str(result.run_dir),
            "weights": str(result.weights),
            "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
            "last_checkpoint": str(result.last_checkpoint) if result.last_checkpoint else None,
            "epochs_trained": len(result.history),
            "last_epoch": {k: v for k, v in last.items() if isinstance(v, int | float)},
        }
    )
