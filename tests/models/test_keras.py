"""Keras HDF5 weight import, checked against an independent numpy forward pass.

The tests write small Keras-layout files themselves with h5py (both layouts, the Keras 2.2.4,
tf.keras and offset namings, interleaved weightless layers as Keras lists them) and compare the
imported model with a numpy implementation of the network written from the issue text that reads
the HWIO arrays directly.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from dsen2cr import cli
from dsen2cr.errors import OptionError, WeightsError
from dsen2cr.models import DSen2CR, convert_weights
from dsen2cr.models.keras import read_keras
from dsen2cr.scaling import NORMALIZATION

OPTICAL = 13

# ----------------------------------------------------------------------------- file writer


class Namer:
    """Keras' generated layer names: per-kind counters in one of the naming styles."""

    def __init__(self, style: str = "keras2", offset: int = 0) -> None:
        self.style, self.offset, self.counts = style, offset, Counter()

    def __call__(self, kind: str) -> str:
        i = self.counts[kind]
        self.counts[kind] += 1
        if self.style == "tfkeras":  # conv2d, conv2d_1, conv2d_2, ...
            return kind if i == 0 else f"{kind}_{i}"
        return f"{kind}_{i + 1 + self.offset}"  # keras 2.2.4: conv2d_1, ... (+ offset)


def keras_layers(n_convs: int, sar: bool, namer: Namer, res_scale: float) -> list[dict[str, Any]]:
    """The DSen2-CR layer list in Keras graph order; ``conv`` holds the conv's index."""
    layers: list[dict[str, Any]] = []

    def add(kind: str, cls: str, inbound: list[str], conv: int | None = None, **cfg: Any) -> str:
        name = namer(kind)
        layers.append(
            {"name": name, "class_name": cls, "inbound": inbound, "conv": conv, "config": cfg}
        )
        return name

    def scale_lambda(inbound: str, closure: list[float]) -> str:
        return add("lambda", "Lambda", [inbound], function=["4wEAAAA=", None, closure],
                   function_type="lambda", arguments={})  # fmt: skip

    opt = add("input", "InputLayer", [])
    s1 = add("input", "InputLayer", [])
    x = add("concatenate", "Concatenate", [opt, s1]) if sar else opt
    x = add("conv2d", "Conv2D", [x], conv=0)
    x = add("activation", "Activation", [x])
    block_in = x
    for j in range(1, n_convs - 1):
        x = add("conv2d", "Conv2D", [x], conv=j)
        if j % 2:
            x = add("activation", "Activation", [x])
        else:
            x = scale_lambda(x, [res_scale])
            x = block_in = add("add", "Add", [block_in, x])
    if n_convs > 1:
        x = add("conv2d", "Conv2D", [x], conv=n_convs - 1)
    x = add("add", "Add", [x, opt])
    x = add("concatenate", "Concatenate", [x, opt])
    scale_lambda(x, [2])  # the authors' mask-channel lambda: its closure holds batch_per_gpu
    return layers


def write_keras(
    path: Path,
    kernels: list[np.ndarray],
    biases: list[np.ndarray],
    *,
    layout: str = "weights",
    style: str = "keras2",
    offset: int = 0,
    res_scale: float = 0.1,
    rename: dict[str, str] | None = None,
    extra_layer: tuple[str, dict[str, np.ndarray]] | None = None,
) -> Path:
    """Write a Keras-layout HDF5 file holding the given HWIO kernels and biases.

    ``style="tfkeras"`` also stores the string attributes as str (not bytes) and the empty
    ``weight_names`` as an empty string array, as later h5py/tf.keras versions do.
    """
    sar = kernels[0].shape[2] > OPTICAL
    layers = keras_layers(len(kernels), sar, Namer(style, offset), res_scale)
    rename = rename or {}
    for layer in layers:
        layer["name"] = rename.get(layer["name"], layer["name"])
        layer["inbound"] = [rename.get(n, n) for n in layer["inbound"]]
    as_str = style == "tfkeras"

    def strings(values: list[str]) -> Any:
        if as_str:
            return np.array(values, dtype=h5py.string_dtype()) if values else np.array([], "S1")
        return np.array([v.encode() for v in values]) if values else np.array([], np.float64)

    names = [layer["name"] for layer in layers]
    if extra_layer is not None:
        names.insert(len(names) // 2, extra_layer[0])
    with h5py.File(path, "w") as f:
        if layout == "full":
            config = {
                "class_name": "Model",
                "config": {
                    "name": "model_1",
                    "layers": [
                        {
                            "name": layer["name"],
                            "class_name": layer["class_name"],
                            "config": {"name": layer["name"], **layer["config"]},
                            "inbound_nodes": [[[n, 0, 0, {}] for n in layer["inbound"]]]
                            if layer["inbound"]
                            else [],
                        }
                        for layer in layers
                    ],
                },
            }
            f.attrs["model_config"] = json.dumps(config).encode()
            f.attrs["training_config"] = json.dumps({"optimizer_config": {}}).encode()
            f.attrs["keras_version"] = b"2.2.4"
            f.attrs["backend"] = b"tensorflow"
            f.create_dataset("optimizer_weights/Nadam/iterations:0", data=np.int64(7))
            root = f.create_group("model_weights")
        else:
            root = f
        root.attrs["layer_names"] = strings(names)
        root.attrs["keras_version"] = "2.2.4" if as_str else b"2.2.4"
        root.attrs["backend"] = "tensorflow" if as_str else b"tensorflow"
        for layer in layers:
            g = root.create_group(layer["name"])
            j = layer["conv"]
            if j is None:
                g.attrs["weight_names"] = strings([])
                continue
            wnames = [f"{layer['name']}/kernel:0", f"{layer['name']}/bias:0"]
            g.attrs["weight_names"] = strings(wnames)
            g.create_dataset(wnames[0], data=kernels[j])
            g.create_dataset(wnames[1], data=biases[j])
        if extra_layer is not None:
            name, weights = extra_layer
            g = root.create_group(name)
            g.attrs["weight_names"] = strings(list(weights))
            for wname, data in weights.items():
                g.create_dataset(wname, data=data)
    return path


def random_weights(
    features: int, blocks: int, sar: int, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """HWIO float32 kernels and non-zero biases of a DSen2-CR with the given shape."""
    rng = np.random.default_rng(seed)
    chans = [OPTICAL + sar] + [features] * (2 * blocks + 1) + [OPTICAL]
    kernels, biases = [], []
    for cin, cout in itertools.pairwise(chans):
        std = 0.8 * np.sqrt(2.0 / (9 * cin))
        kernels.append(rng.normal(0.0, std, (3, 3, cin, cout)).astype(np.float32))
        biases.append(rng.normal(0.0, 0.1, cout).astype(np.float32))
    return kernels, biases


# ----------------------------------------------------------------------------- independent model


def conv3x3_hwio(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'same' 3x3 cross-correlation with zero padding: x (C, H, W), kernel (3, 3, C, O)."""
    _, h, w = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    out = np.broadcast_to(bias.astype(np.float64)[:, None, None], (kernel.shape[3], h, w)).copy()
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("chw,co->ohw", xp[:, dy : dy + h, dx : dx + w], kernel[dy, dx])
    return out


def numpy_forward(
    kernels: list[np.ndarray],
    biases: list[np.ndarray],
    optical: np.ndarray,
    sar: np.ndarray | None,
    res_scale: float,
) -> np.ndarray:
    """DSen2-CR forward (issue 2, section 2) in float64 numpy for one (13, H, W) image."""
    k = [a.astype(np.float64) for a in kernels]
    x = np.concatenate([optical, sar]) if sar is not None else optical
    h = np.maximum(conv3x3_hwio(x, k[0], biases[0]), 0.0)
    for i in range((len(k) - 2) // 2):
        t = np.maximum(conv3x3_hwio(h, k[1 + 2 * i], biases[1 + 2 * i]), 0.0)
        h = h + res_scale * conv3x3_hwio(t, k[2 + 2 * i], biases[2 + 2 * i])
    return conv3x3_hwio(h, k[-1], biases[-1]) + optical


def inputs(sar: int, h: int = 7, w: int = 9, seed: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    optical = rng.uniform(0.0, 2.0, (OPTICAL, h, w))
    s1 = rng.uniform(0.0, 2.0, (sar, h, w)) if sar else None
    return optical, s1


def max_difference(model: DSen2CR, kernels, biases, sar: int, res_scale: float) -> float:
    optical, s1 = inputs(sar)
    expected = numpy_forward(kernels, biases, optical, s1, res_scale)
    model = model.double()
    with torch.no_grad():
        got = model(
            torch.from_numpy(optical)[None],
            torch.from_numpy(s1)[None] if s1 is not None else None,
        )[0].numpy()
    return float(np.abs(got - expected).max())


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("layout", ["weights", "full"])
@pytest.mark.parametrize(("style", "offset"), [("keras2", 0), ("tfkeras", 0), ("keras2", 34)])
@pytest.mark.parametrize("sar", [2, 0])
def test_load_matches_independent_forward(tmp_path, layout, style, offset, sar) -> None:
    kernels, biases = random_weights(features=8, blocks=2, sar=sar)
    path = write_keras(tmp_path / "w.hdf5", kernels, biases, layout=layout, style=style,
                       offset=offset)  # fmt: skip
    config, state, info = read_keras(path)
    assert config == {"features": 8, "blocks": 2, "res_scale": 0.1, "sar_channels": sar,
                      "optical_channels": 13}  # fmt: skip
    assert state["head.weight"].shape == (8, 13 + sar, 3, 3)
    assert state["head.weight"].dtype == torch.float32
    assert info["layout"] == ("full-model" if layout == "full" else "weights-only")
    assert info["keras_version"] == "2.2.4"
    model = DSen2CR.from_pretrained(path)
    assert model.uses_sar == bool(sar)
    diff = max_difference(model, kernels, biases, sar, 0.1)
    print(f"max |torch - numpy| ({layout}, {style}+{offset}, sar={sar}): {diff:.3e}")
    assert diff < 1e-12


def test_float32_forward_close(tmp_path) -> None:
    kernels, biases = random_weights(features=8, blocks=2, sar=2, seed=3)
    model = DSen2CR.from_pretrained(write_keras(tmp_path / "w.h5", kernels, biases))
    optical, s1 = inputs(2)
    expected = numpy_forward(kernels, biases, optical, s1, 0.1)
    with torch.no_grad():
        got = model(torch.from_numpy(optical).float()[None], torch.from_numpy(s1).float()[None])
    np.testing.assert_allclose(got[0].numpy(), expected, atol=1e-5)


def test_res_scale_read_from_model_config(tmp_path) -> None:
    kernels, biases = random_weights(features=8, blocks=2, sar=2, seed=4)
    full = write_keras(tmp_path / "full.hdf5", kernels, biases, layout="full", res_scale=0.25)
    config, _, info = read_keras(full)
    assert config["res_scale"] == 0.25
    assert info["res_scale_source"] == "model_config"
    assert max_difference(DSen2CR.from_pretrained(full), kernels, biases, 2, 0.25) < 1e-12
    # a weights-only file does not record it: the paper's 0.1
    only = write_keras(tmp_path / "only.hdf5", kernels, biases, res_scale=0.25)
    config, _, info = read_keras(only)
    assert config["res_scale"] == 0.1
    assert info["res_scale_source"] == "default"


def test_layer_order_is_layer_names_not_sorted_names(tmp_path) -> None:
    # B = 5: conv2d_1 ... conv2d_12, where a name sort puts conv2d_10 before conv2d_2
    kernels, biases = random_weights(features=8, blocks=5, sar=2, seed=5)
    for style in ("keras2", "tfkeras"):
        path = write_keras(tmp_path / f"{style}.hdf5", kernels, biases, style=style)
        model = DSen2CR.from_pretrained(path)
        assert model.blocks == 5
        assert max_difference(model, kernels, biases, 2, 0.1) < 1e-12
    # body layers carrying shuffled names: the shapes still chain, only the order tells them apart
    body = [f"conv2d_{i}" for i in range(2, 12)]
    perm = np.random.default_rng(0).permutation(body)
    path = write_keras(tmp_path / "shuffled.hdf5", kernels, biases,
                       rename=dict(zip(body, perm, strict=True)))  # fmt: skip
    with h5py.File(path) as f:
        listed = [n.decode() for n in f.attrs["layer_names"] if n.startswith(b"conv2d")]
    assert listed != sorted(listed)
    assert max_difference(DSen2CR.from_pretrained(path), kernels, biases, 2, 0.1) < 1e-12


def test_convert_and_training_info(tmp_path) -> None:
    kernels, biases = random_weights(features=8, blocks=2, sar=2, seed=6)
    src = write_keras(tmp_path / "model_SARcarl.hdf5", kernels, biases, layout="full")
    out = tmp_path / "out" / "model_SARcarl.safetensors"
    model = convert_weights(src, out)
    assert out.is_file()
    native = DSen2CR.from_pretrained(out)
    assert native.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(native.state_dict()[key], value)
    info = native.training_info
    assert info["source"] == "keras"
    assert info["file"] == "model_SARcarl.hdf5"
    assert info["loss"] == "carl"
    assert info["input_normalization"] == json.loads(json.dumps(NORMALIZATION))
    assert max_difference(native, kernels, biases, 2, 0.1) < 1e-12

    k0, b0 = random_weights(features=8, blocks=1, sar=0, seed=7)
    plain = write_keras(tmp_path / "model_noSARplain.hdf5", k0, b0)
    assert read_keras(plain)[2]["loss"] == "l1"
    assert read_keras(write_keras(tmp_path / "x.h5", k0, b0))[2]["loss"] == "unknown"


def test_convert_refuses_overwriting_input(tmp_path) -> None:
    kernels, biases = random_weights(features=4, blocks=1, sar=2)
    src = write_keras(tmp_path / "w.hdf5", kernels, biases)
    with pytest.raises(OptionError, match="is the input"):
        convert_weights(src, src)
    assert read_keras(src)[0]["features"] == 4


def test_cli_convert_and_info(tmp_path, capsys) -> None:
    kernels, biases = random_weights(features=8, blocks=2, sar=0, seed=8)
    src = write_keras(tmp_path / "model_noSARcarl.hdf5", kernels, biases, layout="full")
    out = tmp_path / "converted.safetensors"
    assert cli.main(["convert-weights", str(src), str(out)]) == 0
    assert out.is_file()
    assert "wrote" in capsys.readouterr().out
    for weights in (out, src):
        assert cli.main(["info", str(weights)]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["config"]["sar_channels"] == 0
        assert info["config"]["blocks"] == 2
        assert info["receptive_field_radius"] == 6
        assert info["training"]["loss"] == "carl"
        n = sum(k.size + b.size for k, b in zip(kernels, biases, strict=True))
        assert info["parameters"] == n


def _modify(kernels: list[np.ndarray], biases: list[np.ndarray], case: str):
    k, b = list(kernels), list(biases)
    extra = None
    if case == "odd_count":
        k, b = k[:-1], b[:-1]
    elif case == "single_layer":
        k, b = k[:1], b[:1]
    elif case == "kernel_5x5":
        k[2] = np.zeros((5, 5, 8, 8), np.float32)
    elif case == "broken_chain":
        k[2], b[2] = np.zeros((3, 3, 8, 9), np.float32), np.zeros(9, np.float32)
    elif case == "body_width":
        k[1], b[1] = np.zeros((3, 3, 8, 6), np.float32), np.zeros(6, np.float32)
        k[2] = np.zeros((3, 3, 6, 8), np.float32)
    elif case == "bias_size":
        b[3] = np.zeros(7, np.float32)
    elif case == "head_narrow":
        k[0] = np.zeros((3, 3, 4, 8), np.float32)
    elif case == "batchnorm":
        extra = ("batch_normalization_1", {
            "batch_normalization_1/gamma:0": np.ones(8, np.float32),
            "batch_normalization_1/beta:0": np.zeros(8, np.float32),
        })  # fmt: skip
    elif case == "dense":
        extra = ("dense_1", {"dense_1/kernel:0": np.ones((8, 4), np.float32),
                             "dense_1/bias:0": np.zeros(4, np.float32)})  # fmt: skip
    elif case == "missing_array":
        extra = ("conv2d_99", {})
    return k, b, extra


BAD_FILES = ["odd_count", "single_layer", "kernel_5x5", "broken_chain", "body_width",
             "bias_size", "head_narrow", "batchnorm", "dense", "missing_array",
             "not_hdf5", "no_layer_names", "missing_file", "directory"]  # fmt: skip


def make_bad_file(tmp_path: Path, case: str) -> Path:
    path = tmp_path / f"bad_{case}.hdf5"
    if case == "missing_file":
        return path
    if case == "directory":
        path.mkdir()
        return path
    if case == "not_hdf5":
        path.write_bytes(b"this is not an HDF5 file\n" * 10)
        return path
    if case == "no_layer_names":
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=np.zeros(3))
        return path
    kernels, biases = random_weights(features=8, blocks=2, sar=2)
    k, b, extra = _modify(kernels, biases, case)
    write_keras(path, k, b, extra_layer=extra)
    if case == "missing_array":
        with h5py.File(path, "a") as f:
            f["conv2d_99"].attrs["weight_names"] = np.array([b"conv2d_99/kernel:0"])
    return path


@pytest.mark.parametrize("case", BAD_FILES)
def test_refuses_non_dsen2cr_files(tmp_path, case, capsys) -> None:
    path = make_bad_file(tmp_path, case)
    with pytest.raises(WeightsError) as err:
        read_keras(path)
    assert path.name in str(err.value)
    with pytest.raises(WeightsError):
        DSen2CR.from_pretrained(path)

    before = set(tmp_path.iterdir())
    out = tmp_path / "out.safetensors"
    assert cli.main(["convert-weights", str(path), str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("dsen2cr convert-weights: error:")
    assert not out.exists()
    assert set(tmp_path.iterdir()) == before  # no partial output left behind


def _message(tmp_path: Path, case: str) -> str:
    with pytest.raises(WeightsError) as err:
        read_keras(make_bad_file(tmp_path, case))
    return str(err.value)


@pytest.mark.parametrize(
    ("case", "words"),
    [("odd_count", "5 convolution layer"), ("kernel_5x5", "5x5"), ("broken_chain", "chain"),
     ("batchnorm", "gamma"), ("dense", "dense_1"), ("not_hdf5", "not an HDF5"),
     ("no_layer_names", "layer_names"), ("missing_file", "not found"),
     ("missing_array", "no such array"), ("body_width", "residual-block")],
)  # fmt: skip
def test_refusal_messages_name_the_problem(tmp_path, case, words) -> None:
    assert words in _message(tmp_path, case)


def test_chunked_layer_names_attribute(tmp_path) -> None:
    # Keras splits attributes over 64 KiB into layer_names0, layer_names1, ...
    kernels, biases = random_weights(features=4, blocks=1, sar=2, seed=9)
    path = write_keras(tmp_path / "chunked.hdf5", kernels, biases)
    with h5py.File(path, "a") as f:
        names = f.attrs["layer_names"]
        del f.attrs["layer_names"]
        f.attrs["layer_names0"] = names[:5]
        f.attrs["layer_names1"] = names[5:]
    assert max_difference(DSen2CR.from_pretrained(path), kernels, biases, 2, 0.1) < 1e-12
