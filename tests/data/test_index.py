"""Indexing a SEN12MS-CR root: layouts, exact ROI matching, incomplete triplets, the cache,
``dsen2cr index``."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from dsen2cr.cli import main
from dsen2cr.data import SEN12MSCR, build_index
from dsen2cr.data.layout import PUBLISHED_NAME, SEASONS
from tests.data.fake_sen12mscr import paths, write_triplet


def test_layout_parsing_and_exact_roi_matching(small_root: Path) -> None:
    index = build_index(small_root, refresh=True)
    keys = [(t.season, t.roi, t.patch) for t in index.triplets]
    assert sorted(keys) == sorted(
        [("spring", r, p) for r in (1, 10, 106) for p in (1, 10)]
        + [("spring", 17, 3), ("winter", 63, 5), ("winter", 1, 2)]
    )
    for t in index.triplets:  # every file of a triplet carries exactly its own ROI and patch
        full = SEASONS[t.season]
        assert Path(t.s1).name == f"{full}_s1_{t.roi}_p{t.patch}.tif"
        assert Path(t.s2).name == f"{full}_s2_{t.roi}_p{t.patch}.tif"
        assert Path(t.s2_cloudy).name == f"{full}_s2_cloudy_{t.roi}_p{t.patch}.tif"
        assert all(Path(p).exists() for p in (t.s1, t.s2, t.s2_cloudy))
    assert index.incomplete == []
    test = SEN12MSCR(small_root, "test", crop_size=None)
    assert sorted((t.season, t.roi) for t in test.triplets) == [
        ("spring", 106), ("spring", 106), ("winter", 63)
    ]
    val = SEN12MSCR(small_root, "val", crop_size=None)
    assert [(t.season, t.roi, t.patch) for t in val.triplets] == [("spring", 17, 3)]
    train = SEN12MSCR(small_root, "train", crop_size=None)
    assert sorted({(t.season, t.roi) for t in train.triplets}) == [
        ("spring", 1), ("spring", 10), ("winter", 1)
    ]
    assert len(SEN12MSCR(small_root, "all")) == 9
    assert PUBLISHED_NAME.match("ROIs1158_spring_s2_cloudy_106_p1.tif")
    assert not PUBLISHED_NAME.match("ROIs1158_spring_s2_cloudy_106_p1.tif.aux.xml")
    assert not PUBLISHED_NAME.match("ROIs1158_spring_s3_106_p1.tif")


def test_incomplete_triplets_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "d"
    write_triplet(root, "summer", 5, 1)
    write_triplet(root, "summer", 5, 2, skip=("s2",))
    write_triplet(root, "summer", 5, 3, skip=("s1", "s2_cloudy"))
    with caplog.at_level(logging.WARNING, logger="dsen2cr.data"):
        dset = SEN12MSCR(root, "all", crop_size=None)
    assert len(dset) == 1
    assert dset.report["incomplete"] == 2
    assert dset.report["incomplete_example"] == {"season": "summer", "roi": 5, "patch": 2,
                                                 "missing": ["s2"]}  # fmt: skip
    assert "2 incomplete triplet(s)" in caplog.text and "patch 2" in caplog.text


def _age_folders(root: Path) -> None:
    """Set every folder's mtime 10 s back and re-cache the index, so that the next change gives
    its folder a different mtime even on file systems with coarse timestamps."""
    old = os.stat(root).st_mtime_ns - 10**10
    for d in [root, *(p for p in root.rglob("*") if p.is_dir() and p.name != ".dsen2cr")]:
        os.utime(d, ns=(old, old))
    build_index(root)
    assert build_index(root).from_cache


def test_index_cache_reused_and_invalidated(
    small_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_index(small_root)
    assert not first.from_cache
    assert first.cache_path == small_root / ".dsen2cr" / "index.json"
    assert json.loads(first.cache_path.read_text())["root"] == str(small_root.resolve())

    def no_walk(*args: object, **kwargs: object) -> None:
        raise AssertionError("os.scandir called although the cache is valid")

    with monkeypatch.context() as m:
        m.setattr(os, "scandir", no_walk)
        again = SEN12MSCR(small_root, "all")
    assert len(again) == len(first.triplets)
    assert build_index(small_root).from_cache
    # a new triplet changes folder mtimes: the cache is rebuilt and sees it
    _age_folders(small_root)
    write_triplet(small_root, "fall", 139, 7)
    rebuilt = build_index(small_root)
    assert not rebuilt.from_cache
    assert ("fall", 139, 7) in {(t.season, t.roi, t.patch) for t in rebuilt.triplets}
    # deleting a file (mtime of its folder changes) invalidates too
    _age_folders(small_root)
    os.remove(paths(small_root, "fall", 139, 7)["s2"])
    after = build_index(small_root)
    assert not after.from_cache and len(after.incomplete) == 1
    assert build_index(small_root, refresh=True).from_cache is False
    # explicit cache folder
    cache_dir = small_root.parent / "cache"
    idx = build_index(small_root, cache_dir=cache_dir)
    assert idx.cache_path is not None and idx.cache_path.parent == cache_dir


def test_cli_index(small_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.remove(paths(small_root, "spring", 10, 10)["s1"])
    assert main(["index", str(small_root)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["triplets"] == 8 and out["incomplete"] == 1
    assert out["splits"] == {"train": {"spring": 3, "winter": 1}, "test": {"spring": 2, "winter": 1},
                             "val": {"spring": 1}}  # fmt: skip
    assert out["incomplete_examples"][0]["missing"] == ["s1"]
    assert main(["index", str(small_root / "nope")]) == 2
