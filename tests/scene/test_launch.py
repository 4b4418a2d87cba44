"""Shares of a batch from torchrun, srun, job arrays and --shard."""

from __future__ import annotations

import pytest

from dsen2cr.errors import OptionError
from dsen2cr.scene import Shard, parse_shard, shard_from_env


def test_single_process_by_default() -> None:
    s = shard_from_env({})
    assert (s.index, s.count, s.local_rank, s.source) == (0, 1, None, "single")
    assert s.take(list("abc")) == ["a", "b", "c"] and s.label == ""


def test_torchrun() -> None:
    s = shard_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (s.index, s.count, s.local_rank, s.source) == (3, 4, 1, "torchrun")
    assert s.take(list(range(10))) == [3, 7] and s.label == "rank 4/4"
    assert s.device("auto", 2) == "cuda:1" and s.device("cuda", 4) == "cuda:1"
    assert s.device("auto", 1) == "auto"  # one visible GPU (CUDA_VISIBLE_DEVICES per task)
    assert s.device("cpu", 4) == "cpu"


def test_srun_only_inside_a_job_step() -> None:
    step = {"SLURM_STEP_ID": "0", "SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8",
            "SLURM_NTASKS": "16", "SLURM_LOCALID": "1"}  # fmt: skip
    s = shard_from_env(step)
    assert (s.index, s.count, s.local_rank, s.source) == (5, 8, 1, "srun")
    # the batch script itself (no step): one process, whatever the job's task count
    script = {"SLURM_PROCID": "0", "SLURM_NTASKS": "16", "SLURM_LOCALID": "0"}
    assert shard_from_env(script).count == 1


def test_job_arrays_multiply_shares() -> None:
    array = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10",
             "SLURM_ARRAY_TASK_COUNT": "4"}  # fmt: skip
    s = shard_from_env(array)
    assert (s.index, s.count, s.source) == (2, 4, "job array")
    both = {**array, "SLURM_STEP_ID": "0", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2"}
    s = shard_from_env(both)
    assert (s.index, s.count, s.source) == (5, 8, "job array x srun")
    shares = [Shard(i, 8).take(list(range(20))) for i in range(8)]
    assert sorted(x for share in shares for x in share) == list(range(20))  # each exactly once
    with pytest.raises(OptionError, match=r"outside 10\.\.13"):
        shard_from_env({**array, "SLURM_ARRAY_TASK_ID": "20"})


def test_explicit_shard_wins_and_errors() -> None:
    explicit = parse_shard("1/3")
    assert shard_from_env({"RANK": "0", "WORLD_SIZE": "2"}, explicit) is explicit
    assert (explicit.index, explicit.count, explicit.source) == (1, 3, "--shard")
    for bad in ("3/3", "a/b", "1", "-1/2"):
        with pytest.raises(OptionError, match="I/N"):
            parse_shard(bad)
    with pytest.raises(OptionError, match="not below"):
        shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})
