"""S1 for each S2 scene: pairs files and footprints, never sorted order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dsen2cr.cli import main
from dsen2cr.errors import DataError
from dsen2cr.scene import pair_by_footprint, read_pairs
from tests.conftest import ORIGIN, write_raster_file
from tests.helpers import tiny_model


def test_footprints_decide_not_names(tmp_path: Path) -> None:
    s2 = np.ones((13, 20, 30), np.uint16)
    s1 = np.zeros((2, 20, 30), np.float32)
    scenes, sars = [], []
    for i in range(3):
        x = ORIGIN[0] + 10_000.0 * i
        scenes.append(write_raster_file(tmp_path / f"a_{i}.tif", s2, origin=(x, ORIGIN[1])))
        if i < 2:  # names sort the other way round; the S1 of scene 0 is shifted by 5 px
            sars.append(write_raster_file(tmp_path / f"z_{9 - i}.tif", s1,
                                          origin=(x + 50.0 * (i == 0), ORIGIN[1])))  # fmt: skip
    pairs = pair_by_footprint(scenes, sorted(sars))
    assert [p.s1.name if p.s1 else None for p in pairs] == ["z_9.tif", "z_8.tif", None]
    assert pairs[0].overlap == pytest.approx(25 / 30) and pairs[1].overlap == pytest.approx(1.0)
    assert pairs[2].note == "no S1 image overlaps its footprint"
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a tiff")
    pairs = pair_by_footprint([*scenes, broken], [*sars, tmp_path / "gone.tif"])
    assert pairs[3].error.startswith("cannot read S2 image") or "broken.tif" in pairs[3].error
    assert "1 S1 file(s) unreadable" in pairs[2].note and pairs[0].s1 is not None
    plain = write_raster_file(tmp_path / "plain.tif", s2, crs=None)
    assert "no georeferencing" in pair_by_footprint([plain], sars)[0].note


def test_other_crs_footprints(tmp_path: Path) -> None:
    s2 = write_raster_file(tmp_path / "s2.tif", np.ones((13, 20, 20), np.uint16))
    # around the same place in WGS 84 (the S2 corner 500000 E, 5600000 N of UTM 33N is at
    # 15.0 E, 50.552 N; the scene is 200 m across)
    s1 = write_raster_file(tmp_path / "s1.tif", np.zeros((2, 10, 10), np.float32),
                           crs="EPSG:4326", transform=None, resolution=0.01,
                           origin=(14.95, 50.6))  # fmt: skip
    (pair,) = pair_by_footprint([s2], [s1])
    assert pair.s1 == s1 and pair.overlap == pytest.approx(1.0)


def test_read_pairs(tmp_path: Path) -> None:
    f = tmp_path / "lists" / "pairs.csv"
    f.parent.mkdir()
    f.write_text("S2, s1 ,out\n../a.tif,../b.tif,\n\nc.tif,,o/c_clean.tif\n")
    pairs = read_pairs(f)
    assert [(p.s2.name, p.s1.name if p.s1 else None, p.out) for p in pairs] == [
        ("a.tif", "b.tif", None), ("c.tif", None, f.parent / "o/c_clean.tif")
    ]
    assert pairs[0].s2 == f.parent / "../a.tif"  # relative to the CSV's folder
    for text, msg in (("a,b\n1,2\n", "expected a header with columns s2,s1"),
                      ("s2,s1\n", "lists no scene"), ("s2,s1\n,x.tif\n", "line 2: empty s2"),
                      ("s2,s1\na.tif,b.tif\na.tif,c.tif\n", "line 3: a.tif is also on line 2")):  # fmt: skip
        f.write_text(text)
        with pytest.raises(DataError, match=msg):
            read_pairs(f)
    with pytest.raises(DataError, match="not found"):
        read_pairs(tmp_path / "nope.csv")


def test_read_pairs_with_a_byte_order_mark(tmp_path: Path) -> None:
    f = tmp_path / "pairs.csv"  # what a spreadsheet program saves as "CSV UTF-8"
    f.write_bytes("s2,s1,out\r\na.tif,b.tif,\r\nc.tif,,é/c.tif\r\n".encode("utf-8-sig"))
    pairs = read_pairs(f)
    assert [(p.s2.name, p.s1.name if p.s1 else None) for p in pairs] == [("a.tif", "b.tif"),
                                                                         ("c.tif", None)]  # fmt: skip
    assert pairs[1].out == tmp_path / "é" / "c.tif"


def test_read_pairs_refuses_files_that_are_not_csv_text(tmp_path: Path) -> None:
    tif = write_raster_file(tmp_path / "s2.tif", np.ones((13, 20, 30), np.uint16))
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("s2,s1\na.tif,b.tif\n".encode("utf-16"))
    late = tmp_path / "late.csv"  # text first, binary after the part checked up front
    rows = "".join(f"a{i}.tif,b{i}.tif\n" for i in range(8000)).encode()
    late.write_bytes(b"s2,s1\n" + rows + b"\xff\xfe\x00\x01")
    cases = {tif: "is not a text file", utf16: "is not a text file", late: "is not a text file",
             tmp_path: "is a folder, expected a CSV file"}  # fmt: skip
    long = tmp_path / "long.csv"
    long.write_text("s2,s1\na.tif,b.tif,c.tif\n")
    cases[long] = "line 2: more cells than the header's 2 columns"
    for path, msg in cases.items():
        with pytest.raises(DataError, match=msg) as err:
            read_pairs(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    long.write_text("s2,s1\na.tif,b.tif,,\n")  # empty cells past the header: harmless
    assert [p.s2.name for p in read_pairs(long)] == ["a.tif"]


def test_cli_pairs_file_not_text_is_one_line(tmp_path: Path, capsys) -> None:
    weights = tiny_model().save_pretrained(tmp_path / "w.safetensors")
    tif = write_raster_file(tmp_path / "pairs.tif", np.ones((13, 20, 30), np.uint16))
    argv = ["predict", "--pairs", str(tif), "--weights", str(weights), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"dsen2cr predict: error: pairs file {tif} is not a text file (expected a UTF-8 CSV with "
        "the columns s2,s1[,out])"]  # fmt: skip
