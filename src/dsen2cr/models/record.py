"""What a weight file records, and how a record becomes a network without trusting it.

* :class:`WeightRecord` - what every weight format is read into (:func:`dsen2cr.models.read_weights`);
* :class:`ConfigBound` and :func:`check_config` - the values a file may record for each
  constructor argument of a network;
* :func:`build_strict` - the one place where a recorded configuration and state dict become a
  network: the configuration is checked against its bounds, the network is built on PyTorch's
  ``meta`` device (shapes only, nothing allocated) and every tensor name and shape of that
  skeleton is compared with the file's, before the real network is built. A forged
  configuration (``features=1000000``) is one :class:`~dsen2cr.errors.WeightsError` naming the
  first mismatch, never an attempt to allocate what it claims.

:mod:`dsen2cr.models.weights` re-exports all of these.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from dsen2cr.errors import WeightsError, first_line

__all__ = ["ConfigBound", "WeightRecord", "build_strict", "check_config"]

_Built = TypeVar("_Built", bound=nn.Module)


@dataclass
class WeightRecord:
    """What a weight file holds, whatever its format.

    Attributes:
        architecture: the registered network class (``"DSen2CR"``, ``"Pix2PixUNet"``).
        config: the class's constructor arguments.
        state: the network's state dict (CPU tensors).
        info: how the weights were made (loss, data, source, ...).
        path: the file read.
        format: ``"safetensors"``, ``"keras"`` or ``"checkpoint"``.
    """

    architecture: str
    config: dict[str, Any]  # JSON from the file: checked by build_strict before use
    state: dict[str, torch.Tensor] = field(repr=False)
    info: dict[str, Any]
    path: Path
    format: str


@dataclass(frozen=True)
class ConfigBound:
    """The values a weight file may record for one constructor argument of a network.

    Attributes:
        kind: ``int``, ``float`` (an integer is accepted too) or ``bool``.
        low: the least value accepted (ints and floats).
        high: the largest value accepted (ints and floats).
    """

    kind: type
    low: float = -math.inf
    high: float = math.inf

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value`` (None when it is accepted).

        Args:
            value: the recorded value (any JSON value).
        """
        if self.kind is bool:
            return None if isinstance(value, bool) else "must be true or false"
        numeric = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            return "must be an integer" if self.kind is int else "must be a number"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if not self.low <= value <= self.high:
            return f"must be between {self.low:g} and {self.high:g}"
        return None


def _short(value: object, limit: int = 40) -> str:
    """``value`` as JSON for a message, cut to about ``limit`` characters."""
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_config(record: WeightRecord, bounds: Mapping[str, ConfigBound]) -> None:
    """Check a recorded configuration against its class's bounds, before anything is built.

    Args:
        record: the weight record.
        bounds: constructor argument -> its :class:`ConfigBound` (every argument a file may
            record; arguments it leaves out take the constructor's defaults).

    Raises:
        WeightsError: a key that is not a constructor argument, or a value of the wrong type or
            out of bounds (the first one is named).
    """
    where = f"{record.path} records an invalid {record.architecture} configuration"
    if not isinstance(record.config, dict):
        raise WeightsError(f"{where}: it is not an object of constructor arguments")
    for key, value in record.config.items():
        bound = bounds.get(key)
        if bound is None:
            known = ", ".join(bounds)
            raise WeightsError(f"{where}: unknown key {_short(str(key))} (known: {known})")
        problem = bound.problem(value)
        if problem is not None:
            raise WeightsError(f"{where}: {key}={_short(value)} {problem}")


def _check_shapes(record: WeightRecord, expected: Mapping[str, torch.Tensor]) -> None:
    """Compare the tensors a configuration needs (``expected``, from a ``meta`` skeleton) with
    the file's, name by name and shape by shape; the first mismatch is a WeightsError."""
    config = ", ".join(f"{k}={v}" for k, v in record.config.items())
    where = (f"weights in {record.path} do not fit their recorded {record.architecture} "
             f"configuration ({config})")  # fmt: skip
    for key, tensor in expected.items():
        got = record.state.get(key)
        if got is None:
            raise WeightsError(f"{where}: it needs a tensor {key}, which the file does not have")
        if not isinstance(got, torch.Tensor):
            raise WeightsError(f"{where}: the file's {key} is not a tensor")
        if tuple(got.shape) != tuple(tensor.shape):
            raise WeightsError(f"{where}: it needs {key} of shape {tuple(tensor.shape)}, the "
                               f"file's has shape {tuple(got.shape)}")  # fmt: skip
    extra = sorted(str(k) for k in record.state if k not in expected)
    if extra:
        raise WeightsError(f"{where}: the file has a tensor {_short(extra[0])} it does not use")


def build_strict(
    record: WeightRecord,
    build: Callable[..., _Built],
    target: Callable[[_Built], nn.Module],
    bounds: Mapping[str, ConfigBound],
) -> _Built:
    """Build ``build(**record.config)`` and load ``record.state`` strictly into ``target(model)``.

    The one place where a recorded configuration and state dict become a network; any mismatch
    is a :class:`WeightsError` naming the file. Nothing is allocated for a configuration that
    does not fit the file's tensors (see the module docs): :func:`check_config` first, then the
    network is built on the ``meta`` device and its state dict compared with the file's; the
    real network is built last.

    Args:
        record: the weight record (:func:`read_weights`).
        build: the network class (or a factory) taking the recorded configuration.
        target: the module of the built network whose state dict the file holds.
        bounds: the accepted configuration values (:func:`check_config`).

    Returns:
        The built network (what ``build`` returns), its weights those of the file.

    Raises:
        WeightsError: the configuration is out of bounds or does not fit the file's tensors.
    """
    check_config(record, bounds)
    try:
        with torch.device("meta"):  # shapes only: no memory, whatever the configuration says
            skeleton = build(**record.config)
    except (TypeError, ValueError) as exc:
        raise WeightsError(
            f"{record.path} records an invalid {record.architecture} configuration: {exc}"
        ) from None
    _check_shapes(record, target(skeleton).state_dict())
    model = build(**record.config)
    try:
        target(model).load_state_dict(record.state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(
            f"weights in {record.path} do not fit the recorded architecture: {first_line(exc)}"
        ) from None
    return model
