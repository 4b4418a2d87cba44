"""pix2pix baseline training (paper Section 4.3): the LightningModule of ``model.name: pix2pix``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from dsen2cr import scaling
from dsen2cr.data.dataset import is_empty_batch
from dsen2cr.errors import ConfigError
from dsen2cr.models.pix2pix import (
    PatchGANDiscriminator,
    Pix2PixPredictor,
    UNetGenerator,
    from_pix2pix,
    lr_factor,
    to_pix2pix_input,
)
from dsen2cr.training.base import CloudRemovalModule, ValidationBatch
from dsen2cr.training.config import AdamOptim, Pix2PixLoss, Pix2PixModel, TrainConfig


class Pix2PixModule(CloudRemovalModule):
    """pix2pix training with manual optimisation (one D step then one G step per batch).

    D minimises ``0.5 [BCE(D(s, c, t), 1) + BCE(D(s, c, G(c, s)), 0)]``; G minimises
    ``BCE(D(s, c, G(c, s)), 1) + lambda_l1 |G(c, s) - t|`` (all in the pix2pix domain; s = SAR,
    c = cloudy, t = target). Both use Adam(lr, betas) with the per-epoch :func:`lr_factor`
    schedule, brought to the current epoch at the start of every training epoch (so resuming keeps
    it exact). ``val/loss`` is the L1 distance
    between prediction and target in the pix2pix domain.

    Args:
        config: a pix2pix config (:func:`dsen2cr.training.load_config`, ``model.name: pix2pix``),
            or its :meth:`~dsen2cr.training.TrainConfig.to_dict`.
    """

    WEIGHTS_FILE: ClassVar[str] = "generator.safetensors"
    NETWORK_PREFIX: ClassVar[str] = "generator."

    def __init__(self, config: TrainConfig | Mapping[str, Any]) -> None:
        super().__init__(config)
        self.automatic_optimization = False
        m, loss = self.config.model, self.config.loss
        if not isinstance(m, Pix2PixModel) or not isinstance(loss, Pix2PixLoss):
            raise ConfigError(f"Pix2PixModule needs a pix2pix config, got model.name {m.name!r}")
        self.generator = UNetGenerator(ngf=m.ngf, num_downs=m.num_downs, dropout=m.dropout)
        self.discriminator = PatchGANDiscriminator(ndf=m.ndf, n_layers=m.n_layers)
        self.lambda_l1 = loss.lambda_l1
        self.gan_loss = nn.BCEWithLogitsLoss()

    def forward(self, optical: torch.Tensor, sar: torch.Tensor) -> torch.Tensor:
        """The generator's prediction (B, 13, H, W) in the pix2pix domain [-1, 1].

        Args:
            optical: (B, 13, H, W) scaled cloudy Sentinel-2.
            sar: (B, 2, H, W) scaled Sentinel-1.
        """
        o, s = to_pix2pix_input(optical, sar)
        out: torch.Tensor = self.generator(torch.cat([o, s], 1))
        return out

    def predict_scaled(self, optical: torch.Tensor, sar: torch.Tensor) -> torch.Tensor:
        """The generator's prediction (B, 13, H, W) mapped back to the scaled domain.

        Args:
            optical: (B, 13, H, W) scaled cloudy Sentinel-2.
            sar: (B, 2, H, W) scaled Sentinel-1.
        """
        return from_pix2pix(self(optical, sar).float())

    def discriminate(self, sar: torch.Tensor, cloudy: torch.Tensor, optical: torch.Tensor) -> torch.Tensor:
        """D logits of concat(SAR 2, cloudy 13, real-or-fake 13) = 28 channels (pix2pix domain).

        Args:
            sar: (B, 2, H, W) Sentinel-1 in [-1, 1].
            cloudy: (B, 13, H, W) cloudy Sentinel-2 in [-1, 1].
            optical: (B, 13, H, W) real or generated Sentinel-2 in [-1, 1].

        Returns:
            (B, 1, h, w) logits, one per patch.
        """
        logits: torch.Tensor = self.discriminator(torch.cat([sar, cloudy, optical.to(cloudy.dtype)], 1))
        return logits

    def _bce(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        logits = logits.float()
        loss: torch.Tensor = self.gan_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))
        return loss

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """One discriminator step, then one generator step (manual optimisation).

        Args:
            batch: the collated batch (scaled ``optical``, ``sar``, ``target``).
            batch_idx: its index in the epoch (Lightning's argument, unused).
        """
        if is_empty_batch(batch):  # every sample skipped (data.on_error=skip)
            return
        optical, sar, target = self.batch_inputs(batch)
        opt_g, opt_d = self.optimizers()  # type: ignore[attr-defined]
        cloudy, s = to_pix2pix_input(optical, sar)
        real = scaling.scaled_to_pix2pix_s2(target.float())
        fake = self.generator(torch.cat([cloudy, s], 1))

        # discriminator
        self.toggle_optimizer(opt_d)
        loss_d_fake = self._bce(self.discriminate(s, cloudy, fake.detach()), real=False)
        loss_d_real = self._bce(self.discriminate(s, cloudy, real), real=True)
        loss_d = 0.5 * (loss_d_fake + loss_d_real)
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        # generator (D's parameters frozen by toggle_optimizer)
        self.toggle_optimizer(opt_g)
        loss_g_gan = self._bce(self.discriminate(s, cloudy, fake), real=True)
        loss_g_l1 = (fake.float() - real).abs().mean()
        loss_g = loss_g_gan + self.lambda_l1 * loss_g_l1
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self._record_train_loss(loss_g, optical.shape[0])
        self.log_dict(  # per step, no cross-process sync (see _record_train_loss)
            {
                "train/loss_d_step": loss_d.detach(),
                "train/loss_g_gan_step": loss_g_gan.detach(),
                "train/loss_g_l1_step": loss_g_l1.detach(),
            },
            on_step=True,
            on_epoch=False,
            batch_size=optical.shape[0],
        )

    def on_train_epoch_start(self) -> None:
        """Reset the loss sums and bring both lr schedules to this epoch (Lightning hook)."""
        super().on_train_epoch_start()
        # Bring the LambdaLR schedules to this epoch. Stepping here (rather than at the end of
        # the previous epoch) keeps the lr right after --resume whatever hook saved the checkpoint.
        for sched in self.lr_schedulers():  # type: ignore[union-attr]
            while sched.last_epoch < self.current_epoch:
                sched.step()

    def validation_loss(self, batch: ValidationBatch) -> torch.Tensor:
        """L1 distance of prediction and target in the pix2pix domain (input and mask unused)."""
        p = scaling.scaled_to_pix2pix_s2(batch.prediction.float())
        return (p - scaling.scaled_to_pix2pix_s2(batch.target.float())).abs().mean()

    def configure_optimizers(
        self,
    ) -> tuple[list[torch.optim.Optimizer], list[torch.optim.lr_scheduler.LambdaLR]]:
        """Adam for G and D with the per-epoch :func:`lr_factor` schedule (``[G, D]`` order)."""
        o = self.config.optim
        assert isinstance(o, AdamOptim)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=o.lr, betas=o.betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=o.lr, betas=o.betas)
        n_init, n_decay = o.n_epochs_init, o.n_epochs_decay

        def rule(epoch: int) -> float:
            return lr_factor(epoch, n_init, n_decay)

        scheds = [torch.optim.lr_scheduler.LambdaLR(opt, rule) for opt in (opt_g, opt_d)]
        return [opt_g, opt_d], scheds

    def network(self) -> Pix2PixPredictor:
        """The generator wrapped as a scaled-domain :class:`Pix2PixPredictor` (shares weights)."""
        return Pix2PixPredictor(self.generator, {"name": self.config.out.name})
