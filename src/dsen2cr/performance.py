"""Speed settings and devices, shared by training, prediction and ``dsen2cr benchmark``.

One place for what makes DSen2-CR fast on an accelerator, so that every code path applies it the
same way (:class:`SpeedOptions` is the one record of them: ``predict``'s options, the benchmark's
ladder rungs and the training config's ``speed`` section):

- **channels_last** (NHWC) memory format for the network and its inputs: the layout cuDNN's
  tensor-core convolutions (and oneDNN on CPU) work in, so no layout transposes run around every
  convolution;
- **bf16 autocast** (:func:`autocast`), with losses and masks kept in float32;
- **cuDNN autotuning** (``torch.backends.cudnn.benchmark``) for fixed input shapes;
- optional **torch.compile** of the network (``nn.Module.compile``, so the state dict keeps its
  keys);
- the **model FLOP count** (:func:`conv_flops_per_pixel`) used for throughput in TFLOP/s and MFU;
- the **device** a run uses (:func:`resolve_device`).

Precision is not part of :class:`SpeedOptions`: inference and the benchmark take one of
:data:`PRECISIONS` (:func:`precision_mode`), training takes Lightning's ``trainer.precision``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from dsen2cr.errors import OptionError

PRECISIONS = ("fp32", "tf32", "bf16")
"""Inference precisions, each meaning the same on every device:

* ``fp32``: IEEE float32 throughout (TF32 tensor cores off on CUDA, whatever PyTorch's default);
* ``tf32``: float32 tensors, convolutions and matrix products on CUDA's TF32 tensor cores (10-bit
  mantissa; PyTorch's own default for cuDNN convolutions); CUDA only;
* ``bf16``: ``torch.autocast`` to bfloat16 (8-bit mantissa), outputs in float32.
"""


@dataclass(frozen=True)
class SpeedOptions:
    """How the network runs: memory format and compilation.

    Attributes:
        channels_last: NHWC weights and inputs (the layout of cuDNN's tensor-core convolutions
            and of oneDNN on CPU); False runs plain NCHW. Same result up to float round-off.
        compile: ``torch.compile`` the network (``nn.Module.compile``, so state dicts keep their
            keys); the first call of each input shape compiles (tens of seconds).
    """

    channels_last: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise OptionError(name, f"must be true or false, got {getattr(self, name)!r}")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else an :class:`OptionError`."""
    if precision not in PRECISIONS:
        raise OptionError("precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def default_precision(device: torch.device | str) -> str:
    """The precision a device runs when none is asked for: ``tf32`` on CUDA, ``fp32`` elsewhere.

    On CUDA, TF32 is what PyTorch runs cuDNN convolutions in by default (what ``fp32`` meant here
    before it meant IEEE float32), so the default output is unchanged; IEEE ``fp32`` is several
    times slower on tensor-core GPUs and ``bf16`` faster but further from float32 (README,
    "Precision").
    """
    return "tf32" if torch.device(device).type == "cuda" else "fp32"


def resolve_precision(precision: str | None, device: torch.device | str) -> str:
    """The precision a run uses: ``precision``, or the device's :func:`default_precision`.

    Raises:
        OptionError: an unknown precision, or ``tf32`` on a device without TF32 (not CUDA).
    """
    if precision is None or precision == "auto":
        return default_precision(device)
    check_precision(precision)
    if precision == "tf32" and torch.device(device).type != "cuda":
        raise OptionError("precision", f"tf32 runs on CUDA GPUs only, not on {device}; use fp32 or bf16")
    return precision


def _tf32_flags() -> tuple[bool, bool]:
    return bool(torch.backends.cudnn.allow_tf32), bool(torch.backends.cuda.matmul.allow_tf32)


def _set_tf32(conv: bool, matmul: bool) -> None:
    torch.backends.cudnn.allow_tf32 = conv
    torch.backends.cuda.matmul.allow_tf32 = matmul


@contextlib.contextmanager
def precision_mode(device: torch.device | str, precision: str) -> Iterator[None]:
    """Run the block in ``precision`` on ``device`` (:data:`PRECISIONS`), restoring PyTorch's
    TF32 flags afterwards.

    ``fp32`` turns TF32 off for cuDNN convolutions and CUDA matrix products, ``tf32`` turns it on,
    ``bf16`` enters :func:`autocast` (TF32 off for what stays float32).
    """
    check_precision(precision)
    dev = torch.device(device)
    with contextlib.ExitStack() as stack:
        if dev.type == "cuda":
            before = _tf32_flags()
            tf32 = precision == "tf32"
            _set_tf32(tf32, tf32)
            stack.callback(_set_tf32, *before)
        stack.enter_context(autocast(dev, precision))
        yield


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device of a ``device`` option, checked against this machine.

    Args:
        device: ``"auto"`` or None (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or a ``torch.device``.

    Raises:
        OptionError: an unknown device, or CUDA that this machine does not have.
    """
    d = str(device or "auto").lower()
    if d == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if d.startswith("cuda"):
        if not torch.cuda.is_available():
            raise OptionError("device", f"{device}: CUDA is not available on this machine")
        try:
            dev = torch.device(d)
        except RuntimeError:
            raise OptionError("device", f"{device!r} is not a device: use auto, cpu, cuda or cuda:N") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise OptionError(
                "device", f"{device}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
        return dev
    if d == "cpu":
        return torch.device("cpu")
    raise OptionError("device", f"{device!r} is not a device: use auto, cpu, cuda or cuda:N")

def host_memory_available() -> int | None:
    """Bytes this process can still allocate: the system's available memory, or less under an
    address-space limit (``ulimit -v``); None where it cannot be told (not Linux)."""
    avail: int | None = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            with open("/proc/self/status") as fh:
                used = next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmSize:"))
            avail = min(avail if avail is not None else limit, max(0, limit - used))
    except (ImportError, OSError, ValueError, StopIteration):
        pass
    return avail


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
    model: nn.Module, device: torch.device | str, speed: SpeedOptions | None = None
) -> nn.Module:
    """Move a model to ``device`` in the fast memory format, optionally compiled, in place.

    The model passed in is changed: its parameters move and change memory format, and
    ``speed.compile`` leaves it compiled for later calls too. Feed inputs through
    :func:`to_memory_format` with the same ``speed.channels_last``.

    Args:
        model: the network.
        device: target device.
        speed: memory format and compilation (default :class:`SpeedOptions`: NHWC, not
            compiled). ``compile`` runs ``model.compile()`` (TorchInductor), which fuses the
            bias, ReLU, residual scaling and addition into fewer kernels.

    Returns:
        ``model`` itself.
    """
    speed = speed or SpeedOptions()
    model.to(device)
    fmt = torch.channels_last if speed.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)  # type: ignore[call-overload]
    if speed.compile:
        model.compile()
    return model


def to_memory_format(x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """A (B, C, H, W) tensor in NHWC memory (shape unchanged) when ``channels_last``, else as is."""
    if channels_last and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def autocast(
    device: torch.device | str, precision: str
) -> contextlib.AbstractContextManager[None]:
    """``torch.autocast`` to bfloat16 for ``precision == "bf16"``, else a no-op context
    (:func:`precision_mode` also sets the TF32 flags).

    Args:
        device: the device the computation runs on.
        precision: one of :data:`PRECISIONS`.
    """
    if check_precision(precision) == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
