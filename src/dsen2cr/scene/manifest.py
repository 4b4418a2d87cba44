"""The manifest of a batch: one JSON line per scene and process, safe for concurrent writers.

Every process of a batch appends to the same JSON Lines file (default ``manifest.jsonl`` in
the output folder):

* at its start, one ``{"event": "start", "rank", "shard", "host", "pid", "scenes": [...], ...}``
  line naming the scenes of its share (so that a summary knows what is still missing);
* after each scene, ``{"scene", "status", "seconds", "megapixels", "out", "error", "rank",
  "host", ...}`` with ``status`` ``done``, ``skipped`` (a complete output made with the same
  weights and options already existed) or ``failed`` (``error`` holds the one-line reason).

A line is written with a single ``write`` on a descriptor opened with ``O_APPEND``, under an
exclusive ``flock``: the kernel appends it whole at the end of the file, so lines of processes
writing at the same time never interleave (``flock`` also covers network file systems whose
appends are not atomic).

A writer killed half-way through its line (SIGKILL, a node lost) leaves a last line without its
newline. The next :meth:`Manifest.append` (a relaunch) first ends that cut line, so its own
record starts a line of its own; the cut line stays in the file as a *damaged* line.

:func:`summarize` reads a manifest back: the latest status of every scene, and the scenes that
a start line planned but no scene line reports. Its rules for lines that are not whole records:

* a line that is not JSON (a cut line, also a last one still without its newline) is ignored
  and counted in :attr:`Summary.damaged`;
* a line that is JSON but not a manifest record's shape (not an object, ``"scenes"`` not a list
  of names, ``"scene"`` or ``"status"`` not a string) makes the whole file refused: it is some
  other file, not a damaged manifest;
* a file with content but no record at all (a GeoTIFF, any binary or other text) is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsen2cr.errors import DataError, InputNotFoundError

__all__ = ["STATUSES", "Manifest", "Summary", "format_summary", "summarize"]

STATUSES = ("done", "skipped", "failed")
"""The status of a scene line."""


class Manifest:
    """Appends JSON lines to a manifest file (see the module docs)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open (create) the manifest for appending; its folder is created if needed."""
        self.path = Path(path)
        if self.path.is_dir():
            raise DataError(f"manifest {self.path} is a folder, expected a manifest file")
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record as one line (adds ``"time"``, seconds since the epoch).

        If the file ends with a line cut short (a writer killed mid-write), that line is first
        ended with a newline, in the same write, so the record starts a line of its own.

        Args:
            record: a JSON-able record (a start record or a scene's).
        """
        line = json.dumps({**record, "time": round(time.time(), 3)}, allow_nan=False) + "\n"
        data = line.encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":  # a line cut short
                    data = b"\n" + data
                written = os.write(fd, data)
                if written != len(data):  # a full disk: never leave half a line
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)
                    raise OSError(f"could not append a whole line to {self.path}")
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@dataclass
class Summary:
    """What a manifest says about a batch."""

    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    """scene -> its latest scene line."""
    planned: set[str] = field(default_factory=set)
    """Scenes named by some start line."""
    processes: int = 0
    """Start lines read."""
    damaged: int = 0
    """Lines that are not JSON, ignored: lines cut short by a writer killed mid-write."""

    def scenes(self, status: str) -> list[str]:
        """Scenes whose latest status is ``status``, sorted.

        Args:
            status: ``done``, ``skipped``, ``busy`` or ``failed``.
        """
        return sorted(s for s, r in self.latest.items() if r.get("status") == status)

    @property
    def missing(self) -> list[str]:
        """Planned scenes without any scene line (not reached, or their process died)."""
        return sorted(self.planned - set(self.latest))

    @property
    def complete(self) -> bool:
        """Every planned scene is done or skipped."""
        return not self.missing and not self.scenes("failed")


def summarize(path: str | os.PathLike[str]) -> Summary:
    """Read a manifest (see the module docs for damaged and foreign lines).

    Args:
        path: the manifest file.

    Returns:
        What the manifest says; lines that are not JSON are counted in ``damaged``.

    Raises:
        DataError: the file is missing or a folder, or it is not a dsen2cr manifest (a line that
            is JSON of another shape, or no manifest record at all).
    """
    p = Path(path)
    if p.is_dir():
        raise DataError(f"manifest {p} is a folder, expected a manifest file")
    if not p.is_file():
        raise InputNotFoundError(f"manifest file not found: {p}")
    with open(p, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)  # no writer is half-way through a line
        try:
            raw = fh.read()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    lines = raw.split(b"\n")
    tail = lines.pop().strip()  # b"" after the last newline, or a line cut short by a writer
    out, records = Summary(), 0
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode())
        except ValueError:  # not UTF-8 (UnicodeDecodeError is a ValueError) or not JSON
            out.damaged += 1
            continue
        records += _read_record(rec, out, p, n)
    if tail:
        out.damaged += 1
    if not records and (any(ln.strip() for ln in lines) or (tail and not tail.startswith(b"{"))):
        raise DataError(f"{p} is not a dsen2cr manifest (JSON lines): no line of it is a "
                        "manifest record")  # fmt: skip
    return out


def _read_record(rec: object, out: Summary, p: Path, n: int) -> int:
    """Add line ``n`` (parsed JSON) to ``out``; 1 if it is a manifest record, else 0."""

    def refuse(problem: str) -> DataError:
        return DataError(f"{p} is not a dsen2cr manifest (JSON lines): line {n} {problem}")

    if not isinstance(rec, dict):
        raise refuse(f"is a JSON {type(rec).__name__}, not an object")
    if rec.get("event") == "start":
        scenes = rec.get("scenes", [])
        if not isinstance(scenes, list) or not all(isinstance(s, str) for s in scenes):
            raise refuse("is a start record whose scenes are not a list of names")
        out.processes += 1
        out.planned.update(scenes)
        return 1
    if "scene" not in rec:
        return 0
    if not isinstance(rec["scene"], str) or not isinstance(rec.get("status"), str):
        raise refuse("is a scene record whose scene or status is not a string")
    if rec["status"] in STATUSES:
        out.latest[rec["scene"]] = rec
    return 1


def format_summary(summary: Summary) -> str:
    """A manifest's summary for people.

    Args:
        summary: what :func:`summarize` read.

    Returns:
        Lines: the counts (and damaged lines, if any), then every failed scene with its reason
        and every missing scene.
    """
    done, skipped, failed = (summary.scenes(s) for s in STATUSES)
    missing = summary.missing
    damaged = f", {summary.damaged} damaged line(s) ignored" if summary.damaged else ""
    lines = [
        f"done {len(done)}, skipped {len(skipped)}, failed {len(failed)}, missing {len(missing)} "
        f"(of {len(summary.planned | set(summary.latest))} scenes, {summary.processes} process "
        f"start(s){damaged})"
    ]
    for s in failed:
        lines.append(f"failed  {s}: {summary.latest[s].get('error')}")
    for s in missing:
        lines.append(f"missing {s}")
    return "\n".join(lines)
