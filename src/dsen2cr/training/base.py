"""The LightningModule base of DSen2-CR and pix2pix training: validation, metrics, bookkeeping.

Everything runs through PyTorch Lightning: checkpoints, resuming, logging, bf16 mixed precision
and data-parallel training (DDP) come from the Trainer that :func:`dsen2cr.training.train`
builds. This module holds what both model families share:

* the cloud-or-shadow mask that CARL and the reprod/recon validation metrics need, computed on
  the accelerator from each batch (:func:`dsen2cr.cloudmask.binary_mask` on the cloudy crop,
  converted back to DN), so the data-loader workers only read and augment. It is computed on the
  crop the network trains on, as the authors' reference implementation did; the shadow test's
  statistics therefore come from the crop, not from the whole 256 x 256 patch. A batch that
  already carries a ``"mask"`` (a dataset built with ``with_mask=True``) uses that mask instead;
* validation on the metrics of :mod:`dsen2cr.metrics`, summed over every process;
* the training-loss bookkeeping, without a host synchronisation per step;
* the network record a checkpoint carries (:data:`dsen2cr.models.weights.CHECKPOINT_KEY`) and the
  export of the deployable network.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import lightning as L
import torch

from dsen2cr import scaling
from dsen2cr.cloudmask import binary_mask
from dsen2cr.data.dataset import is_empty_batch
from dsen2cr.errors import DSen2CRError
from dsen2cr.metrics import MetricAccumulator, batch_metrics
from dsen2cr.models.weights import (
    CHECKPOINT_KEY,
    RecordedNetwork,
    checkpoint_record,
    save_weights,
)
from dsen2cr.training.config import TrainConfig


class ValidationBatch(NamedTuple):
    """What the validation loss compares, all (B, C, H, W) float32 in the scaled domain.

    Attributes:
        prediction: (B, 13, H, W) the network's prediction.
        target: (B, 13, H, W) the cloud-free target.
        optical: (B, 13, H, W) the cloudy input.
        mask: (B, 1, H, W) cloud-or-shadow mask (1 = cloud or shadow).
    """

    prediction: torch.Tensor
    target: torch.Tensor
    optical: torch.Tensor
    mask: torch.Tensor


class CloudRemovalModule(L.LightningModule):
    """Shared validation, metrics and bookkeeping of the DSen2-CR and pix2pix modules.

    Subclasses implement :meth:`predict_scaled`, :meth:`validation_loss` (of a ValidationBatch)
    and :meth:`network`. Validation logs
    ``val/loss`` and ``val/<metric>`` for every key of :func:`dsen2cr.metrics.batch_metrics`,
    averaged over images across all processes (:class:`dsen2cr.metrics.MetricAccumulator` with
    ``sync()``; undefined NaN values are left out of the means). :attr:`history` holds one dict
    per finished training epoch: ``{"epoch", "train_loss", "val_loss", "val_<metric>", ...}``,
    global over all processes.
    """

    WEIGHTS_FILE: ClassVar[str] = "weights.safetensors"
    """File name of the exported network in the run folder."""
    NETWORK_PREFIX: ClassVar[str] = "model."
    """Key prefix of the exported network in this module's state dict."""

    def __init__(self, config: TrainConfig | Mapping[str, Any]) -> None:
        super().__init__()
        self.config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
        # plain values, so that read_checkpoint loads checkpoints without unpickling code
        self.save_hyperparameters({"config": self.config.to_dict()})
        self.cloud_threshold = self.config.loss.cloud_threshold
        self.history: list[dict[str, float]] = []
        self._val_metrics: dict[str, float] = {}
        self._val_acc: MetricAccumulator | None = None
        self._train_sum: torch.Tensor | None = None
        self._train_count: torch.Tensor | None = None
        self._pbar_loss: torch.Tensor | None = None

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def batch_inputs(batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(optical, sar, target)`` of a batch, each (B, C, H, W) scaled.

        Args:
            batch: a collated batch (tensors and per-sample metadata, as Lightning passes it).

        Returns:
            Optical (B, 13, H, W), SAR (B, 2, H, W) and target (B, 13, H, W), scaled domain.

        Raises:
            DSen2CRError: the batch lacks one of them.
        """
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

        Args:
            batch: the collated batch (its optional ``"mask"``: (B, H, W) or (B, 1, H, W)).
            optical: (B, 13, H, W) scaled cloudy input.

        Returns:
            (B, 1, H, W) mask, 1 = cloud or shadow, 0 = clear.
        """
        given = batch.get("mask") if isinstance(batch, Mapping) else None
        m: torch.Tensor
        if given is not None:
            m = given
        else:
            with torch.no_grad(), torch.autocast(optical.device.type, enabled=False):
                m = binary_mask(scaling.scaled_to_s2(optical.detach().float()), self.cloud_threshold)
        if m.ndim == optical.ndim - 1:
            m = m.unsqueeze(-3)
        return (m != 0).to(optical.dtype)

    def predict_scaled(self, optical: torch.Tensor, sar: torch.Tensor) -> torch.Tensor:
        """Prediction (B, 13, H, W) in the scaled domain from scaled inputs.

        Args:
            optical: (B, 13, H, W) scaled cloudy Sentinel-2.
            sar: (B, 2, H, W) scaled Sentinel-1.
        """
        raise NotImplementedError

    def validation_loss(self, batch: ValidationBatch) -> torch.Tensor:
        """Scalar float32 validation loss (``val/loss``, the checkpoint-selection criterion)."""
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
        total, count = self._train_sum, self._train_count
        if total is None or count is None or total.device != loss.device:
            total = torch.zeros((), dtype=torch.float64, device=loss.device)
            count = torch.zeros((), dtype=torch.float64, device=loss.device)
        self._train_sum = total + loss.double() * n
        self._train_count = count + n
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, batch_size=n)
        every = self.config.trainer.log_every_n_steps
        if self._pbar_loss is None or self.global_step % every == 0:
            self._pbar_loss = loss.float().cpu()  # the one host sync, every `every` steps
        self.log(
            "loss", self._pbar_loss, prog_bar=True, logger=False, on_step=True, on_epoch=False,
            batch_size=n,
        )  # fmt: skip

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        """Start the epoch's metric accumulator (Lightning hook)."""
        self._val_acc = MetricAccumulator()

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """Accumulate the validation loss and the metrics (reflectance) of one batch.

        Args:
            batch: the collated batch (scaled ``optical``, ``sar``, ``target``, optional
                ``mask``).
            batch_idx: its index in the epoch (Lightning's argument, unused).
        """
        if is_empty_batch(batch):  # every sample skipped (data.on_error=skip)
            return
        optical, sar, target = self.batch_inputs(batch)
        mask = self.cloud_mask(batch, optical)
        pred = self.predict_scaled(optical, sar).float()
        loss = self.validation_loss(
            ValidationBatch(pred, target.float(), optical.float(), mask.float())
        )
        values = batch_metrics(
            scaling.scaled_to_reflectance(pred),
            scaling.scaled_to_reflectance(target.float()),
            scaling.scaled_to_reflectance(optical.float()),
            mask[:, 0],
        )
        if self._val_acc is None:
            raise RuntimeError("validation_step ran before on_validation_epoch_start")
        b = optical.shape[0]
        # every crop has the same size, so the batch mean weighted by B is the per-image mean
        self._val_acc.update({"loss": loss.detach().double().expand(b), **values})

    def on_validation_epoch_end(self) -> None:
        """Log ``val/loss`` and ``val/<metric>``, the means over every process (Lightning hook)."""
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
        """Reset the epoch's training-loss sums (Lightning hook)."""
        self._train_sum = None
        self._train_count = None

    def on_train_epoch_end(self) -> None:
        """Log ``train/loss_epoch`` and append the epoch to :attr:`history` (Lightning hook)."""
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

    # ------------------------------------------------------------------ the network
    def network(self) -> RecordedNetwork:
        """The deployable network (a registered architecture of :mod:`dsen2cr.models`), sharing
        this module's parameters."""
        raise NotImplementedError

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record which network the checkpoint holds, so that :func:`dsen2cr.models.load_weights`
        reads it without Lightning or the training config.

        Args:
            checkpoint: the checkpoint Lightning is about to save (gets
                :data:`~dsen2cr.models.weights.CHECKPOINT_KEY`).
        """
        checkpoint[CHECKPOINT_KEY] = checkpoint_record(
            self.network(), self.NETWORK_PREFIX, self.config.out.name
        )

    def export(self, path: str | os.PathLike[str], training_info: Mapping[str, Any]) -> Path:
        """Write the deployable network (native safetensors) to ``path``.

        Args:
            path: the ``.safetensors`` file (written atomically).
            training_info: how the weights were made (JSON values), recorded in the file.

        Returns:
            The written path.
        """
        return save_weights(self.network(), path, training_info)
