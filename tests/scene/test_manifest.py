"""The batch manifest: whole lines from concurrent writers, summaries."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from dsen2cr.cli import main
from dsen2cr.errors import DataError
from dsen2cr.scene import Manifest, format_summary, summarize


def _writer(path: str, rank: int, lines: int) -> None:
    m = Manifest(path)
    for i in range(lines):  # long lines: well over a pipe buffer
        m.append({"scene": f"s{rank}_{i}", "status": "done", "rank": rank, "pad": "x" * 9000})


def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "m" / "manifest.jsonl"
    procs = [mp.get_context("spawn").Process(target=_writer, args=(str(path), r, 60))
             for r in range(4)]  # fmt: skip
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 240
    records = [json.loads(ln) for ln in lines]  # every line is one whole record
    assert {r["scene"] for r in records} == {f"s{r}_{i}" for r in range(4) for i in range(60)}


def test_summary_latest_status_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    m = Manifest(path)
    m.append({"event": "start", "rank": 0, "scenes": ["a", "b", "c"]})
    m.append({"event": "start", "rank": 1, "scenes": ["d", "e"]})
    m.append({"scene": "a", "status": "failed", "error": "cannot read"})
    m.append({"scene": "a", "status": "done"})  # a resubmitted job fixed it
    m.append({"scene": "b", "status": "skipped"})
    m.append({"scene": "d", "status": "failed", "error": "no S1 for this scene"})
    s = summarize(path)
    assert s.scenes("done") == ["a"] and s.scenes("skipped") == ["b"]
    assert s.scenes("failed") == ["d"] and s.missing == ["c", "e"]
    assert s.processes == 2 and not s.complete
    text = format_summary(s)
    assert text.splitlines()[0] == ("done 1, skipped 1, failed 1, missing 2 (of 5 scenes, 2 "
                                    "process start(s))")  # fmt: skip
    assert "failed  d: no S1 for this scene" in text and "missing e" in text
    with open(path, "a") as fh:  # a writer killed half-way through its line
        fh.write('{"scene": "c", "status": "do')
    assert summarize(path).missing == ["c", "e"]
    with pytest.raises(DataError, match="not found"):
        summarize(tmp_path / "none.jsonl")
    damaged = tmp_path / "damaged.jsonl"  # a complete line that is not JSON: counted, ignored
    damaged.write_text('{"scene": "a", "status": "done"}\n{not json\n')
    s = summarize(damaged)
    assert s.scenes("done") == ["a"] and s.damaged == 1
    assert "1 damaged line(s) ignored" in format_summary(s).splitlines()[0]
    with pytest.raises(DataError, match="is a folder"):
        Manifest(tmp_path)


def test_append_after_a_cut_line_starts_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    m = Manifest(path)
    m.append({"event": "start", "rank": 0, "scenes": ["a", "b", "c"]})
    m.append({"scene": "a", "status": "done"})
    m.append({"scene": "b", "status": "failed", "error": "cannot read"})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 12])  # the process was killed while writing line 3
    assert summarize(path).scenes("failed") == [] and summarize(path).damaged == 1
    relaunch = Manifest(path)
    relaunch.append({"event": "start", "rank": 0, "scenes": ["a", "b", "c"]})
    relaunch.append({"scene": "b", "status": "done"})
    relaunch.append({"scene": "c", "status": "skipped"})
    lines = path.read_bytes().split(b"\n")
    assert lines[2].startswith(b'{"scene": "b", "status": "failed"') and lines[3].startswith(
        b'{"event": "start"')  # the cut line ended, the relaunch's record on a line of its own
    s = summarize(path)
    assert s.scenes("done") == ["a", "b"] and s.scenes("skipped") == ["c"]
    assert s.missing == [] and s.complete and s.processes == 2 and s.damaged == 1
    assert format_summary(s).splitlines()[0] == (
        "done 2, skipped 1, failed 0, missing 0 (of 3 scenes, 2 process start(s), 1 damaged "
        "line(s) ignored)")  # fmt: skip
    only_cut = tmp_path / "only_cut.jsonl"  # killed during its very first line
    only_cut.write_bytes(b'{"event": "sta')
    assert summarize(only_cut).damaged == 1 and summarize(only_cut).complete


def _foreign_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "random bytes": bytes(range(256)) * 40,
        "random bytes without newline": bytes(b for b in range(256) if b != 10) * 4,
        "GeoTIFF header": b"II*\x00\x08\x00\x00\x00\x0e\x00\x00\x01\x03\x00\n\x00\xff\xfe\n",
        "JSON list": b'["a", "b"]\n',
        "JSON number lines": b"1\n2\n",
        "scenes not a list": b'{"event": "start", "scenes": 3}\n',
        "scenes not names": b'{"event": "start", "scenes": [["a"]]}\n',
        "status of a wrong type": b'{"scene": "a", "status": ["done"]}\n',
        "scene of a wrong type": b'{"scene": {"a": 1}, "status": "done"}\n',
        "other JSON lines": b'{"loss": 0.1}\n{"loss": 0.05}\n',
        "indented JSON": b'{\n  "models": {}\n}\n',
    }
    out = {}
    for i, (name, data) in enumerate(files.items()):
        out[name] = tmp_path / f"f{i}.jsonl"
        out[name].write_bytes(data)
    return out


def summary_status(argv: list[str]) -> int:
    """The exit status of ``dsen2cr predict --summary`` (it exits, as ``--version`` does)."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    return int(exit_.value.code or 0)


def test_foreign_files_are_one_line_data_errors(tmp_path: Path, capsys) -> None:
    for name, path in _foreign_files(tmp_path).items():
        with pytest.raises(DataError, match="is not a dsen2cr manifest") as err:
            summarize(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value), name
        assert summary_status(["predict", "--summary", str(path)]) == 2, name
        captured = capsys.readouterr()
        err_lines = captured.err.strip().splitlines()
        assert len(err_lines) == 1 and "is not a dsen2cr manifest (JSON lines)" in err_lines[0]
        assert "Traceback" not in captured.err and captured.out == "", name


def test_summary_of_a_folder_or_a_missing_file(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    with pytest.raises(DataError) as err:
        summarize(folder)
    assert str(err.value) == f"manifest {folder} is a folder, expected a manifest file"
    with pytest.raises(DataError) as err:
        summarize(tmp_path / "none.jsonl")
    assert str(err.value) == f"manifest file not found: {tmp_path / 'none.jsonl'}"
    assert summary_status(["predict", "--summary", str(folder)]) == 2
    assert capsys.readouterr().err.strip() == (f"dsen2cr predict: error: manifest {folder} is a "
                                               "folder, expected a manifest file")  # fmt: skip
    empty = tmp_path / "empty.jsonl"  # created, nothing appended yet
    empty.write_bytes(b"")
    assert summarize(empty).processes == 0 and summary_status(["predict", "--summary", str(empty)]) == 0
