"""Speed settings shared by training, prediction and ``dsen2cr benchmark``.

One place for what makes DSen2-CR fast on an accelerator, so that every code path applies it the
same way:

- **channels_last** (NHWC) memory format for the network and its inputs: the layout cuDNN's
  tensor-core convolutions (and oneDNN on CPU) work in, so no layout transposes run around every
  convolution;
- **bf16 autocast** (:func:`autocast`), with losses and masks kept in float32;
- **cuDNN autotuning** (``torch.backends.cudnn.benchmark``) for fixed input shapes;
- optional **torch.compile** of the network (``nn.Module.compile``, so the state dict keeps its
  keys);
- the **model FLOP count** (:func:`conv_flops_per_pixel`) used for throughput in TFLOP/s and MFU.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

TRAIN_FLOP_FACTOR = 3
"""Model FLOPs of one training step over its forward pass: forward + backward (input and weight
gradients, each as costly as the forward). The usual MFU convention; the real backward skips the
input gradient of the first convolution, so this slightly over-counts (by < 0.1 % for F=256)."""


def conv_flops_per_pixel(model: nn.Module) -> int:
    """Forward FLOPs per output pixel of a stride-1, size-preserving convolutional network.

    Counts 2 FLOPs (multiply + add) per multiply-accumulate of every ``nn.Conv2d``:
    ``2 * kh * kw * (C_in / groups) * C_out``; biases, activations and the long skip (a few
    FLOPs per pixel) are not counted, following the usual model-FLOP convention. For DSen2-CR
    (F=256, B=16, with SAR) this is 37,877,760 FLOP per pixel (18.94 M multiply-accumulates).

    Args:
        model: a network whose convolutions all keep the spatial size (stride 1, 'same' padding),
            such as :class:`dsen2cr.models.DSen2CR`.

    Returns:
        FLOPs per pixel of one forward pass.

    Raises:
        ValueError: a convolution with a stride other than 1 (the per-pixel count would be wrong).
    """
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if tuple(m.stride) != (1, 1):
                raise ValueError(f"conv_flops_per_pixel needs stride-1 convolutions, got {m}")
            kh, kw = m.kernel_size
            total += 2 * kh * kw * (m.in_channels // m.groups) * m.out_channels
    return total


def configure_backends(device: torch.device | str) -> None:
    """Turn on cuDNN autotuning on CUDA (every tile / crop has the same shape).

    cuDNN then times its convolution algorithms once per input shape and keeps the fastest.
    Nothing changes on CPU.
    """
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True


def prepare_model(
    model: nn.Module,
    device: torch.device | str,
    *,
    channels_last: bool = True,
    compile: bool = False,
) -> nn.Module:
    """Move a model to ``device`` in the fast memory format, optionally compiled, in place.

    The model passed in is changed: its parameters move and change memory format, and
    ``compile=True`` leaves it compiled for later calls too.

    Args:
        model: the network.
        device: target device.
        channels_last: store the convolution weights as NHWC (faster with cuDNN's tensor cores
            and with oneDNN on CPU); feed inputs through :func:`to_memory_format`. False
            stores them as plain NCHW.
        compile: ``model.compile()`` (TorchInductor): fuses the bias, ReLU, residual scaling and
            addition into fewer kernels. The first call of each input shape compiles (tens of
            seconds); the state dict keeps its keys.

    Returns:
        ``model`` itself.
    """
    model.to(device)
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if compile:
        model.compile()
    return model


def to_memory_format(x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """A (B, C, H, W) tensor in NHWC memory (shape unchanged) when ``channels_last``, else as is."""
    if channels_last and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` to bfloat16 for ``precision == "bf16"``, else a no-op context.

    Args:
        device: the device the computation runs on.
        precision: ``"fp32"`` or ``"bf16"``.
    """
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
    return contextlib.nullcontext()
