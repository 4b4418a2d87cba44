"""Splits: the default ROI split, CSV split files, the DSen2-CR file list (flattened layout)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from dsen2cr.data import SEN12MSCR, TEST_ROIS, VAL_ROIS, build_index, default_split, read_split_file
from dsen2cr.data.layout import FLAT_FOLDERS
from dsen2cr.data.splits import index_summary
from dsen2cr.errors import DataError, DSen2CRError
from tests.conftest import write_raster_file
from tests.data.fake_sen12mscr import default_arrays


def test_split_lists() -> None:
    assert TEST_ROIS == {"spring": (106, 123, 140, 31, 44), "summer": (119, 73),
                            "fall": (139,), "winter": (108, 63)}  # fmt: skip
    assert VAL_ROIS == {"winter": (22, 107, 130, 84), "summer": (19, 80, 127, 17),
                           "fall": (65,), "spring": (17,)}  # fmt: skip
    for season, rois in TEST_ROIS.items():
        assert all(default_split(season, r) == "test" for r in rois)
    for season, rois in VAL_ROIS.items():
        assert all(default_split(season, r) == "val" for r in rois)
    assert default_split("spring", 1) == "train"
    assert default_split("spring", 63) == "train"  # 63 is a test ROI in winter only
    assert default_split("fall", 17) == "train"
    assert default_split("", 17) is None
    with pytest.raises(DSen2CRError, match="unknown split"):
        SEN12MSCR(".", split="training")


def test_split_file_csv(small_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "split.csv"
    f.write_text("split,season,roi,patch\ntrain,spring,106,1\nval,ROIs1158_spring,1,p10\n"
                 "test,winter,1,2\n3,spring,10,1\ntest,spring,99,9\n")  # fmt: skip
    train = SEN12MSCR(small_root, "train", split_file=f)
    assert [(t.season, t.roi, t.patch) for t in train.triplets] == [("spring", 106, 1)]
    val = SEN12MSCR(small_root, "val", split_file=f)
    assert [(t.season, t.roi, t.patch) for t in val.triplets] == [("spring", 1, 10)]
    with caplog.at_level(logging.WARNING, logger="dsen2cr.data"):
        test = SEN12MSCR(small_root, "test", split_file=f)
    assert sorted((t.season, t.roi, t.patch) for t in test.triplets) == [
        ("spring", 10, 1), ("winter", 1, 2)
    ]
    assert test.report["missing"] == 1 and "are not under" in caplog.text
    bad = tmp_path / "bad.csv"
    bad.write_text("split,season,roi,patch\nholdout,spring,1,1\n")
    with pytest.raises(DataError, match="line 2: unknown split"):
        SEN12MSCR(small_root, "train", split_file=bad)
    odd = tmp_path / "odd.csv"
    odd.write_text("a;b\n")
    with pytest.raises(DataError, match="unknown format"):
        read_split_file(odd)


def test_split_file_per_patch_list(small_root: Path, tmp_path: Path) -> None:
    """One relative path per line (any modality, published or flat names) is one split."""
    f = tmp_path / "test.txt"
    f.write_text(
        "# patches of a published test list\n\n"
        "ROIs1158_spring/ROIs1158_spring_s2_cloudy/s2_cloudy_106/ROIs1158_spring_s2_cloudy_106_p10.tif\n"
        "ROIs2017_winter_s1/s1_1/ROIs2017_winter_s1_1_p2.tif\n"
        "s2_cloudFree\\ROIs1158_spring_1_p1.tif\n"
        "ROIs1158_spring_s2/s2_44/ROIs1158_spring_s2_44_p7.tif\n"  # not in the data
    )
    kind, rows = read_split_file(f)
    assert kind == "patches"
    assert rows == [("spring", 106, 10), ("winter", 1, 2), ("spring", 1, 1), ("spring", 44, 7)]
    for split in ("train", "test", "all"):  # the list selects its patches whatever the split
        ds = SEN12MSCR(small_root, split, split_file=f)
        assert sorted((t.season, t.roi, t.patch) for t in ds.triplets) == [
            ("spring", 1, 1), ("spring", 106, 10), ("winter", 1, 2)
        ]
        assert ds.report["missing"] == 1
    summary = index_summary(small_root, split_file=f)
    assert summary["splits"] == {"listed": {"spring": 2, "winter": 1}}
    from dsen2cr.data.datamodule import SEN12MSCRDataModule

    with pytest.raises(DataError, match="per-patch list, which is one split"):
        SEN12MSCRDataModule(small_root, split_file=f)  # training would validate on its train set
    bad = tmp_path / "bad.txt"
    bad.write_text("ROIs1158_spring_s2_cloudy_106_p10.tif\nnotes/readme.tif\n")
    with pytest.raises(DataError, match=r"line 2: 'notes/readme.tif' is not a SEN12MS-CR patch"):
        read_split_file(bad)


@pytest.mark.parametrize("delim", ["\t", ","])
def test_split_file_dsen2cr_flattened_layout(tmp_path: Path, delim: str) -> None:
    root = tmp_path / "flat"
    rng = np.random.default_rng(0)
    names = ["ROIs1158_spring_101_30.tif", "ROIs1158_spring_106_31.tif",
             "ROIs1868_summer_80_p2.tif", "ROIs2017_winter_5_7.tif"]  # fmt: skip
    for name in names:
        arr = default_arrays(rng)
        for m, folder in FLAT_FOLDERS.items():
            if not (name.startswith("ROIs2017") and m == "s2_cloudy"):
                write_raster_file(root / folder / name, arr[m], crs="EPSG:32632")
    listing = tmp_path / "datasetfilelist.csv"
    rows = [("1", names[0]), ("2", names[2]), ("3", names[1]), ("1", names[3])]
    listing.write_text("".join(delim.join([s, "s1", "s2_cloudFree", "s2_cloudy", n]) + "\n"
                               for s, n in rows))  # fmt: skip
    train = SEN12MSCR(root, "train", crop_size=None, split_file=listing)
    assert [Path(t.s2).name for t in train.triplets] == [names[0]]
    assert train.report["incomplete"] == 1  # the winter file lacks its cloudy image
    sample = train[0]
    assert (sample["season"], sample["roi"], sample["patch"]) == ("spring", 101, 30)
    assert Path(train.triplets[0].s2).parent.name == "s2_cloudFree"
    val = SEN12MSCR(root, "val", crop_size=None, split_file=listing)
    assert [(t.season, t.roi, t.patch) for t in val.triplets] == [("summer", 80, 2)]
    # the flattened layout also works without a split file (default ROI splits)
    index = build_index(root)
    assert index.layout == "flat" and len(index.triplets) == 3 and len(index.incomplete) == 1
    assert [t.roi for t in SEN12MSCR(root, "test").triplets] == [106]
    assert [t.roi for t in SEN12MSCR(root, "val").triplets] == [80]
