"""Read the authors' Keras 2.x HDF5 weights (``model_SARcarl.hdf5`` ...) as DSen2-CR weights.

The published DSen2-CR files were written by Keras 2.2.4. A Keras HDF5 file has one of two
layouts:

* **weights only** (``model.save_weights``): the root has the attribute ``layer_names`` and one
  group per layer;
* **full model** (``model.save``): the same structure under the group ``model_weights``, beside the
  attributes ``model_config`` (the architecture as JSON) and ``training_config`` and the group
  ``optimizer_weights``.

Every layer group has the attribute ``weight_names`` (``conv2d_7/kernel:0``, ``conv2d_7/bias:0``;
empty for layers without weights) naming its datasets relative to the group. Layer names are
generated (``conv2d_1`` ... in Keras 2.2.4, ``conv2d``, ``conv2d_1`` ... in tf.keras, other offsets
when several models were built in one process), so the layers are taken in the order of the
``layer_names`` attribute, which is Keras' own graph order, never in an order of their names.

Kernels are stored HWIO ``(kh, kw, in, out)`` whatever the data format; PyTorch wants
``(out, in, kh, kw)``. Both compute cross-correlation, so no flip is needed.

The convolution chain is checked against DSen2-CR's structure (head, ``2 B`` body convolutions,
tail, all 3x3) and F, B and the number of SAR bands are inferred from the shapes.

:func:`read_keras` only reads the file; :func:`dsen2cr.models.load_weights` (which calls it for
``.hdf5``/``.h5`` files) builds the network.
"""

from __future__ import annotations

import itertools
import json
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from dsen2cr.errors import WeightsError, WeightsNotFoundError
from dsen2cr.scaling import NORMALIZATION

DEFAULT_RES_SCALE = 0.1
"""Residual scaling of the paper, used when the file does not record it readably."""


@dataclass
class _Conv:
    """One convolution layer as stored by Keras: HWIO kernel and bias."""

    name: str
    kernel: np.ndarray
    bias: np.ndarray


# ----------------------------------------------------------------------------- HDF5 helpers
def _as_str(value: object) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    return str(value)


def _str_list(value: object) -> list[str]:
    """Decode a Keras string-list attribute (numpy array of bytes or str, list, scalar)."""
    if value is None:
        return []
    if isinstance(value, (bytes, np.bytes_, str)):
        return [_as_str(value)]
    arr = np.asarray(value)
    if arr.size == 0:
        return []
    return [_as_str(v) for v in arr.reshape(-1).tolist()]


def _read_list_attr(group: h5py.Group, name: str) -> list[str] | None:
    """Read a string-list attribute, joining Keras' chunks (``name0``, ``name1``, ...) if split."""
    if name in group.attrs:
        return _str_list(group.attrs[name])
    if f"{name}0" not in group.attrs:
        return None
    out: list[str] = []
    chunk = 0
    while f"{name}{chunk}" in group.attrs:
        out.extend(_str_list(group.attrs[f"{name}{chunk}"]))
        chunk += 1
    return out


def _scalar_attr(group: h5py.Group, name: str) -> str | None:
    if name not in group.attrs:
        return None
    values = _str_list(group.attrs[name])
    return values[0] if values else None


# ----------------------------------------------------------------------------- reading
def _read_convs(root: h5py.Group, path: Path) -> list[_Conv]:
    """Kernel and bias of every layer with weights, in the order of ``layer_names``."""
    layer_names = _read_list_attr(root, "layer_names")
    if layer_names is None:  # pragma: no cover - checked by the caller
        raise WeightsError(f"{path} has no 'layer_names' attribute")
    convs: list[_Conv] = []
    for name in layer_names:
        if name not in root:
            raise WeightsError(f"{path}: layer '{name}' is listed in layer_names but missing")
        group = root[name]
        weight_names = _read_list_attr(group, "weight_names") or []
        if not weight_names:
            continue
        kernel = bias = None
        for wname in weight_names:
            try:
                data = np.asarray(group[wname][()])
            except KeyError:
                raise WeightsError(
                    f"{path}: layer '{name}' lists weight '{wname}' but the file has no such array"
                ) from None
            kind = wname.rsplit("/", 1)[-1].split(":", 1)[0]
            if kind == "kernel" and kernel is None and data.ndim == 4:
                kernel = data
            elif kind == "bias" and bias is None and data.ndim == 1:
                bias = data
            else:
                raise WeightsError(
                    f"{path}: layer '{name}' has weight '{wname}' of shape {data.shape}, which is "
                    "not a 2D-convolution kernel or bias; DSen2-CR has only convolution layers"
                )
        if kernel is None or bias is None:
            raise WeightsError(
                f"{path}: layer '{name}' lacks a kernel or a bias; every DSen2-CR convolution "
                "has both"
            )
        convs.append(_Conv(name, kernel, bias))
    return convs


def _infer_config(convs: list[_Conv], path: Path) -> dict[str, int | float]:
    """Check the convolution chain against DSen2-CR and infer F, B, SAR and optical bands."""
    n = len(convs)
    if n < 2 or n % 2:
        raise WeightsError(
            f"{path} has {n} convolution layer(s); DSen2-CR has 2 B + 2 (34 for the published "
            "models: head, two per residual block, tail)"
        )
    for c in convs:
        kh, kw, _, cout = c.kernel.shape
        if (kh, kw) != (3, 3):
            raise WeightsError(
                f"{path}: layer '{c.name}' has a {kh}x{kw} kernel; DSen2-CR uses only 3x3"
            )
        if c.bias.shape != (cout,):
            raise WeightsError(
                f"{path}: layer '{c.name}' has a bias of shape {c.bias.shape} for {cout} outputs"
            )
    for prev, cur in itertools.pairwise(convs):
        if cur.kernel.shape[2] != prev.kernel.shape[3]:
            raise WeightsError(
                f"{path}: broken chain, layer '{cur.name}' takes {cur.kernel.shape[2]} channels "
                f"but '{prev.name}' gives {prev.kernel.shape[3]}"
            )
    head, body, tail = convs[0], convs[1:-1], convs[-1]
    in_channels, features = head.kernel.shape[2], head.kernel.shape[3]
    optical = tail.kernel.shape[3]
    for c in body:
        if c.kernel.shape[2:] != (features, features):
            raise WeightsError(
                f"{path}: residual-block layer '{c.name}' maps {c.kernel.shape[2]} to "
                f"{c.kernel.shape[3]} channels; DSen2-CR blocks keep the {features} features"
            )
    if in_channels < optical:
        raise WeightsError(
            f"{path}: the first layer takes {in_channels} channels, fewer than the "
            f"{optical} optical bands the last layer predicts"
        )
    return {
        "features": int(features),
        "blocks": len(body) // 2,
        "res_scale": DEFAULT_RES_SCALE,
        "sar_channels": int(in_channels - optical),
        "optical_channels": int(optical),
    }


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _res_scale_from_config(model_config: str | None, blocks: int) -> float | None:
    """The residual scaling recorded in a full-model file's ``model_config``, if unambiguous.

    DSen2-CR scales each block's second convolution by ``Lambda(lambda x: x * scale)``; Keras
    stores such a lambda as ``[bytecode, defaults, closure]`` and the closure holds ``scale``.
    A custom scaling layer with a ``scale``/``res_scale`` entry in its config is read as well.
    Only layers fed directly by a Conv2D count, and the value is used only if there are exactly
    ``blocks`` of them and they agree; otherwise ``None`` (the caller keeps the default).
    """
    if not model_config or blocks == 0:
        return None
    try:
        layers = json.loads(model_config)["config"]["layers"]
        classes = {layer["name"]: layer["class_name"] for layer in layers}
        values: list[float] = []
        for layer in layers:
            nodes = layer.get("inbound_nodes") or []
            if len(nodes) != 1 or len(nodes[0]) != 1:
                continue
            source = nodes[0][0][0]
            if classes.get(source) != "Conv2D" or layer["class_name"] in ("Conv2D", "Activation"):
                continue
            cfg = layer.get("config", {})
            found: list[float] = []
            function = cfg.get("function")
            if layer["class_name"] == "Lambda":
                if isinstance(function, list) and len(function) == 3:
                    closure = function[2] or []
                    found += [float(v) for v in closure if _is_number(v)]
                arguments = cfg.get("arguments") or {}
                found += [float(v) for v in arguments.values() if _is_number(v)]
            else:
                found += [float(cfg[k]) for k in ("scale", "res_scale") if _is_number(cfg.get(k))]
            if len(found) != 1:
                return None
            values.append(found[0])
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
    if len(values) != blocks or len(set(values)) != 1:
        return None
    return values[0]


def _state_dict(convs: list[_Conv], blocks: int) -> dict[str, torch.Tensor]:
    """The DSen2-CR state dict of the convolution chain: float32 ``(out, in, kh, kw)`` kernels."""

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    state: dict[str, torch.Tensor] = {}
    names = ["head"]
    for i in range(blocks):
        names += [f"body.{i}.conv1", f"body.{i}.conv2"]
    names.append("tail")
    for key, conv in zip(names, convs, strict=True):
        state[f"{key}.weight"] = tensor(conv.kernel.transpose(3, 2, 0, 1))
        state[f"{key}.bias"] = tensor(conv.bias)
    return state


def _guess_loss(name: str) -> str:
    stem = name.lower()
    if "carl" in stem:
        return "carl"
    if "plain" in stem:
        return "l1"
    return "unknown"


def read_keras(
    path: str | os.PathLike[str],
) -> tuple[dict[str, int | float], dict[str, torch.Tensor], dict[str, Any]]:
    """Read a DSen2-CR Keras HDF5 weight file (weights-only or full-model layout).

    Args:
        path: ``.hdf5``/``.h5`` file written by Keras 2.x (e.g. the authors' ``model_SARcarl.hdf5``).

    Returns:
        ``(config, state_dict, training_info)``: the :class:`~dsen2cr.models.DSen2CR` constructor
        arguments (features, blocks, res_scale, sar_channels, optical_channels; res_scale is
        read from a full-model file's ``model_config`` when it is unambiguous, else 0.1), the
        float32 state dict with PyTorch ``(out, in, kh, kw)`` kernels, and a description of the
        source (``source``, ``file``, ``layout``, ``loss`` guessed from the file name,
        ``keras_version``, ``res_scale_source``, ``input_normalization``).

    Raises:
        WeightsError: the file is missing, not HDF5, not a Keras weight file, or its layers are
            not exactly a DSen2-CR network (with the file and the problem in the message).
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsNotFoundError(f"Keras weight file not found: {p}")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise WeightsError(f"cannot read {p}: not an HDF5 file ({exc})") from None
    with f:
        if _read_list_attr(f, "layer_names") is not None:
            root, layout = f, "weights-only"
        elif "model_weights" in f and _read_list_attr(f["model_weights"], "layer_names"):
            root, layout = f["model_weights"], "full-model"
        else:
            raise WeightsError(
                f"{p} is an HDF5 file but not a Keras weight file (no 'layer_names' attribute at "
                "its root or under 'model_weights')"
            )
        try:
            convs = _read_convs(root, p)
        except OSError as exc:
            raise WeightsError(f"cannot read {p}: corrupt HDF5 data ({exc})") from None
        keras_version = _scalar_attr(root, "keras_version") or _scalar_attr(f, "keras_version")
        backend = _scalar_attr(root, "backend") or _scalar_attr(f, "backend")
        model_config = _scalar_attr(f, "model_config")

    config = _infer_config(convs, p)
    blocks = int(config["blocks"])
    res_scale = _res_scale_from_config(model_config, blocks)
    if res_scale is not None:
        config["res_scale"] = res_scale
    state = _state_dict(convs, blocks)
    info: dict[str, Any] = {
        "source": "keras",
        "file": p.name,
        "layout": layout,
        "loss": _guess_loss(p.stem),
        "keras_version": keras_version,
        "keras_backend": backend,
        "res_scale_source": "model_config" if res_scale is not None else "default",
        "input_normalization": NORMALIZATION,
        "trained_on": {
            "kind": "SEN12MS-CR",
            "note": f"imported from the Keras file {p.name}; the authors' published weights "
            "(Meraner et al. 2020) were trained on SEN12MS-CR's training ROIs",
        },
    }
    return config, state, info

