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

:func:`summarize` reads a manifest back: the latest status of every scene, and the scenes that
a start line planned but no scene line reports.
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

from dsen2cr.errors import DataError

__all__ = ["STATUSES", "Manifest", "Summary", "format_summary", "summarize"]

STATUSES = ("done", "skipped", "failed")
"""The status of a scene line."""


class Manifest:
    """Appends JSON lines to a manifest file (see the module docs)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open (create) the manifest for appending; its folder is created if needed."""
        self.path = Path(path)
        if self.path.is_dir():
            raise DataError(f"manifest {self.path} is a folder, expected a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record as one line (adds ``"time"``, seconds since the epoch)."""
        line = json.dumps({**record, "time": round(time.time(), 3)}, allow_nan=False) + "\n"
        data = line.encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                written = os.write(fd, data)
                if written != len(data):  # a full disk: never leave half a line
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, os.fstat(fd).st_size - written)
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

    def scenes(self, status: str) -> list[str]:
        """Scenes whose latest status is ``status``, sorted."""
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
    """Read a manifest (see the module docs).

    A last line without its newline (left by a writer that was killed mid-write) is ignored.

    Raises:
        DataError: the file is missing or a complete line is not JSON.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"manifest {p} not found")
    with open(p, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)  # no writer is half-way through a line
        try:
            text = fh.read().decode()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    lines = text.split("\n")
    lines.pop()  # "" after the last newline, or a last line cut short (a writer killed mid-way)
    out = Summary()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise DataError(f"manifest {p} line {n} is not JSON") from None
        if not isinstance(rec, dict):
            raise DataError(f"manifest {p} line {n} is not a JSON object")
        if rec.get("event") == "start":
            out.processes += 1
            out.planned.update(str(s) for s in rec.get("scenes", []))
        elif "scene" in rec and rec.get("status") in STATUSES:
            out.latest[str(rec["scene"])] = rec
    return out


def format_summary(summary: Summary) -> str:
    """Lines for people: the counts, then every failed scene with its reason and every missing
    scene."""
    done, skipped, failed = (summary.scenes(s) for s in STATUSES)
    missing = summary.missing
    lines = [
        f"done {len(done)}, skipped {len(skipped)}, failed {len(failed)}, missing {len(missing)} "
        f"(of {len(summary.planned | set(summary.latest))} scenes, {summary.processes} process "
        "start(s))"
    ]
    for s in failed:
        lines.append(f"failed  {s}: {summary.latest[s].get('error')}")
    for s in missing:
        lines.append(f"missing {s}")
    return "\n".join(lines)
