"""Averages of per-image metrics over a data set, summable across processes.

How images are averaged is part of a metric protocol (:attr:`dsen2cr.metrics.Protocol.averaging`):
``"finite"`` leaves NaN and +-inf out of the means (this package's default), ``"nan_skipping"``
leaves out only NaN, like UnCRtainTS' running mean, so an infinite PSNR makes the mean infinite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeAlias

import numpy as np
import torch

from dsen2cr.metrics.protocols import Averaging

__all__ = ["MetricAccumulator", "MetricMean", "MetricValue"]

MetricValue: TypeAlias = float | np.ndarray | torch.Tensor
"""Per-image values of one metric: a float, a 0-d / (B,) / (B, K) array or tensor."""
MetricMean: TypeAlias = float | int | np.ndarray
"""One entry of :meth:`MetricAccumulator.compute`: a mean (float), a count (int), or per
component means or counts of a vector metric (numpy array)."""


class MetricAccumulator:
    """Averages per-image metrics over a data set, leaving undefined values out.

    For each key it keeps, as float64 tensors, the sum of the values averaged, their number and
    the number of undefined values left out: with ``averaging="finite"`` (default) every
    non-finite value (NaN, +-inf) is undefined; with ``"nan_skipping"`` only NaN is. Scalar metrics are given per image
    (a float, a 0-d tensor/array = one image, or a 1-D ``(B,)`` tensor/array = B images);
    vector metrics such as ``"band_nrmse"`` are given as 2-D ``(B, K)`` and averaged per
    component. The state lives on the device of the first tensor seen (CPU for plain numbers);
    updates cause no host-device synchronisation.

    Example (Lightning)::

        acc.update(batch_metrics(pred, target, cloudy, mask))   # every validation step
        acc.sync(); results = acc.compute(); acc.reset()        # at epoch end, on every rank
    """

    def __init__(
        self, device: torch.device | str | None = None, averaging: Averaging = "finite"
    ) -> None:
        """Create an empty accumulator.

        Args:
            device: device of the state tensors; default: that of the first tensor updated.
            averaging: ``"finite"`` or ``"nan_skipping"`` (see the class docs), usually
                :attr:`dsen2cr.metrics.Protocol.averaging`.
        """
        if averaging not in ("finite", "nan_skipping"):
            raise ValueError(f"averaging must be 'finite' or 'nan_skipping', got {averaging!r}")
        self.averaging: Averaging = averaging
        self._device = None if device is None else torch.device(device)
        self._state: dict[str, torch.Tensor] = {}  # key -> (3, *shape): sum, count, undefined
        self._synced = False

    @property
    def keys(self) -> list[str]:
        """Metric keys seen so far, sorted."""
        return sorted(self._state)

    def reset(self) -> None:
        """Forget everything (keys included)."""
        self._state.clear()
        self._synced = False

    def _slot(self, key: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        if self._device is None:
            self._device = device
        if key not in self._state:
            self._state[key] = torch.zeros((3, *shape), dtype=torch.float64, device=self._device)
        slot = self._state[key]
        if tuple(slot.shape[1:]) != shape:
            raise ValueError(
                f"metric {key!r} has per-image shape {shape}, before {tuple(slot.shape[1:])}"
            )
        return slot

    def update(self, values: Mapping[str, MetricValue]) -> None:
        """Add per-image values.

        Args:
            values: ``{key: value}`` where a value is a float, a 0-d tensor/array (one image),
                a 1-D ``(B,)`` tensor/array (B images of a scalar metric) or a 2-D ``(B, K)``
                tensor/array (B images of a K-vector metric, e.g. ``band_nrmse``).
        """
        if self._synced:
            raise RuntimeError(
                "this accumulator already holds synced global totals; reset() it before updating"
            )
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                v = value.detach()
            else:
                v = torch.as_tensor(np.asarray(value, dtype=np.float64))
            if v.ndim == 0:
                v = v.reshape(1)
            if v.ndim > 2:
                raise ValueError(f"metric {key!r}: expected (B,) or (B, K), got {tuple(v.shape)}")
            slot = self._slot(key, tuple(v.shape[1:]), v.device)
            v = v.to(device=slot.device, dtype=torch.float64)
            kept = torch.isfinite(v) if self.averaging == "finite" else ~torch.isnan(v)
            slot[0] += torch.where(kept, v, torch.zeros_like(v)).sum(0)
            slot[1] += kept.sum(0)
            slot[2] += (~kept).sum(0)

    def merge(self, other: MetricAccumulator) -> MetricAccumulator:
        """Add another accumulator's totals into this one (keys are united); returns self."""
        if other.averaging != self.averaging:
            raise ValueError(
                f"cannot merge an accumulator averaging {other.averaging!r} into one averaging "
                f"{self.averaging!r}"
            )
        for key in other.keys:
            src = other._state[key]
            dst = self._slot(key, tuple(src.shape[1:]), src.device)
            dst += src.to(dst.device)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """State as tensors: ``{key: (3, *shape) float64}`` rows = sum, count, undefined."""
        return {k: self._state[k].clone() for k in self.keys}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Replace the state by one from :meth:`state_dict`."""
        self.reset()
        for key, value in state.items():
            v = value.detach().to(torch.float64)
            self._state[key] = v.to(self._device) if self._device is not None else v.clone()
            if self._device is None:
                self._device = v.device

    def sync(self) -> MetricAccumulator:
        """Sum the totals of every process of the default ``torch.distributed`` group.

        A no-op when ``torch.distributed`` is not initialised or has a single process. Every
        rank must call it (it is a collective). Ranks may have seen different keys (e.g. a rank
        whose images had no mask): the key lists are gathered first and united. Afterwards every
        rank holds the global totals, further :meth:`update` calls are refused until
        :meth:`reset`, and calling :meth:`sync` again does nothing. Returns self.
        """
        import torch.distributed as dist

        if self._synced or not (dist.is_available() and dist.is_initialized()):
            return self
        if dist.get_world_size() == 1:
            self._synced = True
            return self
        local = {k: tuple(self._state[k].shape[1:]) for k in self.keys}
        gathered: list[dict[str, tuple[int, ...]] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, local)
        shapes: dict[str, tuple[int, ...]] = {}
        for part in gathered:
            for key, shape in (part or {}).items():
                if shapes.setdefault(key, shape) != shape:
                    raise ValueError(f"metric {key!r} has different shapes across ranks")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        else:
            device = torch.device("cpu")
        keys = sorted(shapes)
        if not keys:
            self._synced = True
            return self
        flat = torch.cat(
            [
                (
                    self._state[k].to(device)
                    if k in self._state
                    else torch.zeros((3, *shapes[k]), dtype=torch.float64, device=device)
                ).reshape(-1)
                for k in keys
            ]
        )
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        home = self._device if self._device is not None else device
        offset = 0
        for k in keys:
            n = 3 * math.prod(shapes[k])
            self._state[k] = flat[offset : offset + n].reshape(3, *shapes[k]).to(home)
            offset += n
        self._device = home
        self._synced = True
        return self

    def compute(self) -> dict[str, MetricMean]:
        """Means over images.

        Returns:
            For every key: ``key`` -> mean of the values kept (NaN if there is none),
            ``key_count`` -> number of images averaged, ``key_undefined`` -> number of images
            whose value was left out as undefined. Scalar metrics give Python floats/ints; vector
            metrics (e.g. ``band_nrmse``) give numpy arrays per component.
        """
        out: dict[str, MetricMean] = {}
        for key in self.keys:
            s, n, u = self._state[key].cpu().unbind(0)
            mean = torch.where(n > 0, s / n.clamp(min=1), torch.full_like(s, math.nan))
            if mean.ndim == 0:
                out[key] = float(mean)
                out[f"{key}_count"] = int(n)
                out[f"{key}_undefined"] = int(u)
            else:
                out[key] = mean.numpy()
                out[f"{key}_count"] = n.numpy().astype(np.int64)
                out[f"{key}_undefined"] = u.numpy().astype(np.int64)
        return out
