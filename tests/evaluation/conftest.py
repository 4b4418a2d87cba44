"""Shared fixtures of the evaluation tests: tiny weight files of every format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dsen2cr.models import DSen2CR, Pix2PixPredictor, UNetGenerator


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    out = {}
    sar = DSen2CR(features=8, blocks=1)
    out["sar"] = sar.save_pretrained(d / "tiny_sar.safetensors")
    nosar = DSen2CR(features=8, blocks=1, sar_channels=0)
    out["nosar"] = nosar.save_pretrained(d / "tiny_nosar.safetensors")
    zero = DSen2CR(features=8, blocks=1)
    with torch.no_grad():  # a zero tail makes the long skip return the cloudy input exactly
        zero.tail.weight.zero_()
        zero.tail.bias.zero_()
    out["zero"] = zero.save_pretrained(d / "zero_tail.safetensors")
    out["keras"] = _write_keras(sar, d / "tiny_sar_keras.hdf5")
    out["pix2pix"] = Pix2PixPredictor(UNetGenerator(ngf=4, num_downs=3)).save_pretrained(
        d / "tiny_pix2pix.safetensors"
    )
    return out


def _write_keras(model: DSen2CR, path: Path) -> Path:
    """The model's weights in the Keras 2.x weights-only HDF5 layout (HWIO kernels)."""
    import h5py

    convs = [model.head] + [c for b in model.body for c in (b.conv1, b.conv2)] + [model.tail]
    names = [f"conv2d_{i + 1}" for i in range(len(convs))]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array(["input_1", *names], dtype="S")
        f.attrs["keras_version"] = b"2.2.4"
        f.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S")
        for name, conv in zip(names, convs, strict=True):
            g = f.create_group(name)
            g.attrs["weight_names"] = np.array([f"{name}/kernel:0", f"{name}/bias:0"], dtype="S")
            g.create_dataset(f"{name}/kernel:0", data=conv.weight.detach().numpy().transpose(2, 3, 1, 0))
            g.create_dataset(f"{name}/bias:0", data=conv.bias.detach().numpy())
    return path
