"""``dsen2cr synth-data``, ``index`` and ``mosaic`` (:mod:`dsen2cr.cli.data`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dsen2cr.cli.data import report_mosaic
from dsen2cr.data.mosaic import Disagreement, MosaicResult
from dsen2cr.errors import DataError, OptionError
from tests.cli.conftest import Invoke, Record, Recorder, UsageError, one_error_line


# --------------------------------------------------------------------------- synth-data
@pytest.fixture
def synth(record: Record, tmp_path: Path) -> dict[str, Recorder]:
    return {
        "generate_dataset": record("dsen2cr.data.synthetic", "generate_dataset", tmp_path / "root"),
        "preview_grid": record("dsen2cr.data.synthetic", "preview_grid", tmp_path / "p.png"),
    }


def test_synth_data_defaults(invoke: Invoke, synth: dict[str, Recorder], tmp_path: Path) -> None:
    out = tmp_path / "ds"
    r = invoke(["synth-data", out])
    assert (r.status, r.out, r.err) == (0, f"wrote 256 triplets to {tmp_path / 'root'}\n", "")
    call = synth["generate_dataset"].call
    assert call.args == (out,)
    assert call.kwargs == {"rois": 8, "patches": 32, "size": 256, "seed": 0, "progress": False,
                           "compress": None, "overwrite": False}  # fmt: skip
    assert synth["preview_grid"].calls == []


def test_synth_data_every_flag(invoke: Invoke, synth: dict[str, Recorder], tmp_path: Path) -> None:
    out, png = tmp_path / "ds", tmp_path / "grid.png"
    r = invoke(["synth-data", out, "--rois", "2", "--patches", "3", "--size", "64", "--seed", "7",
                "--compress", "zstd", "--preview", png, "--overwrite"])  # fmt: skip
    assert r.status == 0
    assert r.out == f"wrote 6 triplets to {tmp_path / 'root'}\nwrote {png}\n"
    assert synth["generate_dataset"].call.kwargs == {
        "rois": 2, "patches": 3, "size": 64, "seed": 7, "progress": False, "compress": "zstd",
        "overwrite": True}  # fmt: skip
    preview = synth["preview_grid"].call
    assert (preview.args, preview.kwargs) == ((tmp_path / "root", png), {"overwrite": True})


@pytest.mark.parametrize(("argv", "line"), [
    (["synth-data"], "the following arguments are required: out"),
    (["synth-data", "ds", "--rois", "abc"], "argument --rois: invalid int value: 'abc'"),
    (["synth-data", "ds", "--seed"], "argument --seed: expected one argument"),
])  # fmt: skip
def test_synth_data_usage_errors(usage_error: UsageError, synth: dict[str, Recorder],
                                 argv: list[str], line: str) -> None:  # fmt: skip
    assert usage_error(argv) == f"dsen2cr synth-data: error: {line}"
    assert synth["generate_dataset"].calls == []


def test_synth_data_errors_are_one_line(invoke: Invoke, synth: dict[str, Recorder],
                                        tmp_path: Path) -> None:  # fmt: skip
    full = tmp_path / "full"
    full.mkdir()
    (full / "kept.txt").write_text("results\n")
    one_error_line(invoke(["synth-data", full]), "synth-data",
                   f"--out {full} is a folder that is not empty: add --overwrite to replace it")  # fmt: skip
    assert synth["generate_dataset"].calls == []  # checked before anything is written
    synth["generate_dataset"].error = OptionError("size", "must be a multiple of 8, got 30")
    one_error_line(invoke(["synth-data", tmp_path / "new", "--size", "30"]), "synth-data",
                   "--size must be a multiple of 8, got 30")  # fmt: skip


# --------------------------------------------------------------------------- index
SUMMARY = {"root": "d", "triplets": 4, "incomplete": 0}


@pytest.fixture
def index(record: Record) -> dict[str, Recorder]:
    return {
        "index_summary": record("dsen2cr.data", "index_summary", dict(SUMMARY)),
        "verify_dataset": record("dsen2cr.data.verify", "verify_dataset",
                                 {"files": 12, "bad": 0, "bad_list": None}),
    }  # fmt: skip


def test_index_defaults(invoke: Invoke, index: dict[str, Recorder]) -> None:
    r = invoke(["index", "data"])
    assert (r.status, r.err) == (0, "")
    assert r.out == '{\n  "root": "d",\n  "triplets": 4,\n  "incomplete": 0\n}\n'
    call = index["index_summary"].call
    assert call.args == (Path("data"),)
    assert call.kwargs == {"split_file": None, "refresh": False, "cache_dir": None}
    assert index["verify_dataset"].calls == []


def test_index_verify_every_flag(invoke: Invoke, index: dict[str, Recorder]) -> None:
    r = invoke(["index", "data", "--split-file", "s.csv", "--refresh", "--cache-dir", "cache",
                "--verify", "--workers", "3", "--bad-list", "bad.txt"])  # fmt: skip
    assert (r.status, r.err) == (0, "")
    assert index["index_summary"].call.kwargs == {"split_file": Path("s.csv"), "refresh": True,
                                                 "cache_dir": Path("cache")}  # fmt: skip
    call = index["verify_dataset"].call
    assert call.args == (Path("data"),)
    assert call.kwargs == {"workers": 3, "bad_list": Path("bad.txt"), "progress": False}
    assert '"verify": {\n    "files": 12,\n    "bad": 0,' in r.out


def test_index_verify_with_bad_files_exits_1(invoke: Invoke, index: dict[str, Recorder]) -> None:
    index["verify_dataset"].result = {"files": 12, "bad": 2, "bad_list": "bad.txt"}
    r = invoke(["index", "data", "--verify"])
    assert (r.status, r.err) == (1, "dsen2cr index: 2 bad file(s) of 12; list in bad.txt\n")


@pytest.mark.parametrize(("argv", "line"), [
    (["index"], "the following arguments are required: root"),
    (["index", "data", "--workers", "many"], "argument --workers: invalid int value: 'many'"),
])  # fmt: skip
def test_index_usage_errors(usage_error: UsageError, index: dict[str, Recorder], argv: list[str],
                            line: str) -> None:  # fmt: skip
    assert usage_error(argv) == f"dsen2cr index: error: {line}"
    assert index["index_summary"].calls == []


def test_index_errors_are_one_line_naming_flags(invoke: Invoke, index: dict[str, Recorder]) -> None:
    one_error_line(invoke(["index", "data", "--verify", "--workers", "0"]), "index",
                   "--workers must be at least 1, got 0")  # fmt: skip
    assert index["index_summary"].calls == []  # before the index cache is written
    index["index_summary"].error = DataError("{split_file} s.csv has no column 'split'",
                                             split_file=None)  # fmt: skip
    one_error_line(invoke(["index", "data", "--split-file", "s.csv"]), "index",
                   "--split-file s.csv has no column 'split'")  # fmt: skip


# --------------------------------------------------------------------------- mosaic
def _scene(*_: Any, on_scene: Callable[..., None], **__: Any) -> dict[str, Any]:
    """mosaic_split that reports one scene with a disagreement in S2."""
    results = {
        "s2_cloudy": MosaicResult(Path("a_c.tif"), 40, 30, 6, 0.5),
        "s2": MosaicResult(Path("a_s2.tif"), 40, 30, 6, 0.5, [Disagreement("p1", "p2", 7)]),
        "s1": MosaicResult(Path("a_s1.tif"), 40, 30, 6, 0.5),
    }
    on_scene("ROIs1158_spring_106", results)
    return {"ROIs1158_spring_106": results}


@pytest.fixture
def mosaic_split(record: Record) -> Recorder:
    return record("dsen2cr.data.mosaic", "mosaic_split", side_effect=_scene)


def test_mosaic_defaults(invoke: Invoke, mosaic_split: Recorder) -> None:
    r = invoke(["mosaic", "data", "out"])
    assert (r.status, r.err) == (0, "")
    assert r.out == ("ROIs1158_spring_106: 40 x 30 px from 6 patches, 50.0 % covered, "
                     "disagreeing pixels: s2 7\nwrote 3 mosaics of 1 scene(s) to out\n")  # fmt: skip
    call = mosaic_split.call
    assert call.args == (Path("data"), Path("out"))
    assert call.kwargs == {"split": "test", "season": None, "roi": None, "split_file": None,
                           "overwrite": False, "progress": False, "on_scene": report_mosaic}  # fmt: skip


def test_mosaic_every_flag(invoke: Invoke, mosaic_split: Recorder) -> None:
    r = invoke(["mosaic", "data", "out", "--split", "all", "--season", "fall", "--roi", "106",
                "--split-file", "s.csv", "--overwrite"])  # fmt: skip
    assert r.status == 0
    assert mosaic_split.call.kwargs == {
        "split": "all", "season": "fall", "roi": 106, "split_file": Path("s.csv"),
        "overwrite": True, "progress": False, "on_scene": report_mosaic}  # fmt: skip


@pytest.mark.parametrize(("argv", "line"), [
    (["mosaic", "data"], "the following arguments are required: out"),
    (["mosaic", "data", "out", "--split", "bogus"],
     "argument --split: invalid choice: 'bogus' (choose from 'train', 'val', 'test', 'all')"),
    (["mosaic", "data", "out", "--season", "monsoon"], "argument --season: invalid choice: "
     "'monsoon' (choose from 'spring', 'summer', 'fall', 'winter')"),
    (["mosaic", "data", "out", "--roi", "x"], "argument --roi: invalid int value: 'x'"),
])  # fmt: skip
def test_mosaic_usage_errors(usage_error: UsageError, mosaic_split: Recorder, argv: list[str],
                             line: str) -> None:  # fmt: skip
    assert usage_error(argv) == f"dsen2cr mosaic: error: {line}"
    assert mosaic_split.calls == []


@pytest.mark.parametrize(("error", "message"), [
    (OptionError("out", "out.tif is a file, expected a folder"),
     "output out.tif is a file, expected a folder"),  # out -> "output": the mapping add_mosaic registers
    (OptionError("roi", "no ROI 7 in the test split"), "--roi no ROI 7 in the test split"),
])  # fmt: skip
def test_mosaic_errors_are_one_line_naming_arguments(invoke: Invoke, mosaic_split: Recorder,
                                                     error: Exception, message: str) -> None:  # fmt: skip
    mosaic_split.error = error
    one_error_line(invoke(["mosaic", "data", "out.tif"]), "mosaic", message)
