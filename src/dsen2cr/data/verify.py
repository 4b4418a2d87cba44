"""``dsen2cr index ROOT --verify``: find corrupt or truncated files of a download in minutes.

SEN12MS-CR is 0.5 TB in 366,654 files, usually fetched over connections that break. The index
(:mod:`dsen2cr.data.index`) trusts file names, so a truncated file counts as a complete triplet
and training dies (or skips it, with ``on_error=skip``) hours later. :func:`verify_dataset` opens
every file of every indexed triplet, in a pool of threads (GDAL releases the GIL while it
decodes), and checks:

* the file is not empty and GDAL opens it;
* its band count and dtype (S2: 13 bands, uint16 or int16; S1: 2 bands, float32 or float64);
* its size: the three files of a triplet agree, and every triplet has the dataset's patch size
  (the most common one: 256 x 256 for SEN12MS-CR);
* an uncompressed file holds all of its data bytes (a cut download is shorter);
* its first and last blocks decode (:func:`dsen2cr.io.check_readable`; the last block sits at
  the end of the file).

The list of bad files (``path <TAB> problem``, one per line) is written beside the index cache
(``ROOT/.dsen2cr/bad_files.txt`` or ``~/.cache/dsen2cr/``), or where asked.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
from tqdm import tqdm

from dsen2cr.data.dataset import S1_DTYPES, S2_DTYPES, open_patch
from dsen2cr.data.index import build_index, cache_path
from dsen2cr.errors import DSen2CRError, OptionError
from dsen2cr.io import atomic_output, check_readable

MODALITY_CHECKS: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "s1": ("S1 image", 2, S1_DTYPES),
    "s2": ("S2 image", 13, S2_DTYPES),
    "s2_cloudy": ("S2 cloudy image", 13, S2_DTYPES),
}
"""Per modality: description, band count and accepted dtypes."""


@dataclass(frozen=True)
class FileCheck:
    """The result of checking one file.

    Attributes:
        path: the file.
        modality: ``"s1"``, ``"s2"`` or ``"s2_cloudy"``.
        size: (height, width) when it opened, else None.
        problem: what is wrong (None: nothing found).
    """

    path: str
    modality: str
    size: tuple[int, int] | None
    problem: str | None


class BadFile(TypedDict):
    """A bad file of :class:`VerifyReport`: the file and its problem."""

    path: str
    problem: str | None


class VerifyReport(TypedDict):
    """What :func:`verify_dataset` found (JSON-able; see there)."""

    root: str
    triplets: int
    files: int
    ok: int
    bad: int
    incomplete: int
    patch_size: list[int] | None
    problems: dict[str, int]
    bad_examples: list[BadFile]
    bad_list: str
    seconds: float
    files_per_s: float | None
    workers: int


def check_file(path: str, modality: str) -> FileCheck:
    """Open one SEN12MS-CR file and check it (see the module docs; sizes are compared later)."""
    what, bands, dtypes = MODALITY_CHECKS[modality]
    try:
        nbytes = os.path.getsize(path)
        if nbytes == 0:
            return FileCheck(path, modality, None, "empty file (0 bytes)")
        with open_patch(path, what, bands, dtypes) as src:
            size = (src.height, src.width)
            if src.compression is None:
                need = src.width * src.height * src.count * np.dtype(src.dtypes[0]).itemsize
                if nbytes < need:
                    return FileCheck(path, modality, size, f"truncated: {nbytes} bytes, its "
                                     f"uncompressed data alone needs {need}")  # fmt: skip
            check_readable(src, path, what)
    except DSen2CRError as exc:
        return FileCheck(path, modality, None, str(exc))
    except OSError as exc:
        return FileCheck(path, modality, None, f"cannot read {path}: {exc.strerror or exc}")
    return FileCheck(path, modality, size, None)


def check_workers(workers: int | None) -> int:
    """The number of checking threads (``workers``, or the CPU count, at most 8).

    Raises:
        OptionError: ``workers`` is not positive.
    """
    if workers is not None and workers < 1:
        raise OptionError("workers", f"must be at least 1, got {workers}")
    return workers or min(8, os.cpu_count() or 1)


def default_bad_list(root: Path) -> Path:
    """Where the list of bad files goes by default: beside the index cache of ``root``
    (``bad_files.txt`` next to ``index.json``)."""
    cache = cache_path(root, None)
    return cache.with_name(cache.stem.replace("index", "bad_files", 1) + ".txt")


def verify_dataset(
    root: str | os.PathLike[str],
    *,
    workers: int | None = None,
    bad_list: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> VerifyReport:
    """Check every file of a SEN12MS-CR root (see the module docs).

    Args:
        root: dataset root.
        workers: threads opening files at once (default: the CPU count, at most 8).
        bad_list: file for the list of bad files (default :func:`default_bad_list`); written in
            every run, empty when nothing is wrong.
        progress: show a progress bar (files/s) on a terminal.

    Returns:
        ``{"root", "triplets", "files", "ok", "bad", "incomplete", "patch_size",
        "problems": {kind: count}, "bad_examples" (up to 5), "bad_list", "seconds",
        "files_per_s", "workers"}``.

    Raises:
        DSen2CRError: the root is missing, or ``workers`` is not positive.
    """
    workers = check_workers(workers)
    index = build_index(root, refresh=True)  # names as they are now, not as cached
    jobs = [(getattr(t, m), m) for t in index.triplets for m in MODALITY_CHECKS]
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers, "dsen2cr-verify") as pool:
        results = list(tqdm(pool.map(lambda job: check_file(*job), jobs), total=len(jobs),
                            unit="file", desc="verify", disable=None if progress else True,
                            leave=False))  # fmt: skip
    seconds = time.perf_counter() - t0
    # sizes: the three files of a triplet agree, and triplets have the dataset's patch size
    sizes = Counter(r.size for r in results if r.size is not None)
    patch = sizes.most_common(1)[0][0] if sizes else None
    checked = []
    for k in range(0, len(results), 3):
        trip = results[k : k + 3]
        cloudy = trip[2].size
        for r in trip:
            if r.problem is None and r.size is not None:
                if cloudy is not None and r.size != cloudy:
                    r = FileCheck(r.path, r.modality, r.size, f"is {r.size[0]} x {r.size[1]} "
                                  f"pixels, its cloudy image {cloudy[0]} x {cloudy[1]}")  # fmt: skip
                elif patch is not None and r.size != patch:
                    r = FileCheck(r.path, r.modality, r.size, f"is {r.size[0]} x {r.size[1]} "
                                  f"pixels, the dataset's patches {patch[0]} x {patch[1]}")  # fmt: skip
            checked.append(r)
    bad = [r for r in checked if r.problem is not None]
    target = Path(bad_list) if bad_list is not None else default_bad_list(index.root)
    with atomic_output(target) as tmp:
        tmp.write_text("".join(f"{r.path}\t{r.problem}\n" for r in bad))
    kinds = Counter(_kind(r.problem or "") for r in bad)
    return {
        "root": str(index.root),
        "triplets": len(index.triplets),
        "files": len(checked),
        "ok": len(checked) - len(bad),
        "bad": len(bad),
        "incomplete": len(index.incomplete),
        "patch_size": list(patch) if patch is not None else None,
        "problems": dict(sorted(kinds.items())),
        "bad_examples": [{"path": r.path, "problem": r.problem} for r in bad[:5]],
        "bad_list": str(target),
        "seconds": round(seconds, 3),
        "files_per_s": round(len(checked) / seconds, 1) if seconds > 0 else None,
        "workers": workers,
    }


def _kind(problem: str) -> str:
    """A short class of a problem, for the counts."""
    for key, words in (("empty", ("empty file",)), ("truncated", ("truncated",)),
                       ("unreadable", ("not a readable raster", "cannot read")),
                       ("bands", ("band(s)",)), ("dtype", ("dtype",)), ("size", ("pixels",))):  # fmt: skip
        if any(w in problem for w in words):
            return key
    return "other"
