"""Training configs: typed sections, validated once.

A config is a YAML file (``configs/*.yaml``, schema in ``configs/README.md``) plus
``section.key=value`` overrides; :func:`load_config` turns it into a frozen :class:`TrainConfig`
whose sections are dataclasses. Every key has a default (the dataclass defaults; pix2pix trains
whole 256 px patches for 10 epochs). An unknown section or key, a value of the wrong type or out
of range is one :class:`~dsen2cr.errors.ConfigError` naming the key, before anything runs.

Sections::

    model:   name (dsen2cr | pix2pix), features, blocks, res_scale, sar (bool)
             pix2pix: ngf, ndf, num_downs, n_layers, dropout
    loss:    name (carl | l1), lam, cloud_threshold        pix2pix: lambda_l1, cloud_threshold
    optim:   lr, betas, eps, momentum_decay (NAdam)       pix2pix: lr, betas, n_epochs_init,
                                                           n_epochs_decay
    data:    root, batch_size, eval_batch_size, num_workers, crop_size, split_file, on_error, seed,
             with_mask (CPU masks of the whole patch instead of on-device crop masks), cache_dir
    trainer: max_epochs, accelerator, devices, num_nodes, strategy, precision ("auto" |
             "bf16-mixed" | "32-true" ...), limit_train_batches, limit_val_batches,
             log_every_n_steps, val_check_interval, num_sanity_val_steps, enable_progress_bar,
             benchmark, and any other ``lightning.Trainer`` argument
    speed:   channels_last (true), compile (false)         DSen2-CR only (dsen2cr.performance)
    out:     dir, name, overwrite                          -> run folder <dir>/<name>
    seed:    global seed (initialisation, data order, augmentation)

Each model family (``model.name``) has its own ``model``, ``loss`` and ``optim`` sections
(:data:`FAMILIES`); code asks the typed objects (``isinstance(cfg.model, Pix2PixModel)``,
``cfg.family``), never string keys. :meth:`TrainConfig.to_dict` gives the same schema back as
plain values (for ``config.yaml`` and checkpoints).
"""

from __future__ import annotations

import copy
import inspect
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar, Union

import lightning as L
import torch
import yaml
from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT

from dsen2cr.cloudmask import DEFAULT_THRESHOLD
from dsen2cr.errors import ConfigError, InputNotFoundError
from dsen2cr.performance import SpeedOptions

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "FAMILIES",
    "AdamOptim",
    "DSen2CRLoss",
    "DSen2CRModel",
    "DataConfig",
    "Family",
    "NAdamOptim",
    "OutConfig",
    "Pix2PixLoss",
    "Pix2PixModel",
    "TrainConfig",
    "TrainerConfig",
    "load_config",
]


_Section = TypeVar("_Section", bound="DataclassInstance")


def _require(ok: bool, key: str, requirement: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"config key {key} must be {requirement}, got {value!r}")


def _finite(x: float) -> bool:
    return math.isfinite(x)


# --------------------------------------------------------------------------- sections
class DSen2CRKwargs(TypedDict):
    """Constructor arguments of :class:`dsen2cr.models.DSen2CR` from a ``model`` section."""

    features: int
    blocks: int
    res_scale: float
    sar_channels: int


@dataclass(frozen=True)
class DSen2CRModel:
    """``model`` of DSen2-CR (paper Section 3.3): F, B, residual scaling, SAR input."""

    name: Literal["dsen2cr"] = "dsen2cr"
    features: int = 256
    blocks: int = 16
    res_scale: float = 0.1
    sar: bool = True

    def __post_init__(self) -> None:
        _require(self.features >= 1, "model.features", "an integer >= 1", self.features)
        _require(self.blocks >= 0, "model.blocks", "an integer >= 0", self.blocks)
        _require(_finite(self.res_scale), "model.res_scale", "a finite number", self.res_scale)

    def network_kwargs(self) -> DSen2CRKwargs:
        """Arguments of :class:`dsen2cr.models.DSen2CR`."""
        return {"features": self.features, "blocks": self.blocks, "res_scale": self.res_scale,
                "sar_channels": 2 if self.sar else 0}  # fmt: skip


@dataclass(frozen=True)
class Pix2PixModel:
    """``model`` of the pix2pix baseline (paper Section 4.3): U-Net generator, PatchGAN."""

    name: Literal["pix2pix"] = "pix2pix"
    ngf: int = 64
    ndf: int = 64
    num_downs: int = 8
    n_layers: int = 3
    dropout: bool = True
    sar: bool = True

    def __post_init__(self) -> None:
        _require(self.ngf >= 1, "model.ngf", "an integer >= 1", self.ngf)
        _require(self.ndf >= 1, "model.ndf", "an integer >= 1", self.ndf)
        _require(self.num_downs >= 2, "model.num_downs", "an integer >= 2", self.num_downs)
        _require(self.n_layers >= 1, "model.n_layers", "an integer >= 1", self.n_layers)
        if not self.sar:
            raise ConfigError("the pix2pix baseline always takes SAR input: model.sar must be true")


@dataclass(frozen=True)
class DSen2CRLoss:
    """``loss`` of DSen2-CR: CARL (Eq. 3) or the L1 target loss (Eq. 2)."""

    name: Literal["carl", "l1"] = "carl"
    lam: float = 1.0
    cloud_threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        _require(_finite(self.lam) and self.lam >= 0, "loss.lam", "a number >= 0", self.lam)
        _require(_finite(self.cloud_threshold), "loss.cloud_threshold", "a finite number",
                 self.cloud_threshold)  # fmt: skip


@dataclass(frozen=True)
class Pix2PixLoss:
    """``loss`` of pix2pix: vanilla GAN loss + ``lambda_l1`` x L1."""

    name: Literal["gan"] = "gan"
    lambda_l1: float = 100.0
    cloud_threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        _require(_finite(self.lambda_l1) and self.lambda_l1 >= 0, "loss.lambda_l1",
                 "a number >= 0", self.lambda_l1)  # fmt: skip
        _require(_finite(self.cloud_threshold), "loss.cloud_threshold", "a finite number",
                 self.cloud_threshold)  # fmt: skip


def _check_betas(betas: tuple[float, float]) -> None:
    _require(all(0 <= b < 1 for b in betas), "optim.betas", "two numbers in [0, 1)", list(betas))


@dataclass(frozen=True)
class NAdamOptim:
    """``optim`` of DSen2-CR: NAdam (Keras' ``Nadam``), paper Section 3.5."""

    lr: float = 7e-5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum_decay: float = 4e-3

    def __post_init__(self) -> None:
        _require(_finite(self.lr) and self.lr > 0, "optim.lr", "a number > 0", self.lr)
        _check_betas(self.betas)
        _require(_finite(self.eps) and self.eps > 0, "optim.eps", "a number > 0", self.eps)
        _require(_finite(self.momentum_decay) and self.momentum_decay >= 0,
                 "optim.momentum_decay", "a number >= 0", self.momentum_decay)  # fmt: skip


@dataclass(frozen=True)
class AdamOptim:
    """``optim`` of pix2pix: Adam for G and D, constant then linearly decaying lr."""

    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    n_epochs_init: int = 5
    n_epochs_decay: int = 5

    def __post_init__(self) -> None:
        _require(_finite(self.lr) and self.lr > 0, "optim.lr", "a number > 0", self.lr)
        _check_betas(self.betas)
        _require(self.n_epochs_init >= 0, "optim.n_epochs_init", "an integer >= 0",
                 self.n_epochs_init)  # fmt: skip
        _require(self.n_epochs_decay >= 0, "optim.n_epochs_decay", "an integer >= 0",
                 self.n_epochs_decay)  # fmt: skip


@dataclass(frozen=True)
class DataConfig:
    """``data``: the SEN12MS-CR root and how it is loaded (per process under DDP)."""

    root: str | None = None
    batch_size: int = 16
    eval_batch_size: int | None = None
    num_workers: int = 4
    crop_size: int | None = 128
    split_file: str | None = None
    on_error: Literal["raise", "skip"] = "raise"
    seed: int = 0
    with_mask: bool = False
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, "data.batch_size", "an integer >= 1", self.batch_size)
        _require(self.eval_batch_size is None or self.eval_batch_size >= 1,
                 "data.eval_batch_size", "an integer >= 1 or null", self.eval_batch_size)  # fmt: skip
        _require(self.num_workers >= 0, "data.num_workers", "an integer >= 0", self.num_workers)
        _require(self.crop_size is None or self.crop_size >= 1, "data.crop_size",
                 "an integer >= 1 or null", self.crop_size)  # fmt: skip


_OWN_TRAINER_ARGS = ("logger", "callbacks", "default_root_dir")
"""``lightning.Trainer`` arguments that ``dsen2cr train`` sets itself."""


@dataclass(frozen=True)
class TrainerConfig:
    """``trainer``: ``lightning.Trainer`` arguments (the common ones typed, others in ``extra``)."""

    max_epochs: int = 8
    accelerator: str = "auto"
    devices: int | str | list[int] = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str | int = "auto"
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    log_every_n_steps: int = 50
    val_check_interval: int | float | None = None
    num_sanity_val_steps: int = 2
    enable_progress_bar: bool = True
    benchmark: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Any other ``lightning.Trainer`` argument (checked against its signature)."""

    def __post_init__(self) -> None:
        _require(self.max_epochs >= -1, "trainer.max_epochs", "an integer >= -1", self.max_epochs)
        _require(self.num_nodes >= 1, "trainer.num_nodes", "an integer >= 1", self.num_nodes)
        _require(self.log_every_n_steps >= 1, "trainer.log_every_n_steps", "an integer >= 1",
                 self.log_every_n_steps)  # fmt: skip
        precisions = ["auto"]
        for group in typing.get_args(_PRECISION_INPUT):
            precisions += list(typing.get_args(group))
        _require(self.precision in precisions, "trainer.precision",
                 "one of " + ", ".join(str(p) for p in precisions), self.precision)  # fmt: skip
        for key in self.extra:
            if key in _OWN_TRAINER_ARGS:
                raise ConfigError(f"config key trainer.{key} is set by dsen2cr train itself")
            if key not in _trainer_parameters():
                raise ConfigError(f"unknown config key trainer.{key}: not a lightning.Trainer argument")

    def lightning_kwargs(self) -> dict[str, Any]:
        """The ``lightning.Trainer`` arguments of this section.

        ``benchmark`` (cuDNN autotuning) defaults to True unless ``deterministic`` is set.
        ``precision: auto`` becomes ``"bf16-mixed"`` on a CUDA GPU that supports bfloat16 and
        ``"32-true"`` otherwise; ``strategy: auto`` becomes ``"ddp"`` when more than one device
        or node is asked for. Keys whose value is None are left to Lightning's defaults.
        """
        kw = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        kw = {k: v for k, v in {**kw, **self.extra}.items() if v is not None}
        if "benchmark" not in kw and not kw.get("deterministic"):
            kw["benchmark"] = True  # cuDNN autotuning, unless deterministic runs are asked for
        if kw["precision"] == "auto":
            gpu = (kw["accelerator"] in ("auto", "gpu", "cuda") and torch.cuda.is_available()
                   and torch.cuda.is_bf16_supported())  # fmt: skip
            kw["precision"] = "bf16-mixed" if gpu else "32-true"
        devices = kw["devices"]
        multi = (isinstance(devices, int) and (devices > 1 or devices == -1)) or (
            isinstance(devices, list) and len(devices) > 1
        )
        if kw["strategy"] == "auto" and (multi or self.num_nodes > 1):
            kw["strategy"] = "ddp"
        return kw


def _trainer_parameters() -> set[str]:
    return set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}


@dataclass(frozen=True)
class OutConfig:
    """``out``: the run folder ``<dir>/<name>`` and whether an existing run may be replaced."""

    dir: str = "runs"
    name: str | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.name is not None:
            ok = bool(self.name) and "/" not in self.name and self.name not in (".", "..")
            _require(ok, "out.name", "a non-empty name without '/'", self.name)


# --------------------------------------------------------------------------- families
@dataclass(frozen=True)
class Family:
    """The sections that make one model family's config.

    Attributes:
        name: ``model.name``.
        model: the ``model`` section's class.
        loss: the ``loss`` section's class.
        optim: the ``optim`` section's class.
        speed: whether the family has a ``speed`` section.
        data_defaults: ``data`` defaults that differ from :class:`DataConfig`'s.
        trainer_defaults: ``trainer`` defaults that differ from :class:`TrainerConfig`'s.
    """

    name: str
    model: type
    loss: type
    optim: type
    speed: bool
    data_defaults: Mapping[str, object] = field(default_factory=dict)
    trainer_defaults: Mapping[str, object] = field(default_factory=dict)


FAMILIES: dict[str, Family] = {
    "dsen2cr": Family("dsen2cr", DSen2CRModel, DSen2CRLoss, NAdamOptim, speed=True),
    "pix2pix": Family("pix2pix", Pix2PixModel, Pix2PixLoss, AdamOptim, speed=False,
                      data_defaults={"crop_size": 256}, trainer_defaults={"max_epochs": 10}),
}  # fmt: skip
"""The model families, by ``model.name``."""

_COMMON_SECTIONS = ("model", "loss", "optim", "data", "trainer", "out", "seed")


@dataclass(frozen=True)
class TrainConfig:
    """A complete, validated training config (see the module docs for the sections)."""

    model: DSen2CRModel | Pix2PixModel
    loss: DSen2CRLoss | Pix2PixLoss
    optim: NAdamOptim | AdamOptim
    data: DataConfig
    trainer: TrainerConfig
    out: OutConfig
    speed: SpeedOptions | None = None
    seed: int = 0

    @property
    def family(self) -> Family:
        """The model family of this config."""
        return FAMILIES[self.model.name]

    @property
    def run_dir(self) -> Path:
        """The run folder ``<out.dir>/<out.name>``."""
        return Path(self.out.dir) / str(self.out.name)

    @property
    def eval_batch_size(self) -> int:
        """``data.eval_batch_size``, else ``data.batch_size``."""
        return self.data.eval_batch_size or self.data.batch_size

    def to_dict(self) -> dict[str, Any]:
        """The config as plain values in the file schema (``config.yaml``, checkpoints)."""
        out: dict[str, Any] = {}
        for name in ("model", "loss", "optim", "data"):
            out[name] = _plain(asdict(getattr(self, name)))
        trainer = asdict(self.trainer)
        extra = trainer.pop("extra")
        out["trainer"] = _plain({**trainer, **extra})
        if self.speed is not None:
            out["speed"] = asdict(self.speed)
        out["out"] = asdict(self.out)
        out["seed"] = self.seed
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], stem: str | None = None) -> TrainConfig:
        """Validate a (partial) config mapping against the schema and fill in the defaults.

        Args:
            raw: sections as in a YAML file.
            stem: default of ``out.name`` (the config file's stem); else the family name.

        Raises:
            ConfigError: an unknown section or key, a wrong type or a value out of range.
        """
        if not isinstance(raw, Mapping):
            raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
        model_raw = raw.get("model") or {}
        if not isinstance(model_raw, Mapping):
            raise ConfigError("config section 'model' must be a mapping")
        name = model_raw.get("name", "dsen2cr")
        if name not in FAMILIES:
            raise ConfigError(f"unknown model.name {name!r}; expected one of {sorted(FAMILIES)}")
        fam = FAMILIES[name]
        allowed = (*_COMMON_SECTIONS, "speed") if fam.speed else _COMMON_SECTIONS
        unknown = sorted(str(s) for s in raw if s not in allowed)
        if unknown:
            raise ConfigError(f"unknown config section(s) {', '.join(map(repr, unknown))} for "
                              f"model {name!r}; expected {', '.join(allowed)}")  # fmt: skip
        cfg = cls(
            model=_section(fam.model, model_raw, "model", name),
            loss=_section(fam.loss, raw.get("loss"), "loss", name),
            optim=_section(fam.optim, raw.get("optim"), "optim", name),
            data=_section(DataConfig, raw.get("data"), "data", name, fam.data_defaults),
            trainer=_trainer_section(raw.get("trainer"), fam.trainer_defaults),
            out=_section(OutConfig, raw.get("out"), "out", name),
            speed=_section(SpeedOptions, raw.get("speed"), "speed", name) if fam.speed else None,
            seed=_check(raw.get("seed", 0), int, "seed"),
        )
        if cfg.out.name is None:
            cfg = replace(cfg, out=replace(cfg.out, name=stem or name))
        if isinstance(cfg.model, Pix2PixModel) and cfg.data.crop_size is not None:
            mult = 2**cfg.model.num_downs
            _require(cfg.data.crop_size % mult == 0, "data.crop_size",
                     f"a multiple of 2**model.num_downs = {mult} for pix2pix", cfg.data.crop_size)  # fmt: skip
        return cfg


def _plain(x: object) -> object:
    """Tuples -> lists, recursively (YAML and checkpoints hold plain lists)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# --------------------------------------------------------------------------- validation
def _describe(tp: object) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin is tuple:
        return f"a list of {len(args)} {_describe(args[0]).removeprefix('a ')}s"
    if origin is list:
        return f"a list of {_describe(args[0]).removeprefix('an ').removeprefix('a ')}s"
    return _TYPE_NAMES.get(tp, str(tp))


_TYPE_NAMES: dict[object, str] = {bool: "true or false", int: "an integer", float: "a number",
                                  str: "a string", type(None): "null"}  # fmt: skip
"""How a config error names a plain type."""


def _check(value: object, tp: object, key: str) -> Any:
    """``value`` checked against the type ``tp`` (and converted where YAML needs it).

    Returns:
        The value, of type ``tp`` (known only at run time, hence ``Any``).
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)

    def bad() -> ConfigError:
        return ConfigError(f"config key {key} must be {_describe(tp)}, got {value!r}")

    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise bad()
        for a in args:
            if a is type(None):
                continue
            try:
                return _check(value, a, key)
            except ConfigError:
                continue
        raise bad()
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise bad()
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 7e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad() from None
        raise bad()
    if tp is str:
        if isinstance(value, (str, os.PathLike)):
            return os.fspath(value)
        raise bad()
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise bad()
        return tuple(_check(v, a, key) for v, a in zip(value, args, strict=True))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise bad()
        return [_check(v, args[0], key) for v in value]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad()
        return dict(value)
    raise TypeError(f"unsupported config type {tp!r} of {key}")  # pragma: no cover


def _section(
    cls: type[_Section],
    raw: object,
    where: str,
    family: str,
    defaults: Mapping[str, object] | None = None,
) -> _Section:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config section {where!r} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(str(k) for k in raw if k not in names)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(f'{where}.{k}' for k in unknown)} for model "
            f"{family!r}; known: {', '.join(names)}"
        )
    kwargs = dict(defaults or {})
    for name in names:
        if name in raw:
            kwargs[name] = _check(raw[name], hints[name], f"{where}.{name}")
    return cls(**kwargs)


def _trainer_section(raw: object, defaults: Mapping[str, object]) -> TrainerConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config section 'trainer' must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(TrainerConfig)
    known = {f.name for f in fields(TrainerConfig)} - {"extra"}
    kwargs: dict[str, Any] = dict(defaults)
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        if key in known:
            kwargs[key] = _check(value, hints[key], f"trainer.{key}")
        else:
            extra[str(key)] = value
    return TrainerConfig(**kwargs, extra=extra)


# --------------------------------------------------------------------------- loading
def _set_dotted(cfg: dict[str, Any], dotted: str, value: object) -> None:
    keys = dotted.split(".")
    node = cfg
    for k in keys[:-1]:
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"config override {dotted!r}: {k!r} is not a section")
        node = nxt
    node[keys[-1]] = value


def load_config(
    path_or_dict: str | os.PathLike[str] | Mapping[str, Any] | TrainConfig,
    overrides: Sequence[str] = (),
) -> TrainConfig:
    """Read a training config, apply overrides and validate it (:meth:`TrainConfig.from_dict`).

    Args:
        path_or_dict: a YAML file, a (partial) config mapping, or a :class:`TrainConfig`.
        overrides: ``"key.sub=value"`` strings applied after the file; values are parsed with
            ``yaml.safe_load`` (``trainer.max_epochs=3``, ``model.sar=false``,
            ``optim.betas=[0.9,0.99]``).

    Returns:
        The complete :class:`TrainConfig`. ``out.name`` defaults to the config file's stem (or
        the model family for a mapping).

    Raises:
        ConfigError: a missing or invalid file, a malformed override, an unknown key or value.
    """
    stem: str | None = None
    if isinstance(path_or_dict, TrainConfig):
        if not overrides:
            return path_or_dict
        raw: dict[str, Any] = path_or_dict.to_dict()
    elif isinstance(path_or_dict, Mapping):
        raw = copy.deepcopy(dict(path_or_dict))
    else:
        p = Path(path_or_dict)
        if not p.is_file():
            raise InputNotFoundError(f"config file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {' '.join(str(exc).split())}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {p} must hold a mapping of sections")
        stem = p.stem
    for item in overrides:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"config override {item!r} is not of the form key.sub=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config override {item!r}: cannot parse the value: {exc}") from None
        _set_dotted(raw, key.strip(), value)
    return TrainConfig.from_dict(raw, stem=stem)
