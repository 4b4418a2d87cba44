"""Weight files: one loader for every format, one writer.

Formats read by :func:`read_weights` (and so by :func:`load_weights`, ``dsen2cr predict``,
``evaluate``, ``info`` and ``convert-weights``):

* **native safetensors** (``.safetensors``, written by :func:`save_weights`): the tensors plus JSON
  metadata ``format`` (``dsen2cr``), ``format_version``, ``architecture`` (the network class),
  ``config`` (its constructor arguments), ``input_normalization`` and ``training`` (how the
  weights were made). Safe to open: no code is unpickled.
* **the authors' Keras 2.x HDF5 files** (``model_SARcarl.hdf5`` ...; ``.h5``/``.hdf5``), read by
  :mod:`dsen2cr.models.keras`.
* **Lightning checkpoints** (``.ckpt``) of ``dsen2cr train``, read by :func:`read_checkpoint`
  with ``torch.load(weights_only=True)`` (no arbitrary unpickling; the one ``torch.load`` of
  dsen2cr, which training uses too). The training module stores a record of its network under
  :data:`CHECKPOINT_KEY` (:func:`checkpoint_record`: architecture, config, state-dict prefix);
  checkpoints written before that record existed are read from their training config.

Networks say how they are saved and rebuilt by deriving from :class:`RecordedNetwork` (the one
home of the weight-record protocol: ``architecture``, ``config``, ``config_bounds``,
``input_normalization``, :meth:`~RecordedNetwork.weight_record`,
:meth:`~RecordedNetwork.from_record`, ``save_pretrained`` / ``from_pretrained``) and registering
their class (:func:`register_architecture`). :class:`dsen2cr.models.DSen2CR` (``"DSen2CR"``)
and :class:`dsen2cr.models.Pix2PixPredictor` (``"Pix2PixUNet"``, the pix2pix generator) are
registered when :mod:`dsen2cr.models` is imported. Lightning is never imported here: reading a
weight file is cheap.

A weight file is not trusted to describe its own network honestly. Before a network is built
(:func:`build_strict`, in :mod:`dsen2cr.models.record` with :class:`WeightRecord` and
:class:`ConfigBound`, all re-exported here), the recorded configuration is checked against the
class's documented bounds (:class:`ConfigBound`, e.g. ``features`` 1..4096), the network is
built on PyTorch's ``meta`` device (shapes only, nothing allocated), and every tensor name and shape of that
skeleton is compared with the file's tensors: a configuration that does not fit the tensors
(forged metadata claiming ``features=1000000``) is one :class:`WeightsError` naming the first
mismatch, never an attempt to allocate what it claims. Only then is the real network built, its
size bounded by the tensors actually in the file. A file that is none of the formats above (a
GeoTIFF given as weights) is refused as such, by its first bytes, before a reader parses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypedDict, TypeVar, cast

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from dsen2cr.errors import WeightsError, WeightsNotFoundError, first_line
from dsen2cr.io import atomic_output, guard_outputs
from dsen2cr.models.keras import read_keras
from dsen2cr.models.record import ConfigBound, WeightRecord, build_strict, check_config

__all__ = [
    "ARCHITECTURES",
    "CHECKPOINT_KEY",
    "FORMAT_VERSION",
    "KERAS_SUFFIXES",
    "ConfigBound",
    "NetworkRecord",
    "RecordedNetwork",
    "WeightRecord",
    "WeightsDescription",
    "build_strict",
    "check_config",
    "checkpoint_record",
    "convert_weights",
    "count_parameters",
    "describe_weights",
    "load_weights",
    "network_digest",
    "provenance",
    "read_checkpoint",
    "read_weights",
    "register_architecture",
    "save_weights",
    "trained_on_synthetic",
    "weight_format",
]

FORMAT_VERSION = "1"
KERAS_SUFFIXES = (".h5", ".hdf5", ".keras_h5")
CHECKPOINT_SUFFIXES = (".ckpt",)
CHECKPOINT_KEY = "dsen2cr_network"
"""Key of the network record in a training checkpoint (a :class:`NetworkRecord`)."""


class _NetworkRecordKeys(TypedDict):
    architecture: str
    config: dict[str, Any]
    prefix: str


class NetworkRecord(_NetworkRecordKeys, total=False):
    """The network record a training checkpoint carries under :data:`CHECKPOINT_KEY`.

    Keys: ``architecture`` (the registered class), ``config`` (its constructor arguments),
    ``prefix`` (the network's key prefix in the module's state dict) and, except in the records
    rebuilt for old checkpoints, ``name`` (the run name).
    """

    name: str | None


ARCHITECTURES: dict[str, type[RecordedNetwork]] = {}
"""Registered network classes by architecture name (see the module docs)."""

_Net = TypeVar("_Net", bound="RecordedNetwork")


def register_architecture(cls: type[_Net]) -> type[_Net]:
    """Class decorator: make a :class:`RecordedNetwork` class loadable by :func:`load_weights`."""
    ARCHITECTURES[cls.architecture] = cls
    return cls


def weight_format(path: str | os.PathLike[str]) -> str:
    """``"keras"``, ``"checkpoint"`` or ``"safetensors"``, by the file's suffix.

    Args:
        path: the weight file.
    """
    suffix = Path(path).suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return "keras"
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    return "safetensors"


# --------------------------------------------------------------------------- reading
_NOT_WEIGHTS = (
    "dsen2cr reads native .safetensors, the authors' Keras .hdf5/.h5 and training .ckpt files"
)
_MAGIC = (
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file: Keras weights are read from files named .hdf5 or .h5"),
    (b"PK\x03\x04", "a zip archive: training checkpoints are read from files named .ckpt"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"II+\x00", "a BigTIFF image"),
    (b"\x89PNG", "a PNG image"),
)


def _check_signature(p: Path, kind: str, required: bool = False) -> None:
    """Refuse a file whose first bytes are not those of a ``kind`` file (``"safetensors"`` or
    ``"checkpoint"``; Keras files are checked by their HDF5 reader), naming what it is when its
    first bytes say. ``required``: the caller asked for that format (resuming training needs a
    checkpoint), so the other formats are not offered."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise WeightsError(f"cannot read weight file {p}: {exc.strerror or exc}") from None
    if kind == "safetensors":
        # an 8-byte little-endian header length (safetensors allows at most 100 MB), then "{"
        n = int.from_bytes(head[:8], "little")
        ok = len(head) > 8 and 2 <= n <= 100_000_000 and head[8:9] == b"{"
    else:  # torch.save: a zip archive, or a pickle (protocol 2-5) in the legacy format
        pickled = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
        ok = head.startswith(b"PK\x03\x04") or pickled
    if ok:
        return
    what = next((f" (it is {name})" for magic, name in _MAGIC if head.startswith(magic)), "")
    if kind == "checkpoint":
        detail = "a training checkpoint" if required else "a weight file"
        raise WeightsError(f"cannot read checkpoint {p}: it is not {detail}{what}"
                           + ("" if required else f"; {_NOT_WEIGHTS}"))  # fmt: skip
    raise WeightsError(f"{p} is not a weight file{what}; {_NOT_WEIGHTS}")


def _json_object(p: Path, meta: Mapping[str, str], key: str, default: str) -> dict[str, Any]:
    """The metadata entry ``key`` of a safetensors file, which must be a JSON object."""
    try:
        value = json.loads(meta.get(key, default))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{p} has corrupt metadata: {key} is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise WeightsError(f"{p} has corrupt metadata: {key} is not a JSON object")
    return value


def _read_safetensors(p: Path) -> WeightRecord:
    _check_signature(p, "safetensors")
    try:
        with safe_open(str(p), framework="pt") as f:  # the header alone: no tensor is read
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"cannot read weight file {p}: {exc}") from None
    arch = meta.get("architecture")
    if arch is None or "config" not in meta:
        missing = "architecture" if arch is None else "config"
        raise WeightsError(f"{p} is not a dsen2cr weight file (its metadata has no {missing})")
    config = _json_object(p, meta, "config", "{}")
    info = _json_object(p, meta, "training", "{}")
    try:
        with safe_open(str(p), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"cannot read weight file {p}: {exc}") from None
    return WeightRecord(arch, config, state, info, p, "safetensors")


def _legacy_network_record(cfg: Mapping[str, Any]) -> NetworkRecord:
    """The network record of a checkpoint written before :data:`CHECKPOINT_KEY` existed."""
    m = cfg["model"]
    if m.get("name") == "pix2pix":
        p2p = {"ngf": int(m["ngf"]), "num_downs": int(m["num_downs"]), "dropout": bool(m["dropout"])}
        return {"architecture": "Pix2PixUNet", "config": p2p, "prefix": "generator."}
    config: dict[str, int | float] = {"features": int(m["features"]), "blocks": int(m["blocks"]),
              "res_scale": float(m["res_scale"]), "sar_channels": 2 if m["sar"] else 0}  # fmt: skip
    return {"architecture": "DSen2CR", "config": config, "prefix": "model."}


def checkpoint_record(net: RecordedNetwork, prefix: str, name: str | None) -> NetworkRecord:
    """The record of ``net`` that a training checkpoint carries under :data:`CHECKPOINT_KEY`.

    Args:
        net: the deployable network the training module holds.
        prefix: the network's key prefix in the module's state dict (``"model."``).
        name: the run name.
    """
    return {"architecture": net.architecture, "config": net.config, "prefix": prefix, "name": name}


def read_checkpoint(path: str | os.PathLike[str], required: bool = True) -> dict[str, Any]:
    """Read a Lightning training checkpoint without unpickling code: dsen2cr's one ``torch.load``.

    The file's first bytes must be those of ``torch.save`` output; it is read with
    ``torch.load(weights_only=True)`` onto the CPU, so a checkpoint holding anything but plain
    tensors and values is refused without running its code.

    Args:
        path: the ``.ckpt`` file.
        required: the caller needs a checkpoint (resuming, restoring the best epoch), so the
            messages do not offer the other weight formats.

    Returns:
        The checkpoint's content (JSON-like values and tensors); its ``"state_dict"`` is a
        mapping of parameter names to CPU tensors.

    Raises:
        WeightsNotFoundError: the file does not exist.
        WeightsError: the file is unreadable, not a ``torch.save`` file, holds objects that are
            not plain tensors and values ("refused without unpickling code"), or has no
            ``state_dict``.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsNotFoundError(f"checkpoint not found: {p}")
    _check_signature(p, "checkpoint", required)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's multi-paragraph advice: keep the cause
        cause = [ln.strip() for ln in str(exc).splitlines() if "Unpickler error" in ln]
        detail = cause[0].split(":", 1)[-1].strip().split(". ")[0] if cause else first_line(exc)
        raise WeightsError(
            f"cannot read checkpoint {p}: it holds objects that are not plain tensors and "
            f"values, refused without unpickling code ({detail})"
        ) from None
    except Exception as exc:  # a torch.load failure has many exception types
        raise WeightsError(f"cannot read checkpoint {p}: {first_line(exc)}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise WeightsError(f"{p} is not a dsen2cr training checkpoint (no state_dict in it)")
    return ckpt


def _read_checkpoint(p: Path, required: bool = False) -> WeightRecord:
    ckpt = read_checkpoint(p, required)
    cfg = (ckpt.get("hyper_parameters") or {}).get("config")
    record = ckpt.get(CHECKPOINT_KEY)
    try:
        if record is None:
            if not isinstance(cfg, Mapping):
                raise KeyError("config")
            record = _legacy_network_record(cfg)
        prefix = str(record["prefix"])
        arch, config = str(record["architecture"]), record["config"]
        if not isinstance(config, dict):
            raise TypeError("config")
    except (KeyError, TypeError, ValueError):
        raise WeightsError(f"{p} is not a dsen2cr training checkpoint (no network record)") from None
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items()
             if isinstance(k, str) and k.startswith(prefix)}  # fmt: skip
    out = cfg.get("out") if isinstance(cfg, Mapping) else None
    name = (record.get("name") if isinstance(record, Mapping) else None) or (
        out.get("name") if isinstance(out, Mapping) else None
    )
    epoch, step = ckpt.get("epoch", -1), ckpt.get("global_step", 0)
    info: dict[str, Any] = {
        "name": str(name or p.stem),
        "checkpoint": p.name,
        "epochs": epoch + 1 if isinstance(epoch, int) else 0,
        "global_step": step if isinstance(step, int) else 0,
    }
    if isinstance(cfg, Mapping):
        info["config"] = dict(cfg)
    return WeightRecord(arch, config, state, info, p, "checkpoint")


def read_weights(path: str | os.PathLike[str], format: str | None = None) -> WeightRecord:
    """Read any supported weight file (see the module docs) without building the network.

    Args:
        path: the file.
        format: ``"safetensors"``, ``"keras"`` or ``"checkpoint"`` (default: by the suffix,
            :func:`weight_format`).

    Raises:
        WeightsError: the file is missing, a folder, unreadable, of none of the formats read, or
            not a dsen2cr / DSen2-CR weight file.
    """
    p = Path(path)
    if p.is_dir():
        raise WeightsError(f"weights {p} is a folder, expected a weight file; {_NOT_WEIGHTS}")
    if not p.is_file():
        raise WeightsNotFoundError(f"weight file not found: {p}")
    kind = format or weight_format(p)
    if kind == "keras":
        config, state, info = read_keras(p)
        return WeightRecord("DSen2CR", config, state, info, p, "keras")
    if kind == "checkpoint":
        return _read_checkpoint(p, required=format is not None)
    return _read_safetensors(p)


def load_weights(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    architecture: str | None = None,
) -> RecordedNetwork:
    """Load any supported weight file as its network, in eval mode: **the** loader.

    Args:
        path: native ``.safetensors``, Keras ``.hdf5``/``.h5`` or Lightning ``.ckpt``.
        map_location: device to place the weights on.
        architecture: if given, the architecture the file must hold (e.g. ``"DSen2CR"``).

    Returns:
        The network (:class:`~dsen2cr.models.DSen2CR` or
        :class:`~dsen2cr.models.Pix2PixPredictor`), with ``training_info`` (the file's metadata)
        and ``name`` (the run name recorded at training time, else the file stem). Both take
        scaled optical (B, 13, H, W) and SAR (B, 2, H, W) and predict scaled (B, 13, H, W);
        ``uses_sar`` tells whether the SAR input is read.

    Raises:
        WeightsError: as :func:`read_weights`, or the file holds another architecture or weights
            that do not fit the recorded one.
    """
    record = read_weights(path)
    if architecture is not None and record.architecture != architecture:
        raise WeightsError(
            f"{record.path} holds a {record.architecture} network, not a {architecture}"
        )
    cls = ARCHITECTURES.get(record.architecture)
    if cls is None:
        raise WeightsError(
            f"{record.path} holds an unknown architecture {record.architecture!r}; "
            f"known: {', '.join(sorted(ARCHITECTURES))}"
        )
    model = cls.from_record(record)
    model.training_info = dict(record.info)
    model.name = str(record.info.get("name") or record.path.stem)
    return model.to(map_location).eval()


# --------------------------------------------------------------------------- networks
class RecordedNetwork(nn.Module):
    """A network that weight files record and rebuild: the one home of the record protocol.

    A subclass sets :attr:`architecture` (and is decorated with :func:`register_architecture`),
    :attr:`config_bounds` and :attr:`input_normalization`, and defines :attr:`config`; the
    file's tensors are the state dict of :meth:`recorded_module` (the network itself unless a
    subclass wraps another module). :meth:`weight_record`, :meth:`from_record`,
    :meth:`save_pretrained` and :meth:`from_pretrained` are shared.

    Attributes:
        architecture: the registered architecture name (``"DSen2CR"``, ``"Pix2PixUNet"``).
        config_bounds: what a weight file may record (:func:`check_config`).
        input_normalization: how inputs are scaled, recorded in every file.
        training_info: free-form description of how the weights were made (loss, data,
            source), stored in the weight file's metadata.
        name: a short name of the weights (the run name or file stem when loaded).
    """

    architecture: ClassVar[str]
    config_bounds: ClassVar[dict[str, ConfigBound]] = {}
    input_normalization: ClassVar[Mapping[str, object]] = {}
    training_info: dict[str, Any]
    name: str

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this architecture (JSON values)."""
        raise NotImplementedError

    def recorded_module(self) -> nn.Module:
        """The module whose state dict a weight file holds (default: the network itself)."""
        return self

    def weight_record(self) -> tuple[dict[str, Any], dict[str, torch.Tensor], Mapping[str, object]]:
        """``(config, state_dict, input_normalization)`` as a weight file stores them."""
        return self.config, self.recorded_module().state_dict(), self.input_normalization

    @classmethod
    def from_record(cls: type[_Net], record: WeightRecord) -> _Net:
        """The network of a weight record, built by :func:`build_strict`.

        Args:
            record: what :func:`read_weights` read.
        """
        return build_strict(record, cls, lambda m: m.recorded_module(), cls.config_bounds)

    def save_pretrained(
        self, path: str | os.PathLike[str], training_info: Mapping[str, Any] | None = None
    ) -> Path:
        """Save weights and architecture to a native safetensors file (:func:`save_weights`).

        The metadata holds the architecture (``config``), the input normalisation and
        ``training`` (``training_info`` merged over the model's own).

        Args:
            path: output ``.safetensors`` file (written atomically).
            training_info: extra description of how the weights were trained.

        Returns:
            The written path.
        """
        return save_weights(self, path, training_info)

    @classmethod
    def from_pretrained(
        cls: type[_Net], path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
    ) -> _Net:
        """Rebuild a network of this architecture from a weight file (:func:`load_weights`).

        Args:
            path: a native ``.safetensors`` file, a training checkpoint or (DSen2-CR) one of the
                authors' Keras HDF5 files (``model_SARcarl.hdf5`` ...).
            map_location: device to place the weights on.

        Returns:
            The network in eval mode.

        Raises:
            WeightsError: the file is missing, unreadable or holds another architecture.
        """
        return cast(_Net, load_weights(path, map_location, architecture=cls.architecture))


# --------------------------------------------------------------------------- writing
def save_weights(
    model: RecordedNetwork,
    path: str | os.PathLike[str],
    training_info: Mapping[str, Any] | None = None,
) -> Path:
    """Write a registered network as a native safetensors file (atomically).

    Args:
        model: a registered network (:class:`~dsen2cr.models.DSen2CR`,
            :class:`~dsen2cr.models.Pix2PixPredictor`).
        path: output ``.safetensors`` file.
        training_info: extra metadata merged over the model's own ``training_info``.

    Returns:
        The written path.
    """
    config, state, normalization = model.weight_record()
    info = {**(getattr(model, "training_info", None) or {}), **(training_info or {})}
    metadata: dict[str, str] = {
        "format": "dsen2cr",
        "format_version": FORMAT_VERSION,
        "architecture": str(model.architecture),
        "config": json.dumps(config),
        "input_normalization": json.dumps(normalization),
        "training": json.dumps(info, default=str),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def convert_weights(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], overwrite: bool = False
) -> RecordedNetwork:
    """Convert any supported weight file (Keras HDF5, checkpoint, ...) to native safetensors.

    Args:
        src: the weight file.
        dst: the ``.safetensors`` file to write (atomically).
        overwrite: replace ``dst`` if it exists (else that is an error).

    Raises:
        WeightsError: as :func:`load_weights`.
        OptionError: ``dst`` is the input file itself (also through a link), or exists.
    """
    guard_outputs({"output": dst}, [src], overwrite=overwrite)
    model = load_weights(src)
    save_weights(model, dst)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    Args:
        model: the network.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class WeightsDescription(TypedDict):
    """What :func:`describe_weights` tells of a weight file (see there)."""

    file: str
    format: str
    architecture: str
    config: dict[str, Any]
    parameters: int
    uses_sar: bool
    receptive_field_radius: int | None
    provenance: str
    training: dict[str, Any]


def describe_weights(path: str | os.PathLike[str]) -> WeightsDescription:
    """What ``dsen2cr info`` prints: format, architecture, config, parameters, training.

    Args:
        path: any weight file :func:`load_weights` reads.

    Returns:
        ``{"file", "format", "architecture", "config", "parameters", "uses_sar",
        "receptive_field_radius" (pixels; None for networks without a finite one),
        "provenance" (:func:`provenance`), "training"}``.
    """
    model = load_weights(path)
    return {
        "file": str(path),
        "format": weight_format(path),
        "architecture": model.architecture,
        "config": model.config,
        "parameters": count_parameters(model),
        "uses_sar": bool(getattr(model, "uses_sar", False)),
        "receptive_field_radius": getattr(model, "receptive_field_radius", None),
        "provenance": provenance(dict(getattr(model, "training_info", {}) or {}),
                                 bool(getattr(model, "uses_sar", False))),
        "training": model.training_info,
    }


def provenance(info: Mapping[str, Any], uses_sar: bool) -> str:
    """One sentence on where weights come from: what they were trained on, with which loss and
    inputs (from ``training_info``, as :func:`save_weights` and the training record it).

    Args:
        info: the weights' ``training_info`` (JSON values).
        uses_sar: whether the network reads Sentinel-1.
    """
    trained = info.get("trained_on") or {}
    kind = trained.get("kind", "unknown") if isinstance(trained, Mapping) else "unknown"
    loss = str(info.get("loss") or "an unrecorded loss").upper().replace("PLAIN", "L1")
    inputs = "Sentinel-1 + Sentinel-2" if uses_sar else "Sentinel-2 only"
    where = {
        "synthetic": "synthetic data (dsen2cr synth-data): for testing the pipeline, NOT for "
        "real imagery",
        "SEN12MS-CR": "SEN12MS-CR" + (f" ({trained.get('note')})" if trained.get("note") else ""),
    }.get(kind, "unrecorded data")
    return f"trained on {where}; loss {loss}; inputs {inputs}"


def trained_on_synthetic(info: Mapping[str, Any]) -> bool:
    """Whether weights record that they were trained on synthetic data.

    Args:
        info: the weights' ``training_info``.
    """
    trained = info.get("trained_on")
    return isinstance(trained, Mapping) and trained.get("kind") == "synthetic"


def network_digest(model: nn.Module) -> str:
    """A SHA-256 of a network's weights, the same whatever file format they came from.

    It covers the network's class, its constructor config (when it has one) and every tensor of
    its state dict (name, shape, and the values as contiguous float32 on the CPU), so the
    authors' Keras file and its converted safetensors give the same digest, and any change of a
    single weight gives another. ``dsen2cr predict`` records it in its outputs
    (``DSEN2CR_WEIGHTS_SHA256``), which lets a resumed batch tell its own outputs apart.

    Args:
        model: the network.

    Returns:
        64 hexadecimal digits.
    """
    h = hashlib.sha256()
    h.update(type(model).__name__.encode())
    config = getattr(model, "config", None)
    if isinstance(config, Mapping):
        h.update(json.dumps(dict(config), sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()
