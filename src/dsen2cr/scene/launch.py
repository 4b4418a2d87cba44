"""Which share of a batch this process predicts: ranks from the launchers clusters already use.

A batch of scenes runs as one or many independent processes; each takes a fixed share of the
sorted scene list, so no process ever waits for another and one slow scene delays nobody. The
process's place comes from, in this order:

1. an explicit shard ``I/N`` (``dsen2cr predict --shard I/N``, e.g. one per job-array task);
2. ``torchrun``: ``RANK`` / ``WORLD_SIZE``, the GPU from ``LOCAL_RANK``;
3. ``srun`` (a SLURM job step): ``SLURM_PROCID`` / ``SLURM_STEP_NUM_TASKS`` (or
   ``SLURM_NTASKS``), the GPU from ``SLURM_LOCALID``. Only inside a step (``SLURM_STEP_ID``
   set): the batch script itself runs as one process even when the job asked for many tasks;
4. a SLURM job array (``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_COUNT``,
   ``SLURM_ARRAY_TASK_MIN``) multiplies the share: task ``t`` of ``T``, process ``r`` of ``W``
   takes share ``t W + r`` of ``T W``;
5. otherwise: the only process, share 0 of 1.

Share ``k`` of ``n`` is every scene whose position ``i`` in the sorted list has ``i % n == k``.

A launcher variable that is read must hold what its launcher writes, else the process stops with
an :class:`~dsen2cr.errors.OptionError` instead of predicting every scene: ranks, ids and local
ranks are integers >= 0, world sizes and task counts integers >= 1, and the variables come in
their pairs (``RANK`` with ``WORLD_SIZE``, ``SLURM_ARRAY_TASK_ID`` with
``SLURM_ARRAY_TASK_COUNT``). An empty variable counts as unset. Variables of a launcher that does
not apply (``SLURM_PROCID`` outside a job step) are not read.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from dsen2cr.errors import OptionError

__all__ = ["Shard", "parse_shard", "shard_from_env"]

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """The place of this process in a batch.

    Attributes:
        index: this process's share, ``0 <= index < count``.
        count: the number of shares (processes of the whole batch).
        local_rank: the process's index on its machine (chooses its GPU), or None.
        source: where the numbers came from (``"--shard"``, ``"torchrun"``, ``"srun"``,
            ``"job array"``, ``"single"``).
        host: this machine's name.
    """

    index: int = 0
    count: int = 1
    local_rank: int | None = None
    source: str = "single"
    host: str = socket.gethostname()

    def take(self, items: Sequence[T]) -> list[T]:
        """This process's fixed share of a list.

        Args:
            items: every item of the job, already sorted.

        Returns:
            Every ``count``-th item, from the ``index``-th.
        """
        return [x for i, x in enumerate(items) if i % self.count == self.index]

    def device(self, requested: str, cuda_devices: int) -> str:
        """The device of this process.

        Args:
            requested: the device asked for (``auto``, ``cuda``, ``cuda:N``, ``cpu``).
            cuda_devices: visible GPUs.

        Returns:
            With several visible GPUs and ``requested`` auto or cuda, the GPU of its local rank
            (``cuda:<local_rank % GPUs>``); else ``requested``.
        """
        if self.local_rank is not None and cuda_devices > 1 and requested in ("auto", "cuda"):
            return f"cuda:{self.local_rank % cuda_devices}"
        return requested

    @property
    def label(self) -> str:
        """``rank 2/8`` (1-based) for progress lines, empty for a single process."""
        return "" if self.count == 1 else f"rank {self.index + 1}/{self.count}"

    @property
    def prefix(self) -> str:
        """``[rank 2/8 node07]`` (``[node07]`` for a single process): the start of a progress
        line."""
        return f"[{self.label + ' ' if self.label else ''}{self.host}]"


_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> Shard:
    """An explicit share of a job.

    Args:
        text: ``"I/N"``, share ``I`` (0-based) of ``N``.

    Returns:
        The :class:`Shard`.

    Raises:
        OptionError: not two integers with ``0 <= I < N``.
    """
    m = _SHARD.match(text)
    if m is None or not 0 <= int(m[1]) < int(m[2]):
        raise OptionError("shard", f"must be I/N with 0 <= I < N, e.g. 0/4, got {text!r}")
    return Shard(int(m[1]), int(m[2]), None, "--shard")


def _int(env: Mapping[str, str], name: str, least: int = 0) -> int | None:
    """The integer in the variable ``name`` (None when it is unset or empty).

    Raises:
        OptionError: the value is not an integer >= ``least``.
    """
    value = env.get(name, "").strip()
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or int(value) < least:
        raise OptionError("shard", f"cannot be taken from the launcher: {name}={value!r} is not "
                          f"an integer >= {least}")  # fmt: skip
    return int(value)


def _pair(env: Mapping[str, str], first: str, second: str) -> tuple[int, int] | None:
    """The index in ``first`` (>= 0) and the count in ``second`` (>= 1), both or neither set."""
    index, count = _int(env, first), _int(env, second, least=1)
    if (index is None) != (count is None):
        given, missing = (first, second) if count is None else (second, first)
        raise OptionError("shard", f"cannot be taken from the launcher: {given} is set but "
                          f"{missing} is not")  # fmt: skip
    return None if index is None or count is None else (index, count)


def shard_from_env(env: Mapping[str, str] | None = None, explicit: Shard | None = None) -> Shard:
    """The :class:`Shard` of this process from its launcher's environment (see the module docs).

    Args:
        env: the environment (default ``os.environ``).
        explicit: an explicit shard (``--shard``), which wins over every variable.

    Raises:
        OptionError: a launcher variable that is malformed (not an integer, a negative rank, a
            world size or task count below 1), set without its pair, or inconsistent with the
            others (a rank not below the world size, an array task outside its array).
    """
    e = os.environ if env is None else env
    if explicit is not None:
        return explicit
    rank, world, local, source = 0, 1, None, "single"
    torchrun = _pair(e, "RANK", "WORLD_SIZE")
    if torchrun is not None:
        (rank, world), source = torchrun, "torchrun"
        local = _int(e, "LOCAL_RANK")
    elif "SLURM_STEP_ID" in e and _int(e, "SLURM_PROCID") is not None:
        tasks = _int(e, "SLURM_STEP_NUM_TASKS", least=1)
        if tasks is None:
            tasks = _int(e, "SLURM_NTASKS", least=1) or 1
        rank, world, source = _int(e, "SLURM_PROCID") or 0, tasks, "srun"
        local = _int(e, "SLURM_LOCALID")
    if not 0 <= rank < world:
        raise OptionError("shard", f"{source} rank {rank} is not below its world size {world}")
    array = _pair(e, "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT")
    if array is not None and array[1] > 1:
        (task, count), first = array, _int(e, "SLURM_ARRAY_TASK_MIN") or 0
        if not 0 <= task - first < count:
            raise OptionError("shard", f"job array task {task} outside {first}..{first + count - 1}")
        rank, world = (task - first) * world + rank, count * world
        source = "job array" if source == "single" else f"job array x {source}"
    return Shard(rank, world, local, source)
