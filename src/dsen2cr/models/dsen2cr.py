"""The DSen2-CR network (paper Section 3.3, Fig. 3).

The network is EDSR/DSen2-style and fully convolutional::

    x = concat(optical, sar)                       # (B, 13 + 2, H, W), scaled domain
    h = relu(conv3x3(x))                           # head, F features
    for each of B blocks:
        h = h + res_scale * conv3x3(relu(conv3x3(h)))
    out = conv3x3(h) + optical                     # tail to 13 bands, long skip

Every convolution is 3x3, stride 1, zero padding 1, with a bias; no batch normalisation.

Weights are read and written by :mod:`dsen2cr.models.weights`: the class is a
:class:`~dsen2cr.models.weights.RecordedNetwork` (``from_pretrained`` and ``save_pretrained``
are its shortcuts) registered there as the architecture ``"DSen2CR"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from dsen2cr.models.weights import ConfigBound, RecordedNetwork, register_architecture
from dsen2cr.scaling import NORMALIZATION


class ResidualBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3 -> x res_scale, plus the block input (no activation after)."""

    def __init__(self, features: int, res_scale: float = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + res_scale * conv(relu(conv(x)))``.

        Args:
            x: (B, F, H, W) features; the output has the same shape.
        """
        # x + res_scale * y in one kernel (one pass over the activations instead of two)
        return torch.add(x, self.conv2(self.relu(self.conv1(x))), alpha=self.res_scale)


@register_architecture
class DSen2CR(RecordedNetwork):
    """DSen2-CR cloud-removal network.

    Args:
        features: feature maps F of the head and every residual block (paper: 256).
        blocks: number of residual blocks B (paper: 16).
        res_scale: residual scaling constant (paper: 0.1).
        sar_channels: SAR input bands (2 = VV, VH; 0 = optical-only ablation).
        optical_channels: optical input and output bands (13 Sentinel-2 L1C bands).

    Attributes:
        training_info: free-form description of how the weights were made (loss, data, source),
            stored in the weight file's metadata by
            :meth:`~dsen2cr.models.weights.RecordedNetwork.save_pretrained`.
        name: a short name of the weights (the run name or file stem when loaded).
        config_bounds: what a weight file may record (checked before anything is built):
            ``features`` 1..4096, ``blocks`` 0..1024, ``sar_channels`` 0..1024,
            ``optical_channels`` 1..1024 (integers), ``res_scale`` a finite number.
    """

    architecture: ClassVar[str] = "DSen2CR"
    config_bounds: ClassVar[dict[str, ConfigBound]] = {
        "features": ConfigBound(int, 1, 4096),
        "blocks": ConfigBound(int, 0, 1024),
        "res_scale": ConfigBound(float),
        "sar_channels": ConfigBound(int, 0, 1024),
        "optical_channels": ConfigBound(int, 1, 1024),
    }
    input_normalization: ClassVar[Mapping[str, object]] = NORMALIZATION

    def __init__(
        self,
        features: int = 256,
        blocks: int = 16,
        res_scale: float = 0.1,
        sar_channels: int = 2,
        optical_channels: int = 13,
    ) -> None:
        super().__init__()
        if features < 1 or blocks < 0 or sar_channels < 0 or optical_channels < 1:
            raise ValueError(
                f"invalid DSen2CR configuration: features={features}, blocks={blocks}, "
                f"sar_channels={sar_channels}, optical_channels={optical_channels}"
            )
        self.features = features
        self.blocks = blocks
        self.res_scale = float(res_scale)
        self.sar_channels = sar_channels
        self.optical_channels = optical_channels
        self.training_info = {}
        self.name = "dsen2cr"

        self.head = nn.Conv2d(optical_channels + sar_channels, features, 3, padding=1, bias=True)
        self.body = nn.Sequential(*(ResidualBlock(features, res_scale) for _ in range(blocks)))
        self.tail = nn.Conv2d(features, optical_channels, 3, padding=1, bias=True)
        self.reset_parameters()

    # ------------------------------------------------------------------ architecture
    @property
    def config(self) -> dict[str, int | float]:
        """The constructor arguments that rebuild this architecture."""
        return {
            "features": self.features,
            "blocks": self.blocks,
            "res_scale": self.res_scale,
            "sar_channels": self.sar_channels,
            "optical_channels": self.optical_channels,
        }

    @property
    def uses_sar(self) -> bool:
        """Whether the network takes a SAR input."""
        return self.sar_channels > 0

    @property
    def receptive_field_radius(self) -> int:
        """Pixels on each side an output pixel depends on: one per 3x3 conv, ``2 B + 2``.

        Predicting a tile with a halo at least this wide and keeping its centre gives exactly the
        output of running the whole scene at once.
        """
        return 2 * self.blocks + 2

    def reset_parameters(self) -> None:
        """He-uniform weights (U(+-sqrt(6 / fan_in)), as Keras' ``he_uniform``), zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=0.0, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the cloud-free image.

        Args:
            optical: (B, 13, H, W) cloudy Sentinel-2, scaled domain (DN clipped to [0, 10000],
                / 2000).
            sar: (B, 2, H, W) Sentinel-1 VV, VH scaled to [0, 2]. Required when the network uses
                SAR, ignored when ``sar_channels == 0``.

        Returns:
            (B, 13, H, W) cloud-free prediction in the scaled domain (x 2000 = DN).
        """
        if optical.shape[-3] != self.optical_channels:
            raise ValueError(
                f"optical input has {optical.shape[-3]} bands, expected {self.optical_channels}"
            )
        if self.sar_channels:
            if sar is None:
                raise ValueError("this DSen2CR model uses SAR: pass sar=(B, 2, H, W)")
            if sar.shape[-3] != self.sar_channels or sar.shape[-2:] != optical.shape[-2:]:
                raise ValueError(
                    f"sar input of shape {tuple(sar.shape)} does not match optical "
                    f"{tuple(optical.shape)} and {self.sar_channels} SAR bands"
                )
            x = torch.cat([optical, sar.to(optical.dtype)], dim=-3)
        else:
            x = optical
        h = torch.relu(self.head(x))
        h = self.body(h)
        out: torch.Tensor = self.tail(h) + optical
        return out
