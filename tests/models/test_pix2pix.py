"""The pix2pix baseline's networks (paper Section 4.3): U-Net generator, 70 x 70 PatchGAN,
initialisation and lr schedule. Tiny widths."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dsen2cr.models.pix2pix import PatchGANDiscriminator, UNetGenerator, lr_factor


def test_generator_architecture() -> None:
    gen = UNetGenerator(ngf=4, num_downs=8)
    # three dropout levels below the bottleneck group, as pix2pix's unet_256
    assert sum(isinstance(m, nn.Dropout) for m in gen.modules()) == 3
    assert sum(isinstance(m, nn.Conv2d) for m in gen.modules()) == 8
    assert sum(isinstance(m, nn.BatchNorm2d) for m in gen.modules()) == 6 + 7
    gen.eval()
    x = torch.rand(1, 15, 256, 256) * 2 - 1
    y = gen(x)
    assert y.shape == (1, 13, 256, 256) and y.abs().max() <= 1.0
    assert UNetGenerator(ngf=4, num_downs=5, dropout=True).config["num_downs"] == 5
    assert not any(isinstance(m, nn.Dropout) for m in UNetGenerator(ngf=4, num_downs=5).modules())
    with pytest.raises(ValueError, match="divisible by 32"):
        UNetGenerator(ngf=4, num_downs=5)(torch.zeros(1, 15, 48, 48))


def test_discriminator_70x70() -> None:
    d = PatchGANDiscriminator(ndf=4)
    assert d.in_channels == 28
    out = d(torch.zeros(2, 28, 256, 256))
    assert out.shape == (2, 1, 30, 30)  # the pix2pix 70 x 70 PatchGAN output on 256 x 256
    with pytest.raises(ValueError, match="28"):
        d(torch.zeros(1, 27, 64, 64))


def test_weight_init_statistics() -> None:
    torch.manual_seed(0)
    gen = UNetGenerator(ngf=32, num_downs=8)
    convs = [m for m in gen.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    w = torch.cat([m.weight.flatten() for m in convs])
    assert abs(w.mean().item()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)
    assert all(m.bias is None or not m.bias.any() for m in convs)
    assert sum(m.bias is not None for m in convs) == 1  # only the output layer has a bias
    bn = [m for m in gen.modules() if isinstance(m, nn.BatchNorm2d)]
    g = torch.cat([m.weight for m in bn])
    assert g.mean().item() == pytest.approx(1.0, abs=3e-3) and g.std().item() == pytest.approx(0.02, rel=0.1)
    assert not torch.cat([m.bias for m in bn]).any()
    d = PatchGANDiscriminator()
    dw = torch.cat([m.weight.flatten() for m in d.modules() if isinstance(m, nn.Conv2d)])
    assert dw.std().item() == pytest.approx(0.02, rel=0.02)


def test_lr_factor_formula() -> None:
    factors = [lr_factor(e, 5, 5) for e in range(10)]
    assert factors == pytest.approx([1, 1, 1, 1, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
