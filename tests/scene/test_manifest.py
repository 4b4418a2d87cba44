"""The batch manifest: whole lines from concurrent writers, summaries."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

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
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"scene": "a", "status": "done"}\n{not json\n')
    with pytest.raises(DataError, match="line 2 is not JSON"):
        summarize(bad)
    with pytest.raises(DataError, match="is a folder"):
        Manifest(tmp_path)
