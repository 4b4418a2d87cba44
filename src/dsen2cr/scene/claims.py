"""Claims: one process predicts a scene, however many launches of a batch run at once.

On a cluster, resubmitting a job while the first still runs is common; two launches of the same
batch on the same output folder would both predict every scene. Before predicting a scene a
process claims it: it creates ``.<output name>.claim`` beside the scene's output, exclusively
(``O_CREAT | O_EXCL``, atomic on local file systems and on NFS v3 and later), holding its host,
process id and start time. A process that finds the claim of another skips the scene as
``busy``; the claim is removed when the scene is finished or has failed, and on ``SIGTERM`` or
Ctrl-C (the command unwinds).

A claim that no process holds any more is *stale* and is taken over: on the same host, when its
process no longer exists (a ``SIGKILL``, a node that rebooted); from another host, when it was
not refreshed for :data:`STALE_SECONDS` (a running process refreshes its claims every
:data:`HEARTBEAT_SECONDS`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dsen2cr.io import process_alive

HEARTBEAT_SECONDS = 60.0
"""How often a process refreshes (touches) the claims it holds."""
STALE_SECONDS = 600.0
"""A claim of another host not refreshed for this long is stale (its process is gone)."""

__all__ = ["HEARTBEAT_SECONDS", "STALE_SECONDS", "Claims", "claim_path"]


def claim_path(out: Path) -> Path:
    """The claim file of a scene.

    Args:
        out: the scene's prediction file.

    Returns:
        The hidden claim file beside it.
    """
    return out.with_name(f".{out.name}.claim")


class Claims:
    """The scenes this process claims (use as a context manager: the claims it still holds are
    released and the heartbeat stops when the block ends)."""

    def __init__(self) -> None:
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._held: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="dsen2cr-claims", daemon=True)

    def __enter__(self) -> Claims:
        self._beat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for p in list(self._held):
            self.release(p)

    def owner(self, path: Path) -> dict[str, Any] | None:
        """Who holds a claim.

        Args:
            path: the claim file.

        Returns:
            Its record (``host``, ``pid``, ``time``), or None: no claim, or a stale one.
        """
        try:
            st = path.stat()
        except OSError:
            return None
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):  # being written this instant, or left empty by a crash
            return {"host": "?", "pid": 0} if time.time() - st.st_mtime < 30 else None
        if not isinstance(rec, dict):
            return None
        if rec.get("host") == self.host:
            return rec if process_alive(int(rec.get("pid", 0))) else None
        return rec if time.time() - st.st_mtime < STALE_SECONDS else None

    @contextlib.contextmanager
    def claim(self, out: Path) -> Iterator[dict[str, Any] | None]:
        """Claim a scene for the block.

        Args:
            out: the scene's prediction file.

        Yields:
            None when this process holds the claim (released when the block ends), else the
            record (``host``, ``pid``, ``time``) of the live process that does.
        """
        path = claim_path(out)
        holder = self._acquire(path)
        try:
            yield holder
        finally:
            if holder is None:
                self.release(path)

    def _acquire(self, path: Path) -> dict[str, Any] | None:
        for _ in range(3):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self.owner(path)
                if holder is not None:
                    return holder
                self._take_over(path)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump({"host": self.host, "pid": self.pid, "time": round(time.time(), 3)}, fh)
            with self._lock:
                self._held.add(path)
            return None
        return self.owner(path) or {"host": "?", "pid": 0}

    def _take_over(self, path: Path) -> None:
        """Remove a stale claim; of several processes doing so at once, one rename wins."""
        grave = path.with_name(f"{path.name}.stale@{self.host}@{self.pid}")
        with contextlib.suppress(OSError):
            os.rename(path, grave)
            grave.unlink()

    def release(self, path: Path) -> None:
        """Remove a claim this process holds.

        Args:
            path: the claim file.
        """
        with self._lock:
            self._held.discard(path)
        with contextlib.suppress(OSError):
            rec = json.loads(path.read_text())
            if rec.get("host") == self.host and rec.get("pid") == self.pid:
                path.unlink()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._lock:
                held = list(self._held)
            for p in held:
                with contextlib.suppress(OSError):
                    os.utime(p)
