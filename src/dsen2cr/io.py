"""Small raster and file helpers shared by every command.

* :func:`atomic_output` - write to a temporary name beside the target, rename when complete, so an
  interrupted or failed run never leaves a half-written output file.
* :func:`open_raster` / :func:`read_raster` - open a GeoTIFF (or anything GDAL reads) with one
  clear :class:`~dsen2cr.errors.DataError` for a missing, corrupt or wrongly shaped file.
* :func:`check_readable` - decode the first and the last block of a raster, so that a truncated
  or corrupt file fails at once with a clear message rather than hours into a run.
* :func:`no_georef_warning` - silence rasterio's warning about rasters without georeferencing
  (some SEN12MS-CR copies have none; they are valid inputs).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError, RasterioIOError
from rasterio.windows import Window

from dsen2cr.errors import DataError


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    The temporary file keeps the target's suffix (GDAL picks drivers by suffix) and is removed if
    the block raises, including on ``KeyboardInterrupt``.

    Args:
        path: the final output path. Its parent folder is created if needed.

    Yields:
        The temporary path to write to.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.partial-{os.getpid()}{final.suffix}")
    try:
        yield tmp
        if tmp.exists():
            # Some writers (safetensors) create files readable by the owner only; give the
            # output the permissions an ordinary file gets under the user's umask.
            os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def no_georef_warning() -> Iterator[None]:
    """Inputs without georeferencing (e.g. some SEN12MS-CR copies) are fine: no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def open_raster(path: str | os.PathLike[str], what: str = "raster") -> Any:
    """Open a raster with rasterio, turning every failure into one clear :class:`DataError`.

    Args:
        path: file path (GeoTIFF, JP2, VRT, ... anything GDAL reads).
        what: a short description used in messages, e.g. ``"S2 image"``.

    Returns:
        An open ``rasterio.DatasetReader`` (use it as a context manager).
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{what} not found: {p}")
    if p.is_dir():
        raise DataError(f"{what} is a folder, expected a raster file: {p}")
    try:
        with no_georef_warning():
            return rasterio.open(p)
    except RasterioIOError as exc:
        raise DataError(f"cannot read {what} {p}: not a readable raster ({exc})") from None


def check_band_count(count: int, expected: int, path: str | os.PathLike[str], what: str) -> None:
    """Raise :class:`DataError` unless a raster has ``expected`` bands."""
    if count != expected:
        raise DataError(f"{what} {path} has {count} band(s), expected {expected}")


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
            raise DataError(f"cannot read {what} {path}: corrupt or truncated ({exc})") from None
        return data, dict(src.profile)


def check_readable(src: Any, path: str | os.PathLike[str], what: str) -> None:
    """Decode a corner of the first band and of the last band (the file's first and last blocks).

    GeoTIFFs store the first band's first block near the start and the last band's last block
    at the end of the file (band-interleaved or not), so a truncated download fails here.

    Args:
        src: an open rasterio dataset.
        path: its path, for the message.
        what: description used in the message, e.g. ``"S2 image"``.

    Raises:
        DataError: a block does not decode.
    """
    w, h = min(16, src.width), min(16, src.height)
    try:
        src.read(1, window=Window(0, 0, w, h))
        src.read(src.count, window=Window(src.width - w, src.height - h, w, h))
    except RasterioError as exc:
        raise DataError(f"cannot read {what} {path}: corrupt or truncated ({exc})") from None
