"""The real-data folder of the tests: ``$DSEN2CR_REALDATA`` as the README's Development section
describes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, realdata_folder


def test_realdata_folder_from_the_environment(tmp_path) -> None:
    default = (REPO.parent / "shared" / "realdata").resolve()
    assert realdata_folder({}) == default
    assert realdata_folder({"DSEN2CR_REALDATA": ""}) == default  # empty: unset
    assert realdata_folder({"DSEN2CR_REALDATA": str(tmp_path)}) == tmp_path.resolve()
    # relative to the repository root, not to the working directory
    assert realdata_folder({"DSEN2CR_REALDATA": "data/x"}) == (REPO / "data" / "x").resolve()
    assert realdata_folder({"DSEN2CR_REALDATA": "~/rd"}) == (Path.home() / "rd").resolve()


def test_tests_skip_without_the_real_data(tmp_path) -> None:
    """A real-data test skips, naming the variable, when the folder it names is absent."""
    env = {**os.environ, "DSEN2CR_REALDATA": str(tmp_path / "absent")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/test_readme.py::test_mask_fractions_on_the_clear_scene_are_the_readme_table"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 skipped" in run.stdout and "DSEN2CR_REALDATA" in run.stdout
    assert str(tmp_path / "absent") in run.stdout
