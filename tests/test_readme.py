"""The README's "Your own scene" recipe, run as a new user would run it, and its other claims.

The shell block marked ``<!-- tested: tests/test_readme.py -->`` is run command by command with
bash, unmodified, in a folder laid out like a fresh clone beside the shared data:
``TMP/repo`` (the working directory, with ``.venv`` a link to this checkout's) and
``TMP/shared/realdata`` (a link to ``$DSEN2CR_REALDATA``). ``PATH`` holds no ``dsen2cr``, as in a
fresh shell, so a command written as a bare ``dsen2cr`` fails as it did for a new user. The
official weights cannot be downloaded here; the test writes a small network in the authors'
Keras 2.2.4 HDF5 layout under the official file name instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import rasterio
import torch
from rio_cogeo.cogeo import cog_validate

from dsen2cr.models import DSen2CR, describe_weights, load_weights
from dsen2cr.scene import PredictOptions, mask_scene
from tests.helpers import REALDATA, REPO, needs_files
from tests.models.test_keras import random_weights, write_keras

README = REPO / "README.md"
MARKER = re.compile(r"^\s*<!-- tested: tests/test_readme\.py(?: \((?P<what>[^)]*)\))? -->\s*$")
S2 = REALDATA / "sen1floods11" / "Spain_7370579_S2Hand.tif"
S1 = REALDATA / "sen1floods11" / "Spain_7370579_S1Hand.tif"


def marked(text: str, what: str | None = None) -> list[list[str]]:
    """The lines of each block (fenced code or table) that follows a marker naming ``what``,
    dedented by the indentation of the block's first line (blocks may sit in list items)."""
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if m is None or m["what"] != what:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        first = lines[j]
        indent = len(first) - len(first.lstrip())
        if first.strip().startswith("```"):
            end = next(k for k in range(j + 1, len(lines)) if lines[k].strip() == "```")
            body = lines[j : end + 1]
        else:
            end = next((k for k in range(j, len(lines)) if not lines[k].strip()), len(lines))
            body = lines[j:end]
        prefix = first[:indent]
        assert all(s.startswith(prefix) for s in body if s.strip()), f"ragged block: {body}"
        blocks.append([s[indent:] for s in body])
    return blocks


def shell_commands(block: list[str]) -> list[str]:
    """The commands of a fenced shell block, each as written (continuation lines kept)."""
    assert block[0].strip() in ("```bash", "```sh"), f"not a shell block: {block[0]}"
    commands, current = [], []
    for line in block[1:-1]:
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current.append(line)
        if not line.rstrip().endswith("\\"):
            commands.append("\n".join(current))
            current = []
    assert not current, f"unterminated continuation: {current}"
    return commands


def recipe() -> list[str]:
    blocks = marked(README.read_text(encoding="utf-8"))
    assert len(blocks) == 1, f"expected one block marked for this test, found {len(blocks)}"
    return shell_commands(blocks[0])


def fresh_shell_env() -> dict[str, str]:
    """The environment of a fresh shell: no ``dsen2cr`` on PATH, no active virtualenv."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "DSEN2CR_REALDATA")}
    dirs = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(d for d in dirs if d and not shutil.which("dsen2cr", path=d))
    env["PATH"] = env["PATH"] or os.defpath
    return env


# ------------------------------------------------------------------------------------ parsing


def test_marked_blocks_are_found_as_written() -> None:
    text = "\n".join([
        "1. Step", "", "   <!-- tested: tests/test_readme.py -->", "   ```bash",
        "   # a comment", "   .venv/bin/dsen2cr a \\", "       --b c   # trailing", "",
        "   .venv/bin/dsen2cr d", "   ```", "<!-- tested: tests/test_readme.py (table) -->",
        "| x |", "| --- |", "| 1 |", "", "```bash", "not marked", "```",
    ])  # fmt: skip
    (block,) = marked(text)
    assert shell_commands(block) == [".venv/bin/dsen2cr a \\\n    --b c   # trailing",
                                     ".venv/bin/dsen2cr d"]  # fmt: skip
    assert marked(text, "table") == [["| x |", "| --- |", "| 1 |"]]
    with pytest.raises(AssertionError, match="not a shell block"):
        shell_commands(["```python", "x = 1", "```"])


def test_recipe_commands_are_what_a_new_user_needs() -> None:
    commands = recipe()
    assert [c.split()[1] for c in commands] == ["predict", "info", "convert-weights"]
    for command in commands:  # never a bare `dsen2cr`: it is not on a fresh shell's PATH
        assert command.startswith(".venv/bin/dsen2cr "), command
    predict = " ".join(commands[0].replace("\\\n", " ").split())
    for part in ("--s2 ../shared/realdata/sen1floods11/Spain_7370579_S2Hand.tif",
                 "--s1 ../shared/realdata/sen1floods11/Spain_7370579_S1Hand.tif",
                 "--weights model_SARcarl.hdf5", "--out cloudfree.tif", "--mask-out mask.tif",
                 "--preview preview.png"):  # fmt: skip
        assert part in predict


CHECKPOINTS = {  # the authors' README: loss and inputs of each Google Drive file
    "model_SARcarl.hdf5": ("1L3YUVOnlg67H5VwlgYO9uC9iuNlq7VMg", "carl", True),
    "model_SARplain.hdf5": ("1zv4_91Yr2IYyYDoqhZw8KpnfvfLhkuBB", "l1", True),
    "model_noSARcarl.hdf5": ("1VHZa5-lX68mA2FbHeCiQsUq13oECw9DA", "carl", False),
    "model_noSARplain.hdf5": ("11Th6UwKMXla7LGxsFJXwj-Jx9bSKlWUH", "l1", False),
}


def test_checkpoint_table_links_and_what_dsen2cr_reads(tmp_path) -> None:
    """Each row of the README's table: its link, and the loss and inputs it states are those
    ``dsen2cr info`` reports for a file of that name and architecture."""
    text = README.read_text(encoding="utf-8")
    rows = re.findall(r"^\s*\| `(model_\w+\.hdf5)` \| (\w+) \| ([^|]+?) \| (\S+) \|$", text, re.M)
    assert {r[0] for r in rows} == set(CHECKPOINTS)
    for name, loss, inputs, link in rows:
        drive_id, want_loss, sar = CHECKPOINTS[name]
        assert link == f"https://drive.google.com/file/d/{drive_id}/view"
        assert ("S1" in inputs) is sar and "S2" in inputs
        k, b = random_weights(features=4, blocks=1, sar=2 if sar else 0)
        info = describe_weights(write_keras(tmp_path / name, k, b, layout="full"))
        assert info["training"]["loss"] == want_loss == loss.lower()
        assert info["uses_sar"] is sar


# ------------------------------------------------------------------------------- the recipe


@pytest.mark.slow
@pytest.mark.realdata
@needs_files(S2, S1)
def test_recipe_runs_in_a_fresh_clone(tmp_path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".venv").symlink_to(REPO / ".venv", target_is_directory=True)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "realdata").symlink_to(REALDATA, target_is_directory=True)
    kernels, biases = random_weights(features=8, blocks=2, sar=2, seed=3)
    weights = write_keras(repo / "model_SARcarl.hdf5", kernels, biases, layout="full")
    env = fresh_shell_env()
    assert subprocess.run(["bash", "-c", "dsen2cr --help"], cwd=repo, env=env,
                          capture_output=True).returncode == 127  # fmt: skip

    outputs = {}
    for command in recipe():
        run = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True,
                             text=True, timeout=600)  # fmt: skip
        assert run.returncode == 0, f"{command}\nexit {run.returncode}\n{run.stderr[-3000:]}"
        outputs[command.split()[1]] = run.stdout

    with rasterio.open(S2) as s2, rasterio.open(repo / "cloudfree.tif") as pred:
        assert (pred.count, pred.dtypes[0]) == (13, "uint16")
        assert (pred.crs, pred.transform, pred.width, pred.height) == (
            s2.crs, s2.transform, s2.width, s2.height)  # fmt: skip
        assert np.count_nonzero(pred.read()) > 0
    valid, errors, _ = cog_validate(str(repo / "cloudfree.tif"), strict=True)
    assert valid, errors
    with rasterio.open(S2) as s2, rasterio.open(repo / "mask.tif") as mask:
        assert (mask.count, mask.dtypes[0]) == (1, "int8")
        assert (mask.crs, mask.transform, mask.shape) == (s2.crs, s2.transform, s2.shape)
        assert set(np.unique(mask.read(1))) <= {-128, -1, 0, 1}
    assert (repo / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    info = json.loads(outputs["info"])
    assert info["format"] == "keras" and info["uses_sar"] and info["training"]["loss"] == "carl"
    assert info["config"]["features"] == 8 and info["config"]["blocks"] == 2
    converted = DSen2CR.from_pretrained(repo / "model_SARcarl.safetensors")
    original = load_weights(weights)
    assert converted.config == original.config
    for key, value in original.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key


# ----------------------------------------------------------------- the mask on a clear scene


def mask_table() -> dict[float, tuple[str, str]]:
    """README's table of cloud and shadow percentages (as written) against the cloud threshold."""
    (table,) = marked(README.read_text(encoding="utf-8"), "mask fractions")
    rows = {}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[float(cells[0].split()[0])] = (cells[1].split()[0], cells[2].split()[0])
    return rows


def as_written(fraction: float, written: str) -> str:
    """``fraction`` in percent with as many decimals as ``written`` has."""
    decimals = len(written.partition(".")[2])
    return f"{100 * fraction:.{decimals}f}"


@pytest.mark.realdata
@needs_files(S2)
def test_mask_fractions_on_the_clear_scene_are_the_readme_table(tmp_path) -> None:
    table = mask_table()
    assert 0.2 in table and len(table) >= 3
    for threshold, (cloud, shadow) in table.items():
        got = mask_scene(S2, tmp_path / f"m{threshold}.tif",
                         options=PredictOptions(threshold=threshold, progress=False))  # fmt: skip
        assert as_written(got["cloud_fraction"], cloud) == cloud, threshold
        assert as_written(got["shadow_fraction"], shadow) == shadow, threshold
