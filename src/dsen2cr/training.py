"""Training: the DSen2-CR LightningModule, configs, ``dsen2cr train`` and weight loading.

Everything runs through PyTorch Lightning: checkpoints (every epoch, ``last`` and the best by
``val/loss``), resuming (model, optimiser state and epoch), TensorBoard + CSV logs, progress bar,
bf16 mixed precision and data-parallel training on several GPUs / nodes (DDP). Multi-process
jobs are started with Lightning's own launchers (``torchrun`` or SLURM ``srun``), nothing
home-made: every process runs the same ``dsen2cr train`` command.

Config schema (YAML; see ``configs/README.md``; every key has a default, :data:`DEFAULTS`)::

    model:   name (dsen2cr | pix2pix), features, blocks, res_scale, sar (bool)
             pix2pix: ngf, ndf, num_downs, n_layers, dropout
    loss:    name (carl | l1), lam, cloud_threshold        pix2pix: lambda_l1, cloud_threshold
    optim:   lr, betas, eps, momentum_decay (NAdam)       pix2pix: lr, betas, n_epochs_init,
                                                           n_epochs_decay
    data:    root, batch_size, eval_batch_size, num_workers, crop_size, split_file, on_error, seed,
             with_mask (CPU masks of the whole patch instead of on-device crop masks), cache_dir
    trainer: any lightning.Trainer argument: max_epochs, accelerator, devices, num_nodes, strategy,
             precision ("auto" | "bf16-mixed" | "32-true" ...), limit_train_batches,
             limit_val_batches, log_every_n_steps, val_check_interval, num_sanity_val_steps, ...
    speed:   channels_last (true), compile (false)         DSen2-CR only; see dsen2cr.performance
    out:     dir, name, overwrite                          -> run folder <dir>/<name>
    seed:    global seed (initialisation, data order, augmentation)

The cloud-or-shadow mask that CARL and the reprod/recon validation metrics need is computed on
the accelerator from each batch (:func:`dsen2cr.cloudmask.binary_mask` on the cloudy crop,
converted back to DN), so the data-loader workers only read and augment. It is computed on the
crop the network trains on, as the authors' reference implementation did; the shadow test's
statistics therefore come from the crop, not from the whole 256 x 256 patch. A batch that
already carries a ``"mask"`` (a dataset built with ``with_mask=True``) uses that mask instead.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from dsen2cr import losses, scaling
from dsen2cr.datasets import is_empty_batch
from dsen2cr.errors import DSen2CRError, WeightsError
from dsen2cr.models import KERAS_SUFFIXES, DSen2CR, safetensors_architecture
from dsen2cr.performance import to_memory_format

__all__ = [
    "DEFAULTS",
    "CloudRemovalModule",
    "DSen2CRModule",
    "TensorDataModule",
    "TrainResult",
    "build_module",
    "describe",
    "load_config",
    "load_predictor",
    "resolve_trainer_kwargs",
    "train",
]

# --------------------------------------------------------------------------- configuration
_COMMON: dict[str, Any] = {
    "data": {
        "root": None,
        "batch_size": 16,
        "eval_batch_size": None,
        "num_workers": 4,
        "crop_size": 128,
        "split_file": None,
        "on_error": "raise",
        "seed": 0,
        "with_mask": False,
        "cache_dir": None,
    },
    "trainer": {
        "max_epochs": 8,
        "accelerator": "auto",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
        "precision": "auto",
        "limit_train_batches": None,
        "limit_val_batches": None,
        "log_every_n_steps": 50,
        "val_check_interval": None,
        "num_sanity_val_steps": 2,
        "enable_progress_bar": True,
        "benchmark": None,
    },
    "out": {"dir": "runs", "name": None, "overwrite": False},
    "seed": 0,
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "dsen2cr": {
        "model": {"name": "dsen2cr", "features": 256, "blocks": 16, "res_scale": 0.1, "sar": True},
        "loss": {"name": "carl", "lam": 1.0, "cloud_threshold": 0.2},
        "optim": {"lr": 7e-5, "betas": [0.9, 0.999], "eps": 1e-8, "momentum_decay": 4e-3},
        "speed": {"channels_last": True, "compile": False},
        **copy.deepcopy(_COMMON),
    },
    "pix2pix": {
        "model": {
            "name": "pix2pix",
            "ngf": 64,
            "ndf": 64,
            "num_downs": 8,
            "n_layers": 3,
            "dropout": True,
            "sar": True,
        },
        "loss": {"name": "gan", "lambda_l1": 100.0, "cloud_threshold": 0.2},
        "optim": {"lr": 2e-4, "betas": [0.5, 0.999], "n_epochs_init": 5, "n_epochs_decay": 5},
        **copy.deepcopy(_COMMON),
    },
}
"""Default config of each model family (``model.name``); a config file overrides any subset."""
DEFAULTS["pix2pix"]["data"]["crop_size"] = 256
DEFAULTS["pix2pix"]["trainer"]["max_epochs"] = 10

_LOSSES = {"dsen2cr": ("carl", "l1"), "pix2pix": ("gan",)}


def _set_dotted(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = cfg
    for k in keys[:-1]:
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise DSen2CRError(f"config override {dotted!r}: {k!r} is not a section")
        node = nxt
    node[keys[-1]] = value


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Give ``value`` the type of its default (YAML reads ``7e-5`` as a string)."""
    if value is None or default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise DSen2CRError(f"config key {where} must be true or false, got {value!r}")
    if isinstance(default, float) and isinstance(value, str | int):
        try:
            return float(value)
        except ValueError:
            raise DSen2CRError(f"config key {where} must be a number, got {value!r}") from None
    if isinstance(default, int) and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise DSen2CRError(f"config key {where} must be an integer, got {value!r}") from None
    if isinstance(default, list) and isinstance(value, list | tuple):
        return [_coerce(v, d, where) for v, d in zip(value, default, strict=False)] + list(
            value[len(default) :]
        )
    return value


def load_config(
    path_or_dict: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Read a training config and resolve it against the defaults.

    Args:
        path_or_dict: a YAML file or an already parsed (partial) config.
        overrides: ``"key.sub=value"`` strings applied after the file; values are parsed with
            ``yaml.safe_load`` (``trainer.max_epochs=3``, ``model.sar=false``,
            ``optim.betas=[0.9,0.99]``).

    Returns:
        The complete config (every section and key; see the module docs). ``out.name`` defaults
        to the config file's stem (or the model family for a dict).

    Raises:
        DSen2CRError: a missing or invalid file, a malformed override, an unknown key or value.
    """
    import yaml

    stem: str | None = None
    if isinstance(path_or_dict, Mapping):
        raw: dict[str, Any] = copy.deepcopy(dict(path_or_dict))
    else:
        p = Path(path_or_dict)
        if not p.is_file():
            raise DSen2CRError(f"config file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise DSen2CRError(f"config file {p} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise DSen2CRError(f"config file {p} must hold a mapping of sections")
        stem = p.stem
    for item in overrides:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise DSen2CRError(f"config override {item!r} is not of the form key.sub=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DSen2CRError(f"config override {item!r}: cannot parse the value: {exc}") from None
        _set_dotted(raw, key.strip(), value)

    name = (raw.get("model") or {}).get("name", "dsen2cr")
    if name not in DEFAULTS:
        raise DSen2CRError(f"unknown model.name {name!r}; expected one of {sorted(DEFAULTS)}")
    defaults = DEFAULTS[name]
    for section, values in raw.items():
        if section not in defaults:
            raise DSen2CRError(
                f"unknown config section {section!r}; expected one of {sorted(defaults)}"
            )
        if isinstance(defaults[section], dict):
            if not isinstance(values, Mapping):
                raise DSen2CRError(f"config section {section!r} must be a mapping")
            if section == "trainer":
                continue  # any lightning.Trainer argument is allowed
            unknown = sorted(set(values) - set(defaults[section]))
            if unknown:
                raise DSen2CRError(
                    f"unknown config key(s) {', '.join(f'{section}.{k}' for k in unknown)} for "
                    f"model {name!r}; known: {', '.join(sorted(defaults[section]))}"
                )
    cfg = _deep_merge(defaults, raw)
    for section, values in defaults.items():
        if isinstance(values, dict):
            for k, d in values.items():
                cfg[section][k] = _coerce(cfg[section][k], d, f"{section}.{k}")
        else:
            cfg[section] = _coerce(cfg[section], values, section)
    if cfg["loss"]["name"] not in _LOSSES[name]:
        raise DSen2CRError(
            f"unknown loss.name {cfg['loss']['name']!r} for model {name!r}; "
            f"expected one of {list(_LOSSES[name])}"
        )
    if name == "pix2pix" and not cfg["model"]["sar"]:
        raise DSen2CRError("the pix2pix baseline always takes SAR input: model.sar must be true")
    if cfg["out"]["name"] is None:
        cfg["out"]["name"] = stem or name
    return cfg


def resolve_trainer_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``lightning.Trainer`` arguments of a resolved config.

    ``benchmark`` (cuDNN autotuning) defaults to True unless ``deterministic`` is set.
    ``precision: auto`` becomes ``"bf16-mixed"`` on a CUDA GPU that supports bfloat16 and
    ``"32-true"`` otherwise; ``strategy: auto`` becomes ``"ddp"`` when more than one device or
    node is asked for. Keys whose value is None are left to Lightning's defaults.
    """
    kw = {k: v for k, v in dict(config["trainer"]).items() if v is not None}
    if "benchmark" not in kw and not kw.get("deterministic"):
        kw["benchmark"] = True  # cuDNN autotuning, unless deterministic runs are asked for
    if kw.get("precision") == "auto":
        gpu = (
            kw.get("accelerator", "auto") in ("auto", "gpu", "cuda")
            and torch.cuda.is_available()
            and torch.cuda.is_bf16_supported()
        )
        kw["precision"] = "bf16-mixed" if gpu else "32-true"
    devices, nodes = kw.get("devices", 1), int(kw.get("num_nodes", 1))
    multi = (isinstance(devices, int) and (devices > 1 or devices == -1)) or (
        isinstance(devices, list | tuple) and len(devices) > 1
    )
    if kw.get("strategy", "auto") == "auto" and (multi or nodes > 1):
        kw["strategy"] = "ddp"
    return kw


# --------------------------------------------------------------------------- modules
class CloudRemovalModule(L.LightningModule):
    """Shared validation, metrics and bookkeeping of the DSen2-CR and pix2pix modules.

    Subclasses implement :meth:`predict_scaled` and :meth:`validation_loss`. Validation logs
    ``val/loss`` and ``val/<metric>`` for every key of :func:`dsen2cr.metrics.batch_metrics`,
    averaged over images across all processes (:class:`dsen2cr.metrics.MetricAccumulator` with
    ``sync()``; undefined NaN values are left out of the means). :attr:`history` holds one dict
    per finished training epoch: ``{"epoch", "train_loss", "val_loss", "val_<metric>", ...}``,
    global over all processes.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.config = copy.deepcopy(dict(config))
        self.cloud_threshold = float(self.config["loss"].get("cloud_threshold", 0.2))
        self.history: list[dict[str, float]] = []
        self._val_metrics: dict[str, float] = {}
        self._val_acc: Any = None
        self._train_sum: torch.Tensor | None = None
        self._train_count: torch.Tensor | None = None
        self._pbar_loss: torch.Tensor | None = None

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def batch_inputs(batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(optical, sar, target)`` of a batch, each (B, C, H, W) scaled."""
        try:
            return batch["optical"], batch["sar"], batch["target"]
        except KeyError as exc:
            raise DSen2CRError(
                f"training batch has no {exc} entry (needs optical, sar, target)"
            ) from None

    def cloud_mask(self, batch: Mapping[str, Any], optical: torch.Tensor) -> torch.Tensor:
        """Binary cloud-or-shadow mask (B, 1, H, W) in ``optical``'s dtype, 1 = cloud or shadow.

        Uses ``batch["mask"]`` when the batch has one, else runs the batched detector on the
        device, in float32 outside autocast, on the scaled optical crop converted to DN.
        """
        given = batch.get("mask") if isinstance(batch, Mapping) else None
        if given is not None:
            m = given
        else:
            from dsen2cr.cloudmask import binary_mask

            with torch.no_grad(), torch.autocast(optical.device.type, enabled=False):
                m = binary_mask(scaling.scaled_to_s2(optical.detach().float()), self.cloud_threshold)
        if m.ndim == optical.ndim - 1:
            m = m.unsqueeze(-3)
        return (m != 0).to(optical.dtype)

    def predict_scaled(self, optical: torch.Tensor, sar: torch.Tensor) -> torch.Tensor:
        """Prediction (B, 13, H, W) in the scaled domain from scaled inputs."""
        raise NotImplementedError

    def validation_loss(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        optical: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Scalar validation loss (``val/loss``, the checkpoint-selection criterion)."""
        raise NotImplementedError

    def _record_train_loss(self, loss: torch.Tensor, n: int) -> None:
        """Accumulate the epoch's training loss on the device and log it without a host sync.

        ``train/loss_step`` goes to the loggers, which Lightning converts to a number only every
        ``log_every_n_steps`` steps. The progress bar shows ``loss``, a host copy refreshed every
        ``log_every_n_steps`` steps: a device tensor on the progress bar would be copied to the
        host after every step, stalling the GPU's queue each time. ``train/loss_epoch`` (the
        mean over all processes) is logged at the end of the epoch.
        """
        loss = loss.detach()
        if self._train_sum is None or self._train_sum.device != loss.device:
            self._train_sum = torch.zeros((), dtype=torch.float64, device=loss.device)
            self._train_count = torch.zeros((), dtype=torch.float64, device=loss.device)
        self._train_sum += loss.double() * n
        self._train_count += n
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, batch_size=n)
        trainer = self._trainer
        every = max(1, int(trainer.log_every_n_steps or 1)) if trainer is not None else 1
        if self._pbar_loss is None or self.global_step % every == 0:
            self._pbar_loss = loss.float().cpu()  # the one host sync, every `every` steps
        self.log(
            "loss", self._pbar_loss, prog_bar=True, logger=False, on_step=True, on_epoch=False,
            batch_size=n,
        )  # fmt: skip

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        from dsen2cr.metrics import MetricAccumulator

        self._val_acc = MetricAccumulator()

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        if is_empty_batch(batch):  # every sample skipped (data.on_error=skip)
            return
        optical, sar, target = self.batch_inputs(batch)
        from dsen2cr.metrics import batch_metrics

        mask = self.cloud_mask(batch, optical)
        pred = self.predict_scaled(optical, sar).float()
        loss = self.validation_loss(pred, target.float(), optical.float(), mask.float())
        values = batch_metrics(
            scaling.scaled_to_reflectance(pred),
            scaling.scaled_to_reflectance(target.float()),
            scaling.scaled_to_reflectance(optical.float()),
            mask[:, 0],
        )
        b = optical.shape[0]
        # every crop has the same size, so the batch mean weighted by B is the per-image mean
        self._val_acc.update({"loss": loss.detach().double().expand(b), **values})

    def on_validation_epoch_end(self) -> None:
        if self._val_acc is None:
            return
        results = self._val_acc.sync().compute()
        self._val_acc = None
        if self.trainer.sanity_checking:
            return
        self._val_metrics = {}
        for key, value in results.items():
            if key.endswith(("_count", "_undefined")):
                continue
            self._val_metrics[f"val_{key}"] = float(value)
            # already global after sync(); sync_dist averages identical values (and keeps
            # Lightning from warning about epoch-level logging under DDP)
            self.log(f"val/{key}", float(value), prog_bar=key == "loss", sync_dist=True)

    # ------------------------------------------------------------------ epochs
    def on_train_epoch_start(self) -> None:
        self._train_sum = None
        self._train_count = None

    def on_train_epoch_end(self) -> None:
        entry: dict[str, float] = {"epoch": int(self.current_epoch)}
        if self._train_sum is not None and self._train_count is not None:
            total = self.trainer.strategy.reduce(self._train_sum.clone(), reduce_op="sum")
            count = self.trainer.strategy.reduce(self._train_count.clone(), reduce_op="sum")
            entry["train_loss"] = float(total / count) if float(count) > 0 else math.nan
            # already global; sync_dist averages identical values (as for val/* below)
            self.log("train/loss_epoch", entry["train_loss"], on_epoch=True, sync_dist=True)
        entry.update(self._val_metrics)
        self._val_metrics = {}
        self.history.append(entry)

    def export(self, path: str | os.PathLike[str], training_info: dict[str, Any]) -> Path:
        """Write the deployable network (native safetensors) to ``path``."""
        raise NotImplementedError


class DSen2CRModule(CloudRemovalModule):
    """DSen2-CR training (paper Sections 3.4-3.5).

    Loss ``carl`` (:func:`dsen2cr.losses.carl_loss`, with the on-device cloud mask) or ``l1``
    (:func:`dsen2cr.losses.l1_loss`); SAR input on or off (``model.sar``); NAdam (Adam with
    Nesterov momentum, Keras' ``Nadam``: lr 7e-5, betas (0.9, 0.999), eps 1e-8, momentum decay
    4e-3); He-uniform initialisation (:class:`dsen2cr.models.DSen2CR`). Losses are computed in
    float32 even under bf16 autocast.

    Args:
        config: a resolved config (:func:`load_config`).
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.save_hyperparameters({"config": self.config})
        m = self.config["model"]
        self.model = DSen2CR(
            features=int(m["features"]),
            blocks=int(m["blocks"]),
            res_scale=float(m["res_scale"]),
            sar_channels=2 if m["sar"] else 0,
        )
        self.loss_name = self.config["loss"]["name"]
        self.lam = float(self.config["loss"]["lam"])
        # checkpoints written before the speed section existed get its defaults
        self.speed = {**DEFAULTS["dsen2cr"]["speed"], **(self.config.get("speed") or {})}
        self.channels_last = bool(self.speed["channels_last"])
        if self.channels_last:  # kept by .to(device) and by loading checkpoints
            self.model.to(memory_format=torch.channels_last)
        self._compiled = False

    def configure_model(self) -> None:
        """Compile the network once when ``speed.compile`` is set (Lightning calls this hook)."""
        if self.speed["compile"] and not self._compiled:
            self.model.compile()  # in place: checkpoints keep the plain parameter names
            self._compiled = True

    def forward(self, optical: torch.Tensor, sar: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled prediction (B, 13, H, W) from scaled optical (B, 13, H, W) and SAR (B, 2, H, W)."""
        optical = to_memory_format(optical, self.channels_last)
        if sar is not None and self.model.uses_sar:
            sar = to_memory_format(sar, self.channels_last)
        return self.model(optical, sar if self.model.uses_sar else None)

    def predict_scaled(self, optical: torch.Tensor, sar: torch.Tensor) -> torch.Tensor:
        return self(optical, sar)

    def compute_loss(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        optical: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """The configured training loss (scalar, float32), all inputs (B, 13, H, W) scaled."""
        p = prediction.float()
        if self.loss_name == "carl":
            if mask is None:
                raise ValueError("the CARL loss needs the cloud mask")
            return losses.carl_loss(p, target.float(), optical.float(), mask.float(), lam=self.lam)
        return losses.l1_loss(p, target.float())

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor | None:
        if is_empty_batch(batch):  # every sample skipped (data.on_error=skip): skip the step
            return None
        optical, sar, target = self.batch_inputs(batch)
        mask = self.cloud_mask(batch, optical) if self.loss_name == "carl" else None
        pred = self(optical, sar)
        loss = self.compute_loss(pred, target, optical, mask)
        self._record_train_loss(loss, optical.shape[0])
        return loss

    def validation_loss(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        optical: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        return self.compute_loss(prediction, target, optical, mask)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        o = self.config["optim"]
        return torch.optim.NAdam(
            self.parameters(),
            lr=float(o["lr"]),
            betas=(float(o["betas"][0]), float(o["betas"][1])),
            eps=float(o["eps"]),
            momentum_decay=float(o["momentum_decay"]),
        )

    def export(self, path: str | os.PathLike[str], training_info: dict[str, Any]) -> Path:
        return self.model.save_pretrained(path, training_info=training_info)


def build_module(config: Mapping[str, Any]) -> CloudRemovalModule:
    """The LightningModule of a resolved config (:class:`DSen2CRModule` or pix2pix's)."""
    if config["model"]["name"] == "pix2pix":
        from dsen2cr.pix2pix import Pix2PixModule

        return Pix2PixModule(config)
    return DSen2CRModule(config)


# --------------------------------------------------------------------------- data
class _TensorDataset(torch.utils.data.Dataset):
    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors
        self.n = len(next(iter(tensors.values())))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


class TensorDataModule(L.LightningDataModule):
    """A LightningDataModule over in-memory scaled tensors (tests, benchmarks, notebooks).

    Samples are dicts like :class:`dsen2cr.datasets.SEN12MSCR`'s: ``optical`` (13, H, W),
    ``sar`` (2, H, W) and ``target`` (13, H, W), all scaled float32.

    Args:
        train: ``{"optical": (N, 13, H, W), "sar": (N, 2, H, W), "target": (N, 13, H, W)}``.
        val: the same for validation (default: the training tensors).
        batch_size: training batch size.
        eval_batch_size: validation batch size (default: ``batch_size``).
        shuffle: shuffle the training samples each epoch.
    """

    def __init__(
        self,
        train: Mapping[str, torch.Tensor],
        val: Mapping[str, torch.Tensor] | None = None,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        self.train_set = _TensorDataset(dict(train))
        self.val_set = _TensorDataset(dict(val if val is not None else train))
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.shuffle = shuffle

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            self.train_set, batch_size=self.batch_size, shuffle=self.shuffle
        )

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.val_set, batch_size=self.eval_batch_size)

    def test_dataloader(self) -> torch.utils.data.DataLoader:
        return self.val_dataloader()


def _build_datamodule(config: Mapping[str, Any]) -> L.LightningDataModule:
    d = config["data"]
    if not d.get("root"):
        raise DSen2CRError(
            "no training data: set data.root=/path/to/SEN12MS-CR (in the config or as an override)"
        )
    root = Path(d["root"])
    if not root.is_dir():
        raise DSen2CRError(f"data.root {root} is not a folder (expected the SEN12MS-CR root)")
    from dsen2cr.datasets import SEN12MSCRDataModule

    workers = int(d["num_workers"])
    return SEN12MSCRDataModule(
        root,
        batch_size=int(d["batch_size"]),
        eval_batch_size=d["eval_batch_size"],
        num_workers=workers,
        crop_size=d["crop_size"],
        split_file=d["split_file"],
        on_error=d["on_error"],
        seed=int(d["seed"]),
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        with_mask=bool(d["with_mask"]),
        cache_dir=d["cache_dir"],
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
        weights: the exported network: ``weights.safetensors`` (DSen2-CR native format,
            :meth:`dsen2cr.models.DSen2CR.from_pretrained`) or ``generator.safetensors``
            (pix2pix, :meth:`dsen2cr.pix2pix.Pix2PixPredictor.from_pretrained`), made from the
            best checkpoint (else the last).
        history: one dict per epoch trained in this call: ``epoch``, ``train_loss``,
            ``val_loss``, ``val_<metric>``.
        config: the resolved config (also saved as ``run_dir/config.yaml``).
        module: the LightningModule holding the exported weights (on the CPU).
    """

    run_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    weights: Path
    history: list[dict[str, float]] = field(default_factory=list, repr=False)
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    module: Any = field(default=None, repr=False)


class _WriteConfig(L.Callback):
    """Saves the resolved config as ``run_dir/config.yaml`` (global rank 0, at fit start)."""

    def __init__(self, config: Mapping[str, Any], path: Path) -> None:
        self.config = config
        self.path = path

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            import yaml

            from dsen2cr.io import atomic_output

            with atomic_output(self.path) as tmp:
                tmp.write_text(yaml.safe_dump(copy.deepcopy(dict(self.config)), sort_keys=False))


def _resolve_resume(resume: str | os.PathLike[str] | None, ckpt_dir: Path) -> Path | None:
    if resume is None or str(resume) == "":
        return None
    if str(resume) == "last":
        p = ckpt_dir / "last.ckpt"
        if not p.is_file():
            raise DSen2CRError(f"--resume last: no checkpoint {p} (was this run started?)")
        return p
    p = Path(resume)
    if not p.is_file():
        raise DSen2CRError(f"resume checkpoint not found: {p}")
    return p


def train(
    config: Mapping[str, Any] | str | os.PathLike[str],
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

    Args:
        config: config file or dict (:func:`load_config`).
        overrides: ``key.sub=value`` overrides.
        datamodule: data to train on; default: :class:`dsen2cr.datasets.SEN12MSCRDataModule`
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
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    cfg = load_config(config, overrides)
    run_dir = Path(cfg["out"]["dir"]) / str(cfg["out"]["name"])
    ckpt_dir = run_dir / "checkpoints"
    resume_path = _resolve_resume(resume, ckpt_dir)
    existing = sorted(ckpt_dir.glob("*.ckpt")) if ckpt_dir.is_dir() else []
    if resume_path is None and existing:
        if not cfg["out"]["overwrite"]:
            raise DSen2CRError(
                f"run folder {run_dir} already has checkpoints: continue it with --resume last, "
                "start over with out.overwrite=true, or pick another out.name"
            )
        if int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0:
            shutil.rmtree(ckpt_dir, ignore_errors=True)

    L.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    module = build_module(cfg)
    dm = datamodule if datamodule is not None else _build_datamodule(cfg)

    ckpt_cb = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="epoch{epoch:03d}",
        monitor="val/loss",
        mode="min",
        save_top_k=1,
        save_last=True,
        auto_insert_metric_name=False,
        every_n_epochs=1,
    )
    loggers = [
        TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", default_hp_metric=False),
        CSVLogger(save_dir=str(run_dir), name="csv"),
    ]
    trainer = L.Trainer(
        default_root_dir=str(run_dir),
        logger=loggers,
        callbacks=[ckpt_cb, _WriteConfig(cfg, run_dir / "config.yaml"), *callbacks],
        **resolve_trainer_kwargs(cfg),
    )
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume_path) if resume_path else None)

    best = Path(ckpt_cb.best_model_path) if ckpt_cb.best_model_path else None
    last = Path(ckpt_cb.last_model_path) if ckpt_cb.last_model_path else None
    is_pix2pix = cfg["model"]["name"] == "pix2pix"
    weights = run_dir / ("generator.safetensors" if is_pix2pix else "weights.safetensors")
    source = best if best is not None and best.is_file() else last
    module = module.cpu()
    info: dict[str, Any] = {
        "name": cfg["out"]["name"],
        "model": cfg["model"]["name"],
        "loss": cfg["loss"]["name"],
        "sar": bool(cfg["model"].get("sar", True)),
        "config": cfg,
        "epochs": int(trainer.current_epoch),
        "global_step": int(trainer.global_step),
        "framework": f"dsen2cr (PyTorch {torch.__version__}, Lightning {L.__version__})",
    }
    if "lam" in cfg["loss"]:
        info["lam"] = cfg["loss"]["lam"]
    if source is not None and source.is_file():
        ckpt = torch.load(source, map_location="cpu", weights_only=True)
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
        run_dir=run_dir,
        best_checkpoint=best,
        last_checkpoint=last,
        weights=weights,
        history=list(module.history),
        config=cfg,
        module=module.eval(),
    )


# --------------------------------------------------------------------------- predictors
def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _from_checkpoint(path: Path) -> nn.Module:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torch.load failure has many exception types
        raise WeightsError(f"cannot read checkpoint {path}: {exc}") from None
    cfg = (ckpt.get("hyper_parameters") or {}).get("config") if isinstance(ckpt, dict) else None
    if not isinstance(cfg, Mapping) or "state_dict" not in ckpt:
        raise WeightsError(f"{path} is not a dsen2cr training checkpoint (no config in it)")
    state = ckpt["state_dict"]
    name = str((cfg.get("out") or {}).get("name") or path.stem)
    try:
        if cfg["model"]["name"] == "pix2pix":
            from dsen2cr.pix2pix import Pix2PixPredictor, UNetGenerator

            m = cfg["model"]
            gen = UNetGenerator(
                ngf=int(m["ngf"]), num_downs=int(m["num_downs"]), dropout=bool(m["dropout"])
            )
            gen.load_state_dict(_strip_prefix(state, "generator."), strict=True)
            model: nn.Module = Pix2PixPredictor(gen)
        else:
            m = cfg["model"]
            model = DSen2CR(
                features=int(m["features"]),
                blocks=int(m["blocks"]),
                res_scale=float(m["res_scale"]),
                sar_channels=2 if m["sar"] else 0,
            )
            model.load_state_dict(_strip_prefix(state, "model."), strict=True)
            model.training_info = {
                "name": name,
                "checkpoint": path.name,
                "epochs": int(ckpt.get("epoch", -1)) + 1,
                "config": dict(cfg),
            }
    except (KeyError, RuntimeError) as exc:
        raise WeightsError(f"checkpoint {path} does not fit its recorded config: {exc}") from None
    model.name = name
    return model


def load_predictor(path: str | os.PathLike[str]) -> nn.Module:
    """Load any supported weights as a predictor ``forward(optical_scaled, sar_scaled)``.

    Supported: native DSen2-CR safetensors, the authors' Keras ``.h5``/``.hdf5`` files
    (via :meth:`DSen2CR.from_pretrained`), pix2pix generator safetensors
    (:class:`dsen2cr.pix2pix.Pix2PixPredictor`) and Lightning ``.ckpt`` files of either module.

    Args:
        path: the weight file.

    Returns:
        A module in eval mode on the CPU taking (B, 13, H, W) scaled optical and (B, 2, H, W)
        scaled SAR (ignored by optical-only models) and returning the (B, 13, H, W) scaled
        prediction. Attributes ``uses_sar`` (bool) and ``name`` (the run name recorded at
        training time, else the file stem).

    Raises:
        WeightsError: the file is missing or is not a supported weight file.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weight file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".ckpt":
        model = _from_checkpoint(p)
    elif suffix in KERAS_SUFFIXES:
        model = DSen2CR.from_pretrained(p)
        model.name = p.stem
    else:
        arch = safetensors_architecture(p)
        if arch == "Pix2PixUNet":
            from dsen2cr.pix2pix import Pix2PixPredictor

            model = Pix2PixPredictor.from_pretrained(p)
        elif arch == "DSen2CR":
            model = DSen2CR.from_pretrained(p)
        else:
            raise WeightsError(
                f"{p} is not a DSen2-CR or pix2pix weight file (architecture {arch!r})"
            )
        info = getattr(model, "training_info", {}) or {}
        model.name = str(info.get("name") or p.stem)
    return model.eval()


def describe(result: TrainResult) -> str:
    """One JSON line summarising a training run (printed by ``dsen2cr train``)."""
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
