"""Speed settings (dsen2cr.performance): memory format, autocast, model preparation."""

from __future__ import annotations

import pytest
import torch

from dsen2cr.errors import OptionError
from dsen2cr.models import DSen2CR
from dsen2cr.performance import (
    SpeedOptions,
    autocast,
    configure_backends,
    default_precision,
    precision_mode,
    prepare_model,
    resolve_device,
    resolve_precision,
    to_memory_format,
)


def test_prepare_model_channels_last_keeps_the_function_and_the_weights() -> None:
    model = DSen2CR(features=8, blocks=2).eval()
    optical, sar = torch.rand(2, 13, 20, 24) * 1.5, torch.rand(2, 2, 20, 24) * 2
    with torch.no_grad():
        ref = model(optical, sar)
    keys = list(model.state_dict())
    assert prepare_model(model, "cpu", SpeedOptions(channels_last=True)) is model
    assert all(
        p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.ndim == 4
    )
    with torch.no_grad():
        out = model(to_memory_format(optical), to_memory_format(sar))
    assert out.shape == ref.shape and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    assert list(model.state_dict()) == keys  # checkpoints and safetensors files unchanged


def test_to_memory_format() -> None:
    x = torch.rand(2, 3, 4, 5)
    y = to_memory_format(x)
    assert torch.equal(x, y) and y.is_contiguous(memory_format=torch.channels_last)
    assert to_memory_format(x, channels_last=False) is x
    v = torch.rand(3, 4, 5)  # not a batch: left alone
    assert to_memory_format(v) is v


def test_autocast() -> None:
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.rand(1, 3, 8, 8)
    with autocast("cpu", "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast("cpu", "fp32"):
        assert conv(x).dtype == torch.float32
    with pytest.raises(OptionError, match="precision must be one of fp32, tf32, bf16"):
        autocast("cpu", "fp16")


@pytest.fixture
def tf32_defaults():
    """PyTorch's own TF32 defaults during the test, the flags as they were afterwards."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_precisions_mean_what_they_say(tf32_defaults) -> None:
    """fp32 is IEEE float32 (TF32 off) whatever PyTorch's default; tf32 turns TF32 on; the flags
    are restored afterwards; each device has its documented default."""
    cuda = torch.device("cuda", 0)  # the flags need no GPU
    with precision_mode(cuda, "fp32"):
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    with precision_mode(cuda, "tf32"):
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    with precision_mode("cpu", "fp32"):  # nothing to change on a CPU
        assert torch.backends.cudnn.allow_tf32
    assert default_precision("cpu") == "fp32" and default_precision(cuda) == "tf32"
    assert resolve_precision(None, cuda) == "tf32" and resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(OptionError, match="tf32 runs on CUDA GPUs only") as err:
        resolve_precision("tf32", "cpu")
    assert err.value.option == "precision"


def test_configure_backends_only_touches_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    configure_backends("cpu")
    assert torch.backends.cudnn.benchmark is False
    configure_backends(torch.device("cuda", 0))  # sets the flag; needs no GPU
    assert torch.backends.cudnn.benchmark is True


def test_speed_options_and_devices() -> None:
    assert SpeedOptions() == SpeedOptions(channels_last=True, compile=False)
    with pytest.raises(OptionError, match="compile must be true or false"):
        SpeedOptions(compile="yes")  # type: ignore[arg-type]
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda")
    with pytest.raises(OptionError, match="is not a device") as err:
        resolve_device("tpu")
    assert err.value.option == "device"  # the CLI names the flag, --device
    if not torch.cuda.is_available():
        with pytest.raises(OptionError, match="CUDA is not available"):
            resolve_device("cuda:0")
