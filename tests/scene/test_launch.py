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


STEP = {"SLURM_STEP_ID": "0", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2"}
ARRAY = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "4"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # torchrun: malformed values (a negative rank used to mean "no launcher": every scene)
        ({"RANK": "-1", "WORLD_SIZE": "2"}, "RANK='-1' is not an integer >= 0"),
        ({"RANK": "abc", "WORLD_SIZE": "2"}, "RANK='abc' is not an integer >= 0"),
        ({"RANK": "0", "WORLD_SIZE": "0"}, "WORLD_SIZE='0' is not an integer >= 1"),
        ({"RANK": "0", "WORLD_SIZE": "2.0"}, "WORLD_SIZE='2.0' is not an integer >= 1"),
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "x"}, "LOCAL_RANK='x' is not an integer"),
        # torchrun: one of the pair missing
        ({"RANK": "1"}, "RANK is set but WORLD_SIZE is not"),
        ({"WORLD_SIZE": "4"}, "WORLD_SIZE is set but RANK is not"),
        ({"RANK": "1", "WORLD_SIZE": " "}, "RANK is set but WORLD_SIZE is not"),
        # srun, inside a job step
        ({**STEP, "SLURM_PROCID": "abc"}, "SLURM_PROCID='abc' is not an integer >= 0"),
        ({**STEP, "SLURM_PROCID": "-2"}, "SLURM_PROCID='-2' is not an integer >= 0"),
        ({**STEP, "SLURM_STEP_NUM_TASKS": "0"}, "SLURM_STEP_NUM_TASKS='0' is not an integer >= 1"),
        ({**STEP, "SLURM_STEP_NUM_TASKS": "", "SLURM_NTASKS": "two"},
         "SLURM_NTASKS='two' is not an integer >= 1"),
        ({**STEP, "SLURM_LOCALID": "-1"}, "SLURM_LOCALID='-1' is not an integer >= 0"),
        # job arrays
        ({**ARRAY, "SLURM_ARRAY_TASK_COUNT": "0"}, "SLURM_ARRAY_TASK_COUNT='0' is not an integer >= 1"),
        ({**ARRAY, "SLURM_ARRAY_TASK_ID": "x"}, "SLURM_ARRAY_TASK_ID='x' is not an integer >= 0"),
        ({**ARRAY, "SLURM_ARRAY_TASK_MIN": "-3"}, "SLURM_ARRAY_TASK_MIN='-3' is not an integer"),
        ({"SLURM_ARRAY_TASK_ID": "3"}, "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not"),
        ({"SLURM_ARRAY_TASK_COUNT": "3"}, "SLURM_ARRAY_TASK_COUNT is set but SLURM_ARRAY_TASK_ID is not"),
    ],
)  # fmt: skip
def test_malformed_launcher_variables_are_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(OptionError, match="cannot be taken from the launcher") as err:
        shard_from_env(env)
    assert err.value.option == "shard" and message in str(err.value)
    assert str(err.value).startswith("shard ") and "\n" not in str(err.value)
    assert shard_from_env(env, parse_shard("0/2")).count == 2  # an explicit shard still wins


def test_valid_launcher_variables_as_before() -> None:
    # empty values are unset, variables of a launcher that does not apply are not read
    assert shard_from_env({"RANK": "", "WORLD_SIZE": "", "LOCAL_RANK": ""}).source == "single"
    assert shard_from_env({"SLURM_PROCID": "x", "SLURM_NTASKS": "0"}).count == 1  # no step
    assert shard_from_env({"RANK": " 1 ", "WORLD_SIZE": "2"}).index == 1  # spaces around
    step = shard_from_env({**STEP, "SLURM_STEP_NUM_TASKS": "", "SLURM_NTASKS": "3"})
    assert (step.index, step.count, step.local_rank) == (1, 3, None)
    one_task = shard_from_env({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "1",
                               "SLURM_ARRAY_TASK_MIN": "bad but unused"})  # fmt: skip
    assert (one_task.index, one_task.count, one_task.source) == (0, 1, "single")
    no_min = shard_from_env({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"})
    assert (no_min.index, no_min.count) == (1, 2)
    with pytest.raises(OptionError, match="not below"):
        shard_from_env({**STEP, "SLURM_PROCID": "2"})
