"""A network loaded once per process and passed to every scene it predicts.

:func:`load_network` reads a weight file (any format :func:`dsen2cr.models.load_weights` reads),
checks that the network can tile a scene exactly (a finite receptive field), hashes its weights
(:func:`dsen2cr.models.network_digest`, recorded in every output and compared when a batch
resumes), moves it to its device in the fast memory format and, if asked, compiles it. The result,
a :class:`LoadedNetwork`, is what ``predict``, batches of scenes and ``evaluate --scenes`` pass
along, so that a batch of a thousand scenes reads, hashes and compiles its weights once. The last
network loaded from a file is also kept, so repeated Python calls of
:func:`dsen2cr.scene.predict` with the same file and settings load it once.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dsen2cr.errors import WeightsError, WeightsNotFoundError
from dsen2cr.models import load_weights, network_digest
from dsen2cr.performance import SpeedOptions, configure_backends, prepare_model, resolve_device


@dataclass(frozen=True)
class LoadedNetwork:
    """A DSen2-CR network ready to predict scenes on one device.

    Attributes:
        module: the network in eval mode on :attr:`device`, in the memory format of
            :attr:`speed`, compiled when ``speed.compile`` (once: every scene reuses it).
        name: the weight file's name, or ``"<in-memory model>"``.
        path: the weight file, or None for a network given as a module.
        digest: :func:`dsen2cr.models.network_digest` of the weights.
        uses_sar: the network takes Sentinel-1 (VV, VH) besides Sentinel-2.
        halo: context pixels a tile needs on each side (the receptive-field radius 2B + 2).
        config: the network's constructor config (recorded in the outputs).
        device: where it runs.
        speed: its memory format and compilation.
        info: how the weights were made (``training_info``: what they were trained on, loss,
            inputs; see :func:`dsen2cr.models.provenance`).
    """

    module: nn.Module
    name: str
    path: Path | None
    digest: str
    uses_sar: bool
    halo: int
    config: dict[str, Any]
    device: torch.device
    speed: SpeedOptions
    info: dict[str, Any] = field(default_factory=dict)


_FileKey = tuple[str, int, int]
"""A weight file's resolved path, modification time (ns) and size (bytes)."""
_LAST: dict[tuple[_FileKey, str, SpeedOptions], LoadedNetwork] = {}
_LOCK = threading.Lock()


def _file_key(path: Path) -> _FileKey:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


def load_network(
    weights_or_model: str | os.PathLike[str] | nn.Module | LoadedNetwork,
    device: str | torch.device = "auto",
    speed: SpeedOptions | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
) -> LoadedNetwork:
    """The network of a weight file (or module) ready to tile scenes on ``device``.

    Args:
        weights_or_model: a weight file (``.safetensors``, the authors' Keras ``.hdf5``, a
            training ``.ckpt``), a :class:`~dsen2cr.models.DSen2CR`, or a :class:`LoadedNetwork`
            (returned as it is when its device and speed match).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.
        speed: memory format and compilation (default :class:`SpeedOptions`).
        path: for a module, the weight file it was read from (named in the outputs' metadata).

    Raises:
        WeightsError: an unreadable weight file, or a network without a finite receptive field
            (the pix2pix U-Net), which cannot tile a scene exactly.
        OptionError: a device this machine does not have.
    """
    dev = resolve_device(device)
    speed = speed or SpeedOptions()
    if isinstance(weights_or_model, LoadedNetwork):
        if weights_or_model.device == dev and weights_or_model.speed == speed:
            return weights_or_model
        weights_or_model = weights_or_model.path or weights_or_model.module
    if isinstance(weights_or_model, nn.Module):
        return _prepare(weights_or_model, Path(path) if path is not None else None, dev, speed)
    if not isinstance(weights_or_model, (str, os.PathLike)):
        raise TypeError(f"expected a weight file or a network, got {type(weights_or_model)}")
    path = Path(weights_or_model)
    if not path.is_file():
        raise WeightsNotFoundError(f"weight file not found: {path}")
    key = (_file_key(path), str(dev), speed)
    with _LOCK:
        if key in _LAST:
            return _LAST[key]
        loaded = _prepare(load_weights(path), path, dev, speed)
        _LAST.clear()  # one network kept: its device memory is not held by a cache of many
        _LAST[key] = loaded
        return loaded


def _prepare(net: nn.Module, path: Path | None, dev: torch.device, speed: SpeedOptions) -> LoadedNetwork:
    if not hasattr(net, "receptive_field_radius"):
        raise WeightsError(
            f"{getattr(net, 'name', type(net).__name__)}: a {type(net).__name__} has no finite "
            "receptive field, so a scene cannot be tiled exactly; predict takes DSen2-CR weights"
        )
    digest = network_digest(net)  # on the CPU weights, before they move
    net.eval()
    configure_backends(dev)
    prepare_model(net, dev, speed)
    return LoadedNetwork(
        module=net,
        name=path.name if path is not None else "<in-memory model>",
        path=path,
        digest=digest,
        uses_sar=bool(getattr(net, "uses_sar", False)),
        halo=int(getattr(net, "receptive_field_radius")),  # noqa: B009
        config=dict(getattr(net, "config", {}) or {}),
        device=dev,
        speed=speed,
        info=dict(getattr(net, "training_info", {}) or {}),
    )
