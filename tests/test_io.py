"""dsen2cr.io: atomic outputs and clear raster errors."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from dsen2cr.errors import DataError
from dsen2cr.io import atomic_output, read_raster


def test_atomic_output_renames_on_success_and_keeps_nothing_on_failure(tmp_path) -> None:
    out = tmp_path / "sub" / "result.tif"
    with atomic_output(out) as tmp:
        assert tmp.parent == out.parent and tmp.suffix == ".tif" and tmp != out
        tmp.write_bytes(b"data")
        assert not out.exists()
    assert out.read_bytes() == b"data" and list(out.parent.iterdir()) == [out]

    failed = tmp_path / "failed.bin"
    with pytest.raises(KeyboardInterrupt), atomic_output(failed) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert not failed.exists() and not any(p.name.startswith(".failed") for p in tmp_path.iterdir())


def test_atomic_output_gives_umask_permissions(tmp_path) -> None:
    out = tmp_path / "w.bin"
    with atomic_output(out) as tmp:
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)  # like safetensors' writer
        os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_read_raster_errors_name_the_file(tmp_path) -> None:
    path = tmp_path / "s2.tif"
    profile = dict(driver="GTiff", width=4, height=3, count=2, dtype="uint16",
                   crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10))  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.arange(24, dtype=np.uint16).reshape(2, 3, 4))
    data, prof = read_raster(path, expected_bands=2, what="S2 image")
    assert data.shape == (2, 3, 4) and prof["crs"].to_epsg() == 32633
    with pytest.raises(DataError, match=r"S2 image .*s2\.tif has 2 band\(s\), expected 13"):
        read_raster(path, expected_bands=13, what="S2 image")
    with pytest.raises(DataError, match="not found"):
        read_raster(tmp_path / "missing.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(DataError, match=r"bad\.tif"):
        read_raster(bad)
    with pytest.raises(DataError, match="folder"):
        read_raster(tmp_path)


def test_a_truncated_raster_is_reported_with_gdals_own_reason(tmp_path, write_raster) -> None:
    """rasterio says "Read failed. See previous exception for details."; the message carries
    GDAL's reason instead (the previous exception), not the placeholder."""
    path = tmp_path / "cut.tif"
    write_raster(path, np.arange(13 * 64 * 64, dtype=np.uint16).reshape(13, 64, 64))
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(DataError) as info:
        read_raster(path, what="S2 image")
    text = str(info.value)
    assert text.startswith(f"cannot read S2 image {path}: corrupt or truncated (")
    assert "previous exception" not in text and "failed" in text, text
