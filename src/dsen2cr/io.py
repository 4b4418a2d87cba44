"""Small raster and file helpers shared by every command, and the rules every output follows.

Outputs (one mechanism for every command):

* :func:`guard_outputs` - before anything is read or written, refuse an output that is one of the
  call's inputs (also through a symbolic or hard link) or another of its outputs, an existing
  output file or non-empty output folder unless ``overwrite`` is asked for (as rasterio's ``rio``
  does), and an output folder that cannot be written;
* :func:`atomic_output` (a file) and :func:`atomic_folder` (a folder of files) - write to a hidden
  staging name beside the target, rename when complete, so an interrupted or failed run never
  leaves a half-written output; :func:`writing` turns a failed write (disk full, quota,
  file-size limit, read-only) into one :class:`~dsen2cr.errors.WriteError` naming the output;
* :func:`staging_path` names every such file ``.<stem>.<tag>@<host>@<pid><suffix>``, and
  :func:`remove_stale_staging` (run whenever an output is staged in a folder) removes those of
  processes of this host that no longer exist - what a killed run (SIGKILL) left behind - and
  never those of a live process.

Rasters:

* :func:`open_raster` / :func:`read_raster` - open a GeoTIFF (or anything GDAL reads) with one
  clear :class:`~dsen2cr.errors.DataError` for a missing, corrupt or wrongly shaped file.
* :func:`check_readable` - decode the first and the last block of a raster, so that a truncated
  or corrupt file fails at once with a clear message rather than hours into a run.
* :func:`bounded_gdal` - GDAL's block cache and decoding threads for runs over whole scenes.
* :func:`no_georef_warning` - silence rasterio's warning about rasters without georeferencing
  (some SEN12MS-CR copies have none; they are valid inputs).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.windows import Window
from safetensors import SafetensorError

from dsen2cr.errors import (
    DataError,
    DSen2CRError,
    InputNotFoundError,
    OptionError,
    OutputExistsError,
    WriteError,
)

PathLike = str | os.PathLike[str]
FileKey = tuple[str, tuple[int, int] | str]
"""What identifies a file (:func:`file_identity`): ``("inode", (device, inode))`` or
``("path", resolved path)``."""

GDAL_CACHEMAX_MB = 64
"""GDAL block cache (MiB) of a run over a whole scene when the environment does not set
GDAL_CACHEMAX. Scene runs decode each block once (row chunks) and encode each output block once,
so a larger cache buys nothing: on a 4096 x 4096 scene, 256 MiB gave the same speed (``dsen2cr
mask`` 1.01x, the ``io`` benchmark 0.97x) with 200 MB more peak memory."""


# --------------------------------------------------------------------------- staging files
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"


_STAGED = re.compile(r"^\..+\.[a-z]+@(?P<host>[A-Za-z0-9_]+)@(?P<pid>[0-9]+)(\..*)?$")


def staging_path(final: PathLike, tag: str = "partial") -> Path:
    """The hidden staging file of an output, beside it: ``.<stem>.<tag>@<host>@<pid><suffix>``.

    The suffix is kept (GDAL picks drivers by suffix); host and process id let a later run tell
    the leftovers of dead processes (:func:`remove_stale_staging`) from files being written.

    Args:
        final: the output.
        tag: what the staging file is (``partial``, ...).
    """
    f = Path(final)
    return f.with_name(f".{f.stem}.{tag}@{_host()}@{os.getpid()}{f.suffix}")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is running (also one of another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a live process of another user
        return True
    return True


def remove_stale_staging(folder: PathLike) -> list[Path]:
    """Remove the staging files that dead processes of this host left in ``folder``.

    Only files named by :func:`staging_path` are touched, and only those whose process is gone:
    the files of live processes (on this host or on another host sharing the folder) stay.

    Args:
        folder: the folder to clean (nothing happens if it cannot be listed).

    Returns:
        The files removed.
    """
    removed: list[Path] = []
    host = _host()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _STAGED.match(e.name)
        if m is None or m["host"] != host or process_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            if e.is_dir(follow_symlinks=False):  # a staging folder (atomic_folder)
                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)
            removed.append(Path(e.path))
    return removed


# --------------------------------------------------------------------------- output rules
def file_identity(p: str | os.PathLike[str]) -> FileKey:
    """What identifies a file.

    Args:
        p: a path.

    Returns:
        ``("inode", (device, inode))`` when it exists (hard links, symbolic links), else
        ``("path", resolved path)``.
    """
    p = Path(p)
    try:
        st = p.stat()
        return ("inode", (st.st_dev, st.st_ino))
    except OSError:
        return ("path", str(p.resolve()))


def _dangling_link(option: str, p: Path) -> None:
    """Refuse an output under (or at) a symbolic link that points nowhere: the operating
    system would only say "File exists" or "Not a directory"."""
    for q in (p, *p.parents):
        if q.is_symlink() and not q.exists():
            raise OptionError(option, f"{p}: {q} is a symbolic link to {os.readlink(q)}, which "
                              "does not exist")  # fmt: skip


def _writable_folder(option: str, p: Path) -> None:
    folder = p.parent
    while not folder.exists():
        if folder.parent == folder:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise OptionError(option, f"{p}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OptionError(option, f"{p}: cannot write into {folder} (permission denied)")


def guard_outputs(
    outputs: Mapping[str, PathLike | None],
    inputs: Iterable[PathLike | None] = (),
    *,
    overwrite: bool = False,
    folders: Iterable[str] = (),
) -> dict[str, Path]:
    """Check a call's outputs before anything is read or written (see the module docs).

    Args:
        outputs: option name -> output path (None: not written), e.g. ``{"out": ..., "mask_out":
            ...}``; the names appear in the errors (``--out`` on the command line).
        inputs: the call's input files and folders.
        overwrite: an existing output file, or a non-empty output folder, may be replaced.
        folders: the options whose output is a folder, not a file.

    Returns:
        option -> output ``Path`` for the outputs that are not None.

    Raises:
        OptionError: an output is an input or another output, a file where a folder is expected
            (or the reverse), or in a folder that cannot be written.
        OutputExistsError: an output exists and ``overwrite`` is False.
    """
    folder_opts = set(folders)
    given = {k: Path(v) for k, v in outputs.items() if v is not None}
    ins = [Path(q) for q in inputs if q is not None]
    in_keys = {file_identity(q): q for q in ins}
    seen: dict[FileKey, str] = {}
    for option, p in given.items():
        _dangling_link(option, p)
        key = file_identity(p)
        if key in in_keys:
            raise OptionError(option, f"{p} is the input {in_keys[key]}; choose another output path")
        if key in seen:
            raise OptionError(option, f"{p} is also the {seen[key]} output; give each output its own path")
        seen[key] = option
        if option in folder_opts:
            if p.exists() and not p.is_dir():
                raise OptionError(option, f"{p} is a file, expected a folder")
            if p.is_dir() and any(p.iterdir()) and not overwrite:
                raise OutputExistsError(option, p, "is a folder that is not empty")
            _writable_folder(option, p / "x")
        else:
            if p.is_dir():
                raise OptionError(option, f"{p} is a folder, expected a file name")
            if p.exists() and not overwrite:
                raise OutputExistsError(option, p)
            _writable_folder(option, p)
    return given


# --------------------------------------------------------------------------- files
def _stage(final: Path) -> tuple[list[Path], Path]:
    """Create the parent folders of ``final`` (returned, to remove again on failure), clear stale
    staging files left there by killed runs, and name this run's staging path."""
    created = new_folders(final.parent)
    with writing(final):
        final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(final.parent)
    return created, staging_path(final, "partial")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    The temporary file (:func:`staging_path`) keeps the target's suffix (GDAL picks drivers by
    suffix) and is removed if the block raises, including on ``KeyboardInterrupt``; the staging
    files that killed processes left in the folder are removed first.

    Args:
        path: the final output path. Its parent folders are created if needed (and removed
            again, if still empty, when the block fails).

    Yields:
        The temporary path to write to.
    """
    final = Path(path)
    created, tmp = _stage(final)
    done = False
    try:
        with writing(final, tmp):
            yield tmp
            if tmp.exists():
                # Some writers (safetensors) create files readable by the owner only; give the
                # output the permissions an ordinary file gets under the user's umask.
                os.chmod(tmp, 0o666 & ~_current_umask())
            os.replace(tmp, final)
        done = True
    finally:
        if tmp.exists():
            tmp.unlink()
        if not done:
            remove_empty(created)


WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
"""Operating-system errors that only a write raises."""
PATH_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                         errno.EIO, errno.ENOENT})  # fmt: skip
"""Operating-system errors that are a failed write when they name the output or its folder."""


@contextlib.contextmanager
def writing(final: PathLike, tmp: PathLike | None = None) -> Iterator[None]:
    """Turn a failed write inside the block into one :class:`~dsen2cr.errors.WriteError` that
    names the output ``final`` and the cause (disk full, quota, file-size limit, read-only file
    system, permissions), whichever library wrote: Python, GDAL (whose "Write failed" hides the
    cause: it is found from the file system's state) or safetensors. Other errors pass through.

    Args:
        final: the output, named in the error.
        tmp: the file actually written (its staging file), if other than ``final``.
    """
    try:
        yield
    except WriteError:
        raise
    except (OSError, RasterioError, SafetensorError) as exc:
        cause = write_failure(exc, Path(tmp if tmp is not None else final), Path(final))
        if cause is None:
            raise
        raise WriteError(final, cause[0], cause[1]) from None


def verify_written(path: Path, final: Path) -> None:
    """Decode the first and last blocks of a raster GDAL just wrote at ``path`` (the staging file
    of ``final``): GDAL reports some failed writes (a file-size limit, a flush at close) only on
    its own error stream, never to the caller.

    Args:
        path: the file written.
        final: the output it is staged for, named in the error.

    Raises:
        WriteError: the file is not whole, with the cause when the file system tells it.
    """
    try:
        with no_georef_warning(), rasterio.open(path) as src:
            check_readable(src, path, "output")
    except (DataError, RasterioError) as exc:
        reason = _state_of(path) or ("the file was not written completely", None)
        raise WriteError(final, reason[0], reason[1]) from exc


def write_failure(exc: BaseException, path: Path, final: Path | None = None) -> tuple[str, int | None] | None:
    """Whether an error is a failed write, and why.

    Args:
        exc: the error.
        path: the file written.
        final: the output it is staged for, or None.

    Returns:
        ``(reason, errno)`` when ``exc`` is a failed write of ``path`` (``errno`` None when
        unknown), else None.
    """
    if isinstance(exc, DSen2CRError):
        return None
    if isinstance(exc, OSError) and not isinstance(exc, RasterioError) and exc.errno is not None:
        ours = {str(p) for p in (path, final, path.parent) if p is not None}
        if exc.errno in WRITE_ERRNOS or (exc.errno in PATH_ERRNOS and str(exc.filename) in ours):
            return exc.strerror or os.strerror(exc.errno), exc.errno
        return None
    text = " ".join(str(e) for e in _chain(exc))
    m = re.search(r"os error (\d+)", text)  # safetensors (Rust) carries the OS error number
    if m is not None and int(m[1]) in WRITE_ERRNOS:
        return os.strerror(int(m[1])), int(m[1])
    if not re.search(r"write|writing|flush|No space|quota|too large|Read-only", text, re.I):
        return None
    return _state_of(path) or (f"the file could not be written ({_deepest(exc)})", None)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _deepest(exc: BaseException) -> str:
    return " ".join(str(_chain(exc)[-1]).split())


def _state_of(path: Path) -> tuple[str, int] | None:
    """Why writing ``path`` fails, from the file system's state: no free space, a read-only
    file system, or the process's file-size limit."""
    folder = path.parent if path.parent.exists() else Path(".")
    with contextlib.suppress(OSError):
        st = os.statvfs(folder)
        if st.f_flag & os.ST_RDONLY:
            return os.strerror(errno.EROFS), errno.EROFS
        if st.f_bavail * st.f_frsize < 2**20:
            return os.strerror(errno.ENOSPC), errno.ENOSPC
    with contextlib.suppress(OSError, ValueError, ImportError):
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and path.exists() and path.stat().st_size >= limit - 2**16:
            return f"{os.strerror(errno.EFBIG)} (the file-size limit is {limit} bytes)", errno.EFBIG
    return None


@contextlib.contextmanager
def atomic_folder(path: PathLike) -> Iterator[Path]:
    """Yield a hidden staging folder beside ``path``; when the block succeeds, its entries move
    into ``path`` (created if needed; an entry of the same name there is replaced, which the
    caller allowed with ``overwrite``). A failed or interrupted block leaves nothing: the staging
    folder is removed (and, after a SIGKILL, by the next run in the folder,
    :func:`remove_stale_staging`).

    Args:
        path: the output folder.

    Yields:
        The staging folder to write into.
    """
    final = Path(path)
    created, tmp = _stage(final)
    done = False
    try:
        with writing(final, tmp), _named_in(tmp, final):
            tmp.mkdir()
            yield tmp
            if not final.exists() or (final.is_dir() and not any(final.iterdir())):
                os.replace(tmp, final)  # a folder replaces an empty one in one rename
            else:
                for entry in sorted(tmp.iterdir()):
                    dest = final / entry.name
                    if dest.is_dir() and not dest.is_symlink():
                        shutil.rmtree(dest)
                    os.replace(entry, dest)
        done = True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            remove_empty(created)


@contextlib.contextmanager
def _named_in(tmp: Path, final: Path) -> Iterator[None]:
    """A failed write of a file in the staging folder names it where it was going to be."""
    try:
        yield
    except WriteError as exc:
        inside = Path(str(exc.path))
        if inside.is_relative_to(tmp):
            raise WriteError(final / inside.relative_to(tmp), exc.reason, exc.errno) from None
        raise


def new_folders(folder: PathLike) -> list[Path]:
    """The folders that creating ``folder`` (with its parents) would make.

    Args:
        folder: a folder that may not exist.

    Returns:
        The missing folders, deepest first.
    """
    out = []
    f = Path(folder)
    while not f.exists() and f.parent != f:
        out.append(f)
        f = f.parent
    return out


def remove_empty(folders: Iterable[Path]) -> None:
    """Remove folders as long as they are empty (no data is lost).

    Args:
        folders: deepest first (:func:`new_folders`); stops at the first that cannot be removed.
    """
    for f in folders:
        try:
            f.rmdir()
        except OSError:
            return


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def bounded_gdal(threads: int | None = None) -> Iterator[None]:
    """The GDAL settings of a run over a whole scene: no warning for rasters without
    georeferencing, GDAL's block cache at :data:`GDAL_CACHEMAX_MB` MiB (unless ``GDAL_CACHEMAX``
    is set) and, with ``threads``, that many decoding threads per read (``GDAL_NUM_THREADS``,
    unless set).

    GDAL's cache defaults to 5 % of RAM and would keep every block of a scene read or written
    once; scene prediction and mosaicking touch each block once anyway (row chunks, strips), so
    a fixed cap bounds host memory by the tiles or strips, not the scene. (rasterio takes
    ``GDAL_CACHEMAX`` in bytes: the value is given in bytes.)

    Args:
        threads: GDAL decoding threads per read, or None (GDAL's default).
    """
    opts: dict[str, int | str] = {}
    if "GDAL_CACHEMAX" not in os.environ:
        opts["GDAL_CACHEMAX"] = GDAL_CACHEMAX_MB * 2**20
    if threads is not None and "GDAL_NUM_THREADS" not in os.environ:
        opts["GDAL_NUM_THREADS"] = str(max(1, threads))
    with no_georef_warning(), rasterio.Env(**opts):
        yield


def cpu_count() -> int:
    """CPU cores this process may run on (its affinity: what a cluster job was given)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def no_georef_warning() -> Iterator[None]:
    """Inputs without georeferencing (e.g. some SEN12MS-CR copies) are fine: no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def open_raster(path: str | os.PathLike[str], what: str = "raster") -> DatasetReader:
    """Open a raster with rasterio, turning every failure into one clear :class:`DataError`.

    Args:
        path: file path (GeoTIFF, JP2, VRT, ... anything GDAL reads).
        what: a short description used in messages, e.g. ``"S2 image"``.

    Returns:
        An open dataset (use it as a context manager).

    Raises:
        InputNotFoundError: ``path`` does not exist.
        DataError: ``path`` is a folder, or GDAL cannot open it.
    """
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"{what} not found: {p}")
    if p.is_dir():
        raise DataError(f"{what} is a folder, expected a raster file: {p}")
    try:
        with no_georef_warning():
            return rasterio.open(p)
    except RasterioIOError as exc:
        raise DataError(f"cannot read {what} {p}: not a readable raster ({exc})") from None


def check_band_count(count: int, expected: int, path: str | os.PathLike[str], what: str) -> None:
    """Refuse a raster without the expected band count.

    Args:
        count: its bands.
        expected: the bands it must have.
        path: its path, for the message.
        what: description used in the message, e.g. ``"S2 image"``.

    Raises:
        DataError: ``count`` is not ``expected``.
    """
    if count != expected:
        raise DataError(f"{what} {path} has {count} band(s), expected {expected}")


def gdal_reason(exc: BaseException) -> str:
    """What GDAL said went wrong: rasterio raises "Read failed. See previous exception for
    details." and keeps GDAL's own message (e.g. ``TIFFReadEncodedStrip() failed``) as the
    cause; that message is the reason a user can act on."""
    text = str(exc)
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while "previous exception" in text and cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text = str(cause)
        cause = cause.__cause__ or cause.__context__
    return text


def read_raster(
    path: str | os.PathLike[str],
    expected_bands: int | None = None,
    what: str = "raster",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a whole raster into memory.

    Args:
        path: raster file.
        expected_bands: if given, the band count the file must have.
        what: description used in error messages.

    Returns:
        ``(array, profile)``: the (C, H, W) array in the file's dtype and rasterio's profile
        (crs, transform, width, height, dtype, nodata, ...).
    """
    with open_raster(path, what) as src:
        if expected_bands is not None:
            check_band_count(src.count, expected_bands, path, what)
        try:
            data = src.read()
        except RasterioError as exc:
            raise DataError(f"cannot read {what} {path}: corrupt or truncated ({gdal_reason(exc)})") from None
        return data, dict(src.profile)


MAX_BLOCK_BYTES = 2**30
"""Largest block (strip or tile, all bands) a raster may be stored in: GDAL decodes a block
whole, so a file of a few bytes that claims one strip of 200000 x 200000 pixels would ask for a
terabyte before anything is read."""


def check_blocks(src: DatasetReader, path: str | os.PathLike[str], what: str) -> None:
    """Refuse a raster whose blocks cannot be decoded one at a time within memory.

    Args:
        src: an open dataset.
        path: its path, for the message.
        what: description used in the message, e.g. ``"S2 image"``.

    Raises:
        DataError: a block (of all bands, for a pixel-interleaved file) larger than
            :data:`MAX_BLOCK_BYTES`.
    """
    rows, cols = src.block_shapes[0]
    itemsize = np.dtype(src.dtypes[0]).itemsize
    bands = src.count if str(src.interleaving).lower().endswith("pixel") else 1
    size = int(rows) * int(cols) * itemsize * bands
    if size > MAX_BLOCK_BYTES:
        raise DataError(
            f"{what} {path} ({src.width} x {src.height} pixels) is stored in blocks of {cols} x "
            f"{rows} pixels ({size / 2**30:.3g} GiB each), too large to decode one at a time; "
            "write it tiled (e.g. gdal_translate -co TILED=YES)"
        )


def check_readable(src: DatasetReader, path: str | os.PathLike[str], what: str) -> None:
    """Decode a corner of the first band and of the last band (the file's first and last blocks).

    GeoTIFFs store the first band's first block near the start and the last band's last block
    at the end of the file (band-interleaved or not), so a truncated download fails here.

    Args:
        src: an open dataset.
        path: its path, for the message.
        what: description used in the message, e.g. ``"S2 image"``.

    Raises:
        DataError: a block is too large (:func:`check_blocks`) or does not decode.
    """
    check_blocks(src, path, what)
    w, h = min(16, src.width), min(16, src.height)
    try:
        src.read(1, window=Window(0, 0, w, h))
        src.read(src.count, window=Window(src.width - w, src.height - h, w, h))
    except RasterioError as exc:
        raise DataError(f"cannot read {what} {path}: corrupt or truncated ({gdal_reason(exc)})") from None
