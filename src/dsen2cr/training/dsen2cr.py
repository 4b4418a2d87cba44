"""DSen2-CR training (paper Sections 3.4-3.5): the LightningModule of ``model.name: dsen2cr``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from dsen2cr import losses
from dsen2cr.data.dataset import is_empty_batch
from dsen2cr.errors import ConfigError
from dsen2cr.models import DSen2CR
from dsen2cr.performance import SpeedOptions, to_memory_format
from dsen2cr.training.base import CloudRemovalModule, ValidationBatch
from dsen2cr.training.config import DSen2CRLoss, DSen2CRModel, NAdamOptim, TrainConfig


class DSen2CRModule(CloudRemovalModule):
    """DSen2-CR training (paper Sections 3.4-3.5).

    Loss ``carl`` (:func:`dsen2cr.losses.carl_loss`, with the on-device cloud mask) or ``l1``
    (:func:`dsen2cr.losses.l1_loss`); SAR input on or off (``model.sar``); NAdam (Adam with
    Nesterov momentum, Keras' ``Nadam``: lr 7e-5, betas (0.9, 0.999), eps 1e-8, momentum decay
    4e-3); He-uniform initialisation (:class:`dsen2cr.models.DSen2CR`). Losses are computed in
    float32 even under bf16 autocast.

    Args:
        config: a DSen2-CR config (:func:`dsen2cr.training.load_config`), or its
            :meth:`~dsen2cr.training.TrainConfig.to_dict` (as Lightning passes it back).
    """

    def __init__(self, config: TrainConfig | Mapping[str, Any]) -> None:
        super().__init__(config)
        model, loss = self.config.model, self.config.loss
        if not isinstance(model, DSen2CRModel) or not isinstance(loss, DSen2CRLoss):
            raise ConfigError(f"DSen2CRModule needs a dsen2cr config, got model.name {model.name!r}")
        self.model = DSen2CR(**model.network_kwargs())
        self.loss_name = loss.name
        self.lam = loss.lam
        # configs written before the speed section existed get its defaults
        self.speed = self.config.speed or SpeedOptions()
        self.channels_last = self.speed.channels_last
        if self.channels_last:  # kept by .to(device) and by loading checkpoints
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._compiled = False

    def network(self) -> DSen2CR:
        """The :class:`~dsen2cr.models.DSen2CR` being trained."""
        return self.model

    def configure_model(self) -> None:
        """Compile the network once when ``speed.compile`` is set (Lightning calls this hook)."""
        if self.speed.compile and not self._compiled:
            self.model.compile()  # in place: checkpoints keep the plain parameter names
            self._compiled = True

    def forward(self, optical: torch.Tensor, sar: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled prediction (B, 13, H, W), in the module's memory format.

        Args:
            optical: (B, 13, H, W) scaled cloudy Sentinel-2.
            sar: (B, 2, H, W) scaled Sentinel-1 (ignored by a network without SAR input).
        """
        optical = to_memory_format(optical, self.channels_last)
        if sar is not None and self.model.uses_sar:
            sar = to_memory_format(sar, self.channels_last)
        out: torch.Tensor = self.model(optical, sar if self.model.uses_sar else None)
        return out

    def predict_scaled(self, optical: torch.Tensor, sar: torch.Tensor) -> torch.Tensor:
        """The network's scaled prediction (B, 13, H, W).

        Args:
            optical: (B, 13, H, W) scaled cloudy Sentinel-2.
            sar: (B, 2, H, W) scaled Sentinel-1.
        """
        out: torch.Tensor = self(optical, sar)
        return out

    def compute_loss(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        optical: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """The configured training loss (scalar, float32).

        Args:
            prediction: (B, 13, H, W) prediction, scaled domain.
            target: (B, 13, H, W) cloud-free target, scaled domain.
            optical: (B, 13, H, W) cloudy input, scaled domain.
            mask: (B, 1, H, W) cloud-or-shadow mask (1 = cloud or shadow); CARL needs it.

        Raises:
            ValueError: CARL without a mask.
        """
        p = prediction.float()
        if self.loss_name == "carl":
            if mask is None:
                raise ValueError("the CARL loss needs the cloud mask")
            return losses.carl_loss(p, target.float(), optical.float(), mask.float(), lam=self.lam)
        return losses.l1_loss(p, target.float())

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor | None:
        """The loss of one batch (None for a batch whose samples were all skipped).

        Args:
            batch: the collated batch (scaled ``optical``, ``sar``, ``target``).
            batch_idx: its index in the epoch (Lightning's argument, unused).
        """
        if is_empty_batch(batch):  # every sample skipped (data.on_error=skip): skip the step
            return None
        optical, sar, target = self.batch_inputs(batch)
        mask = self.cloud_mask(batch, optical) if self.loss_name == "carl" else None
        pred = self(optical, sar)
        loss = self.compute_loss(pred, target, optical, mask)
        self._record_train_loss(loss, optical.shape[0])
        return loss

    def validation_loss(self, batch: ValidationBatch) -> torch.Tensor:
        """The training loss (:meth:`compute_loss`) on validation data."""
        return self.compute_loss(batch.prediction, batch.target, batch.optical, batch.mask)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """NAdam with the ``optim`` section's lr, betas, eps and momentum decay."""
        o = self.config.optim
        assert isinstance(o, NAdamOptim)
        return torch.optim.NAdam(
            self.parameters(), lr=o.lr, betas=o.betas, eps=o.eps, momentum_decay=o.momentum_decay
        )
