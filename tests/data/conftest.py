"""Fixtures of the data tests: small fake SEN12MS-CR roots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.data.fake_sen12mscr import SIZE, write_triplet


@pytest.fixture()
def small_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for roi in (1, 10, 106):
        for patch in (1, 10):
            write_triplet(root, "spring", roi, patch)
    write_triplet(root, "spring", 17, 3)  # val
    write_triplet(root, "winter", 63, 5)  # test
    write_triplet(root, "winter", 1, 2)  # train (ROI 1 also exists in spring)
    return root


@pytest.fixture()
def bad_root(tmp_path: Path) -> Path:
    root = tmp_path / "bad"
    rng = np.random.default_rng(1)
    write_triplet(root, "spring", 1, 1)  # good
    p = write_triplet(root, "spring", 1, 2)  # truncated cloudy S2
    raw = p["s2_cloudy"].read_bytes()
    p["s2_cloudy"].write_bytes(raw[: len(raw) // 2])
    write_triplet(root, "spring", 1, 3, s1=rng.normal(size=(3, SIZE, SIZE)).astype(np.float32))
    write_triplet(root, "spring", 1, 4, s2=np.zeros((13, SIZE // 2, SIZE // 2), np.uint16))
    write_triplet(root, "spring", 1, 5, s2_cloudy=np.zeros((13, SIZE, SIZE), np.uint8))
    p = write_triplet(root, "spring", 1, 6)
    p["s1"].write_bytes(b"not a tiff at all")
    return root
