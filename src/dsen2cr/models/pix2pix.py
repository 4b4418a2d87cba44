"""The pix2pix baseline of paper Section 4.3 (Isola et al. 2017), adapted to SAR-optical input.

* :class:`UNetGenerator` - the pix2pix U-Net (``unet_256`` for ``num_downs=8``): 4x4 stride-2
  convolutions, batch norm, LeakyReLU(0.2) down / ReLU up, skip connections, dropout 0.5 in the
  three decoder levels below the 512-channel bottleneck group, tanh output. Input
  concat(optical 13, SAR 2) = 15 channels, output 13 optical bands, both in [-1, 1].
* :class:`PatchGANDiscriminator` - the 70 x 70 PatchGAN (``n_layers=3``) with batch norm on
  concat(SAR 2, cloudy 13, real or generated 13) = 28 channels; logits, one per patch.
* :class:`Pix2PixPredictor` - the trained generator as a predictor in DSen2-CR's scaled domain
  (``forward(optical_scaled, sar_scaled) -> prediction_scaled``), registered with
  :mod:`dsen2cr.models.weights` as the architecture ``"Pix2PixUNet"`` (the file holds the
  generator alone).
* :func:`init_weights` (N(0, 0.02) weights, zero biases, batch-norm scales N(1, 0.02)) and
  :func:`lr_factor` (5 epochs at constant lr, then 5 of linear decay), used by the training
  module :class:`dsen2cr.training.Pix2PixModule` (GAN + 100 x L1, Adam 2e-4 / beta1 0.5).

Inputs to the networks are in the pix2pix domain [-1, 1]: optical DN clipped to [0, 10000],
SAR dB clipped to [-25, 0] (both polarisations), via :mod:`dsen2cr.scaling`. Predictions are
mapped back to the scaled domain (and thus reflectance) and scored with the same metrics as
DSen2-CR. Inference uses eval mode (batch-norm running statistics, no dropout), so predictions
are deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from dsen2cr import scaling
from dsen2cr.models.weights import (
    ConfigBound,
    RecordedNetwork,
    WeightRecord,
    build_strict,
    register_architecture,
)

__all__ = [
    "PatchGANDiscriminator",
    "Pix2PixPredictor",
    "UNetGenerator",
    "from_pix2pix",
    "init_weights",
    "lr_factor",
    "to_pix2pix_input",
]

OPTICAL_CHANNELS = 13
SAR_CHANNELS = 2


# --------------------------------------------------------------------------- networks
class _UNetLevel(nn.Module):
    """One U-Net level: down(x) -> inner -> up, output concatenated with x (except outermost)."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        inner: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=False)
        if outermost:
            down: list[nn.Module] = [downconv]
            up: list[nn.Module] = [
                nn.ReLU(True),
                nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=True),
                nn.Tanh(),
            ]
        elif innermost:
            down = [nn.LeakyReLU(0.2, True), downconv]
            up = [
                nn.ReLU(True),
                nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(outer_nc),
            ]
        else:
            down = [nn.LeakyReLU(0.2, True), downconv, nn.BatchNorm2d(inner_nc)]
            up = [
                nn.ReLU(True),
                nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(outer_nc),
            ]
            if dropout:
                up.append(nn.Dropout(0.5))
        self.down = nn.Sequential(*down)
        self.inner = inner if inner is not None else nn.Identity()
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.inner(self.down(x)))
        return y if self.outermost else torch.cat([x, y], 1)


class UNetGenerator(nn.Module):
    """pix2pix U-Net generator.

    Level ``i`` (0 = outermost) has ``ngf * min(2**i, 8)`` feature maps; each level halves the
    resolution, so H and W must be divisible by ``2**num_downs`` (256 for the paper's
    ``num_downs=8`` on 256 x 256 patches). Non-outermost, non-innermost levels with ``i >= 4``
    apply dropout 0.5 after their decoder batch norm (three levels for ``num_downs=8``).

    Args:
        in_channels: 15 (13 optical + 2 SAR).
        out_channels: 13 optical bands.
        ngf: feature maps of the outermost level (64).
        num_downs: number of down-sampling levels (8 for 256 x 256; fewer for small crops).
        dropout: use dropout in the decoder, as pix2pix.

    Attributes:
        config_bounds: what a weight file may record (checked before anything is built):
            ``in_channels`` and ``out_channels`` 1..1024, ``ngf`` 1..4096, ``num_downs`` 2..16
            (integers), ``dropout`` true or false.
    """

    config_bounds: ClassVar[dict[str, ConfigBound]] = {
        "in_channels": ConfigBound(int, 1, 1024),
        "out_channels": ConfigBound(int, 1, 1024),
        "ngf": ConfigBound(int, 1, 4096),
        "num_downs": ConfigBound(int, 2, 16),
        "dropout": ConfigBound(bool),
    }

    def __init__(
        self,
        in_channels: int = OPTICAL_CHANNELS + SAR_CHANNELS,
        out_channels: int = OPTICAL_CHANNELS,
        ngf: int = 64,
        num_downs: int = 8,
        dropout: bool = True,
    ) -> None:
        super().__init__()
        if num_downs < 2 or ngf < 1:
            raise ValueError(f"UNetGenerator needs num_downs >= 2 and ngf >= 1, got {num_downs}, {ngf}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.ngf, self.num_downs, self.dropout = ngf, num_downs, bool(dropout)

        def nc(i: int) -> int:
            return ngf * min(int(2**i), 8)

        block: nn.Module = _UNetLevel(nc(num_downs - 2), nc(num_downs - 1), innermost=True)
        for i in range(num_downs - 2, 0, -1):
            block = _UNetLevel(nc(i - 1), nc(i), inner=block, dropout=dropout and i >= 4)
        self.model = _UNetLevel(out_channels, ngf, input_nc=in_channels, inner=block, outermost=True)
        init_weights(self)

    @property
    def config(self) -> dict[str, int | bool]:
        """The constructor arguments that rebuild this architecture."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "ngf": self.ngf,
            "num_downs": self.num_downs,
            "dropout": self.dropout,
        }

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this (``2**num_downs``)."""
        return int(2**self.num_downs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Generate the optical image.

        Args:
            x: (B, 15, H, W) concat(optical, SAR) in [-1, 1]; H, W multiples of 2**num_downs.

        Returns:
            (B, 13, H, W) optical bands in [-1, 1].
        """
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(
                f"UNetGenerator(num_downs={self.num_downs}) needs height and width divisible by "
                f"{self.multiple}, got {tuple(x.shape[-2:])}"
            )
        out: torch.Tensor = self.model(x)
        return out


class PatchGANDiscriminator(nn.Module):
    """pix2pix PatchGAN discriminator (70 x 70 receptive field for ``n_layers=3``).

    Args:
        in_channels: 28 = SAR 2 + cloudy 13 + real or generated 13.
        ndf: feature maps of the first layer (64).
        n_layers: number of stride-2 layers after the first (3).
    """

    def __init__(
        self, in_channels: int = 2 * OPTICAL_CHANNELS + SAR_CHANNELS, ndf: int = 64, n_layers: int = 3
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify patches as real or generated.

        Args:
            x: (B, 28, H, W) concat(SAR, cloudy, real or generated optical) in [-1, 1].

        Returns:
            (B, 1, h, w) real/fake logits, one per patch.
        """
        if x.shape[-3] != self.in_channels:
            raise ValueError(f"discriminator input has {x.shape[-3]} channels, expected {self.in_channels}")
        logits: torch.Tensor = self.model(x)
        return logits


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """pix2pix initialisation: conv weights N(0, gain), biases 0, batch-norm scale N(1, gain).

    Args:
        module: the network, initialised in place.
        gain: standard deviation of the normal distributions.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def lr_factor(epoch: int, n_epochs_init: int = 5, n_epochs_decay: int = 5) -> float:
    """Learning-rate multiplier of (0-based) ``epoch``: ``1 - max(0, epoch + 1 - n_init) / (n_decay + 1)``.

    This is pix2pix's linear policy: ``n_init`` epochs at the initial rate, then ``n_decay``
    epochs decaying linearly towards 0 (factors 5/6, 4/6, ..., 1/6 for 5 + 5 epochs).

    Args:
        epoch: the epoch, counted from 0.
        n_epochs_init: epochs at the initial rate.
        n_epochs_decay: epochs of linear decay.
    """
    return 1.0 - max(0, epoch + 1 - n_epochs_init) / float(n_epochs_decay + 1)


# --------------------------------------------------------------------------- domain mapping
def to_pix2pix_input(optical: torch.Tensor, sar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled inputs -> the pix2pix domain [-1, 1] (float32).

    Args:
        optical: (B, 13, H, W) scaled Sentinel-2 (DN / 2000).
        sar: (B, 2, H, W) scaled Sentinel-1.

    Returns:
        Optical (B, 13, H, W) and SAR (B, 2, H, W) in [-1, 1].
    """
    return scaling.scaled_to_pix2pix_s2(optical.float()), scaling.scaled_to_pix2pix_s1(sar.float())


def from_pix2pix(optical: torch.Tensor) -> torch.Tensor:
    """pix2pix-domain optical -> the DSen2-CR scaled domain.

    Args:
        optical: (..., 13, H, W) in [-1, 1].

    Returns:
        The same shape in the scaled domain ([0, 5], x 2000 = DN).
    """
    return scaling.s2_to_scaled(scaling.pix2pix_to_s2(optical))


@register_architecture
class Pix2PixPredictor(RecordedNetwork):
    """A trained pix2pix generator used like a DSen2-CR model (scaled domain in and out).

    Inputs whose size is not a multiple of ``2**num_downs`` are padded (replicate) and the
    output is cropped back. A weight file holds the generator alone (its config and state).

    Args:
        generator: the :class:`UNetGenerator`.
        training_info: free-form description stored with
            :meth:`~dsen2cr.models.weights.RecordedNetwork.save_pretrained`.
    """

    architecture: ClassVar[str] = "Pix2PixUNet"
    config_bounds: ClassVar[dict[str, ConfigBound]] = UNetGenerator.config_bounds
    input_normalization: ClassVar[Mapping[str, object]] = scaling.PIX2PIX_NORMALIZATION
    uses_sar = True

    def __init__(
        self, generator: UNetGenerator, training_info: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.generator = generator
        self.training_info = dict(training_info or {})
        self.name = str(self.training_info.get("name", "pix2pix"))

    @property
    def config(self) -> dict[str, int | bool]:
        """Generator architecture."""
        return self.generator.config

    def forward(self, optical: torch.Tensor, sar: torch.Tensor) -> torch.Tensor:
        """Predict the cloud-free image.

        Args:
            optical: (B, 13, H, W) cloudy Sentinel-2, scaled domain.
            sar: (B, 2, H, W) Sentinel-1, scaled domain.

        Returns:
            (B, 13, H, W) prediction in the scaled domain ([0, 5]).
        """
        h, w = optical.shape[-2:]
        mult = self.generator.multiple
        ph, pw = (-h) % mult, (-w) % mult
        o, s = to_pix2pix_input(optical, sar)
        x = torch.cat([o, s], -3)
        if ph or pw:
            x = nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
        y = self.generator(x)[..., :h, :w]
        return from_pix2pix(y)

    def recorded_module(self) -> nn.Module:
        """The generator: its state dict is what a weight file holds."""
        return self.generator

    @classmethod
    def from_record(cls, record: WeightRecord) -> Pix2PixPredictor:
        """The predictor of a weight record holding a generator.

        Args:
            record: what :func:`~dsen2cr.models.read_weights` read.
        """
        gen = build_strict(record, UNetGenerator, lambda m: m, cls.config_bounds)
        return cls(gen, record.info)
