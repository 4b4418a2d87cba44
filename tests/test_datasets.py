"""SEN12MS-CR data pipeline: indexing, splits, preprocessing, augmentation, errors, loaders."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from dsen2cr import datasets as ds
from dsen2cr.errors import DataError, DSen2CRError
from dsen2cr.scaling import s1_to_scaled, s2_to_scaled, scaled_to_s1, scaled_to_s2

SIZE = 32


def write_tif(path: Path, data: np.ndarray, crs: str | None = "EPSG:32632",
              x0: float = 500000.0, y0: float = 5000000.0) -> Path:  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1],
               "count": data.shape[0], "dtype": data.dtype.name}  # fmt: skip
    if crs:
        profile.update(crs=crs, transform=from_origin(x0, y0, 10.0, 10.0))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def paths(root: Path, season: str, roi: int, patch: int) -> dict[str, Path]:
    full = ds.SEASONS[season]
    return {
        m: root / full / f"{full}_{m}" / f"{m}_{roi}" / f"{full}_{m}_{roi}_p{patch}.tif"
        for m in ds.MODALITIES
    }


def default_arrays(rng: np.random.Generator, size: int = SIZE) -> dict[str, np.ndarray]:
    return {
        "s1": rng.uniform(-25, -5, (2, size, size)).astype(np.float32),
        "s2": rng.integers(200, 4000, (13, size, size)).astype(np.uint16),
        "s2_cloudy": rng.integers(200, 4000, (13, size, size)).astype(np.uint16),
    }


def write_triplet(root: Path, season: str, roi: int, patch: int, seed: int = 0,
                  skip: tuple[str, ...] = (), **arrays: np.ndarray) -> dict[str, Path]:  # fmt: skip
    rng = np.random.default_rng([roi, patch, seed])
    data = default_arrays(rng)
    data.update(arrays)
    p = paths(root, season, roi, patch)
    for m in ds.MODALITIES:
        if m not in skip:
            write_tif(p[m], data[m], x0=500000.0 + 1280 * patch)
    return p


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


# --------------------------------------------------------------------------- index & splits
def test_layout_parsing_and_exact_roi_matching(small_root: Path) -> None:
    index = ds.build_index(small_root, refresh=True)
    keys = [(t.season, t.roi, t.patch) for t in index.triplets]
    assert sorted(keys) == sorted(
        [("spring", r, p) for r in (1, 10, 106) for p in (1, 10)]
        + [("spring", 17, 3), ("winter", 63, 5), ("winter", 1, 2)]
    )
    for t in index.triplets:  # every file of a triplet carries exactly its own ROI and patch
        full = ds.SEASONS[t.season]
        assert Path(t.s1).name == f"{full}_s1_{t.roi}_p{t.patch}.tif"
        assert Path(t.s2).name == f"{full}_s2_{t.roi}_p{t.patch}.tif"
        assert Path(t.s2_cloudy).name == f"{full}_s2_cloudy_{t.roi}_p{t.patch}.tif"
        assert all(Path(p).exists() for p in (t.s1, t.s2, t.s2_cloudy))
    assert index.incomplete == []
    test = ds.SEN12MSCR(small_root, "test", crop_size=None)
    assert sorted((t.season, t.roi) for t in test.triplets) == [
        ("spring", 106), ("spring", 106), ("winter", 63)
    ]
    val = ds.SEN12MSCR(small_root, "val", crop_size=None)
    assert [(t.season, t.roi, t.patch) for t in val.triplets] == [("spring", 17, 3)]
    train = ds.SEN12MSCR(small_root, "train", crop_size=None)
    assert sorted({(t.season, t.roi) for t in train.triplets}) == [
        ("spring", 1), ("spring", 10), ("winter", 1)
    ]
    assert len(ds.SEN12MSCR(small_root, "all")) == 9
    assert ds.PUBLISHED_NAME.match("ROIs1158_spring_s2_cloudy_106_p1.tif")
    assert not ds.PUBLISHED_NAME.match("ROIs1158_spring_s2_cloudy_106_p1.tif.aux.xml")
    assert not ds.PUBLISHED_NAME.match("ROIs1158_spring_s3_106_p1.tif")


def test_split_lists() -> None:
    assert ds.TEST_ROIS == {"spring": (106, 123, 140, 31, 44), "summer": (119, 73),
                            "fall": (139,), "winter": (108, 63)}  # fmt: skip
    assert ds.VAL_ROIS == {"winter": (22, 107, 130, 84), "summer": (19, 80, 127, 17),
                           "fall": (65,), "spring": (17,)}  # fmt: skip
    for season, rois in ds.TEST_ROIS.items():
        assert all(ds.default_split(season, r) == "test" for r in rois)
    for season, rois in ds.VAL_ROIS.items():
        assert all(ds.default_split(season, r) == "val" for r in rois)
    assert ds.default_split("spring", 1) == "train"
    assert ds.default_split("spring", 63) == "train"  # 63 is a test ROI in winter only
    assert ds.default_split("fall", 17) == "train"
    assert ds.default_split("", 17) is None
    with pytest.raises(DSen2CRError, match="unknown split"):
        ds.SEN12MSCR(".", split="training")


def test_incomplete_triplets_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "d"
    write_triplet(root, "summer", 5, 1)
    write_triplet(root, "summer", 5, 2, skip=("s2",))
    write_triplet(root, "summer", 5, 3, skip=("s1", "s2_cloudy"))
    with caplog.at_level(logging.WARNING, logger="dsen2cr.datasets"):
        dset = ds.SEN12MSCR(root, "all", crop_size=None)
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
    ds.build_index(root)
    assert ds.build_index(root).from_cache


def test_index_cache_reused_and_invalidated(
    small_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ds.build_index(small_root)
    assert not first.from_cache
    assert first.cache_path == small_root / ".dsen2cr" / "index.json"
    assert json.loads(first.cache_path.read_text())["root"] == str(small_root.resolve())

    def no_walk(*args: object, **kwargs: object) -> None:
        raise AssertionError("os.scandir called although the cache is valid")

    with monkeypatch.context() as m:
        m.setattr(os, "scandir", no_walk)
        again = ds.SEN12MSCR(small_root, "all")
    assert len(again) == len(first.triplets)
    assert ds.build_index(small_root).from_cache
    # a new triplet changes folder mtimes: the cache is rebuilt and sees it
    _age_folders(small_root)
    write_triplet(small_root, "fall", 139, 7)
    rebuilt = ds.build_index(small_root)
    assert not rebuilt.from_cache
    assert ("fall", 139, 7) in {(t.season, t.roi, t.patch) for t in rebuilt.triplets}
    # deleting a file (mtime of its folder changes) invalidates too
    _age_folders(small_root)
    os.remove(paths(small_root, "fall", 139, 7)["s2"])
    after = ds.build_index(small_root)
    assert not after.from_cache and len(after.incomplete) == 1
    assert ds.build_index(small_root, refresh=True).from_cache is False
    # explicit cache folder
    cache_dir = small_root.parent / "cache"
    idx = ds.build_index(small_root, cache_dir=cache_dir)
    assert idx.cache_path is not None and idx.cache_path.parent == cache_dir


# --------------------------------------------------------------------------- preprocessing
def test_preprocessing_values_and_inverse(tmp_path: Path) -> None:
    s2 = np.array([12000, 2000, 0, 10000, 65535], np.uint16).reshape(1, 1, 5)
    assert np.allclose(s2_to_scaled(s2), [[[5.0, 1.0, 0.0, 5.0, 5.0]]])
    assert np.allclose(scaled_to_s2(s2_to_scaled(np.array([[[2000, 7000]]], np.uint16))),
                       [[[2000, 7000]]])  # fmt: skip
    s1 = np.array([[[-25.0, 0.0, -30.0]], [[-32.5, -16.25, 5.0]]], np.float32)
    assert np.allclose(s1_to_scaled(s1), [[[0.0, 2.0, 0.0]], [[0.0, 1.0, 2.0]]])
    assert np.allclose(scaled_to_s1(s1_to_scaled(s1[:, :, :2])), s1[:, :, :2])

    # through the dataset: constant DN images and an S1 NaN filled with the image mean
    root = tmp_path / "d"
    sar = np.full((2, SIZE, SIZE), -12.5, np.float32)
    sar[0, :16] = -25.0
    sar[0, 3, 4] = np.nan
    write_triplet(root, "fall", 2, 1, s1=sar,
                  s2=np.full((13, SIZE, SIZE), 2000, np.uint16),
                  s2_cloudy=np.full((13, SIZE, SIZE), 12000, np.uint16))  # fmt: skip
    sample = ds.SEN12MSCR(root, "all", crop_size=None)[0]
    assert sample["optical"].dtype == torch.float32 and sample["optical"].shape == (13, SIZE, SIZE)
    assert torch.allclose(sample["optical"], torch.tensor(5.0))
    assert torch.allclose(sample["target"], torch.tensor(1.0))
    finite = sar[np.isfinite(sar)]  # mean of the image's finite values (both bands)
    expected_fill = 2 * (finite.mean() + 25) / 25
    assert sample["sar"][0, 3, 4].item() == pytest.approx(expected_fill, rel=1e-5)
    assert sample["sar"][0, 0, 0].item() == 0.0 and sample["sar"][0, 20, 0].item() == 1.0
    assert torch.allclose(sample["sar"][1], torch.tensor(2 * (32.5 - 12.5) / 32.5))
    assert sample["season"] == "fall" and sample["roi"] == 2 and sample["patch"] == 1
    assert sample["crs"] == "EPSG:32632"
    assert sample["transform"] == (10.0, 0.0, 501280.0, 0.0, -10.0, 5000000.0)


def _pattern_triplet(root: Path) -> dict[str, np.ndarray]:
    """Triplet whose rasters share one asymmetric pattern; the cloudy image adds a thick cloud
    block (bright in every band) and a shadow block (dark in B2, B8, B11)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    pattern = (yy * SIZE + xx).astype(np.float32)  # unique value per pixel
    s2 = np.broadcast_to((500 + pattern)[None], (13, SIZE, SIZE)).astype(np.uint16)
    s2[7], s2[10], s2[11] = 3000, 10, 2000  # B8, B10, B11 flat: clear land is no shadow
    cloudy = s2.copy()
    cloudy[:, 2:12, 4:18] = 9000
    cloudy[7, 2:12, 4:18], cloudy[11, 2:12, 4:18] = 3500, 2000  # modest NIR/SWIR keep the shadow test local
    cloudy[:, 20:28, 22:30] = 300
    s1 = np.stack([-25 + pattern / pattern.max() * 20, np.full_like(pattern, -20)]).astype(
        np.float32
    )
    write_triplet(root, "summer", 3, 1, s1=s1, s2=s2, s2_cloudy=cloudy)
    return {"s2": s2, "s2_cloudy": cloudy, "s1": s1}


def test_augmentation_consistent_and_window_matches_full_read(tmp_path: Path) -> None:
    from dsen2cr.cloudmask import binary_mask

    root = tmp_path / "d"
    arrays = _pattern_triplet(root)
    full_mask = binary_mask(arrays["s2_cloudy"]).astype(np.float32)
    assert full_mask[4:10, 6:16].all() and full_mask[22:26, 24:28].all()
    assert full_mask.mean() < 0.4
    dset = ds.SEN12MSCR(root, "all", crop_size=16, augment=True, with_mask=True, seed=3)
    seen = set()
    for idx in range(40):
        s = dset[idx]  # idx >= len: later epochs of sample 0
        seen.add((s["flip"], s["rot90"]))
        _, _, x0, _, _, y0 = s["transform"]
        col, row = round((x0 - 500000.0 - 1280) / 10), round((5000000.0 - y0) / 10)
        window = (slice(None), slice(row, row + 16), slice(col, col + 16))

        def undo(t: torch.Tensor, s: dict = s) -> np.ndarray:
            x = np.rot90(t.numpy(), -s["rot90"], axes=(-2, -1))
            return x[..., ::-1, :] if s["flip"] == 1 else x[..., :, ::-1] if s["flip"] == 2 else x

        # undoing the augmentation gives exactly the window of the full rasters
        assert np.allclose(undo(s["target"]), s2_to_scaled(arrays["s2"][window]))
        assert np.allclose(undo(s["optical"]), s2_to_scaled(arrays["s2_cloudy"][window]))
        assert np.allclose(undo(s["sar"]), s1_to_scaled(arrays["s1"][window]), atol=1e-6)
        assert np.array_equal(undo(s["mask"])[0], full_mask[window[1:]])
        # and the augmented rasters agree with each other pixel by pixel
        vv = scaled_to_s1(s["sar"].numpy())[0]
        assert np.allclose((vv + 25) / 20 * (SIZE * SIZE - 1) + 500, scaled_to_s2(s["target"][0]),
                           atol=0.05)  # fmt: skip
        clear = (s["optical"][0] != 4.5) & (s["optical"][0] != 0.15)  # not cloud / shadow block
        assert torch.equal(s["target"][0][clear], s["optical"][0][clear])
    assert len(seen) > 6  # flips and rotations are exercised


def test_evaluation_whole_patch_and_centre_crop(tmp_path: Path) -> None:
    root = tmp_path / "d"
    arrays = _pattern_triplet(root)
    whole = ds.SEN12MSCR(root, "all", crop_size=None)[0]
    assert np.allclose(whole["target"].numpy(), s2_to_scaled(arrays["s2"]))
    centre = ds.SEN12MSCR(root, "all", crop_size=16)[0]
    assert np.allclose(centre["target"].numpy(), s2_to_scaled(arrays["s2"][:, 8:24, 8:24]))
    assert centre["flip"] == 0 and centre["rot90"] == 0
    with pytest.raises(DataError, match="smaller than the crop size 64"):
        ds.SEN12MSCR(root, "all", crop_size=64)[0]


def test_reproducible_and_independent_of_workers(small_root: Path) -> None:
    def batches(workers: int, seed: int = 0) -> list[dict]:
        dset = ds.SEN12MSCR(small_root, "train", crop_size=8, augment=True, seed=seed)
        loader = torch.utils.data.DataLoader(
            dset, batch_size=2, sampler=ds.EpochRandomSampler(len(dset), seed),
            num_workers=workers, collate_fn=ds.collate,
        )  # fmt: skip
        return [b for _ in range(2) for b in loader]  # two epochs

    a, b = batches(0), batches(2)
    assert len(a) == len(b) == 6
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["optical"], y["optical"]) and x["patch"] == y["patch"]
        assert x["transform"] == y["transform"] and x["rot90"] == y["rot90"]
    # the two epochs differ, another seed differs
    assert not all(torch.equal(x["optical"], y["optical"]) for x, y in zip(a[:3], a[3:], strict=True))
    c = batches(0, seed=1)
    assert not all(torch.equal(x["optical"], y["optical"]) for x, y in zip(a, c, strict=True))


# --------------------------------------------------------------------------- split files
def test_split_file_csv(small_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "split.csv"
    f.write_text("split,season,roi,patch\ntrain,spring,106,1\nval,ROIs1158_spring,1,p10\n"
                 "test,winter,1,2\n3,spring,10,1\ntest,spring,99,9\n")  # fmt: skip
    train = ds.SEN12MSCR(small_root, "train", split_file=f)
    assert [(t.season, t.roi, t.patch) for t in train.triplets] == [("spring", 106, 1)]
    val = ds.SEN12MSCR(small_root, "val", split_file=f)
    assert [(t.season, t.roi, t.patch) for t in val.triplets] == [("spring", 1, 10)]
    with caplog.at_level(logging.WARNING, logger="dsen2cr.datasets"):
        test = ds.SEN12MSCR(small_root, "test", split_file=f)
    assert sorted((t.season, t.roi, t.patch) for t in test.triplets) == [
        ("spring", 10, 1), ("winter", 1, 2)
    ]
    assert test.report["missing"] == 1 and "are not under" in caplog.text
    bad = tmp_path / "bad.csv"
    bad.write_text("split,season,roi,patch\nholdout,spring,1,1\n")
    with pytest.raises(DataError, match="line 2: unknown split"):
        ds.SEN12MSCR(small_root, "train", split_file=bad)
    odd = tmp_path / "odd.csv"
    odd.write_text("a;b\n")
    with pytest.raises(DataError, match="unknown format"):
        ds.read_split_file(odd)


@pytest.mark.parametrize("delim", ["\t", ","])
def test_split_file_dsen2cr_flattened_layout(tmp_path: Path, delim: str) -> None:
    root = tmp_path / "flat"
    rng = np.random.default_rng(0)
    names = ["ROIs1158_spring_101_30.tif", "ROIs1158_spring_106_31.tif",
             "ROIs1868_summer_80_p2.tif", "ROIs2017_winter_5_7.tif"]  # fmt: skip
    for name in names:
        arr = default_arrays(rng)
        for m, folder in ds.FLAT_FOLDERS.items():
            if not (name.startswith("ROIs2017") and m == "s2_cloudy"):
                write_tif(root / folder / name, arr[m])
    listing = tmp_path / "datasetfilelist.csv"
    rows = [("1", names[0]), ("2", names[2]), ("3", names[1]), ("1", names[3])]
    listing.write_text("".join(delim.join([s, "s1", "s2_cloudFree", "s2_cloudy", n]) + "\n"
                               for s, n in rows))  # fmt: skip
    train = ds.SEN12MSCR(root, "train", crop_size=None, split_file=listing)
    assert [Path(t.s2).name for t in train.triplets] == [names[0]]
    assert train.report["incomplete"] == 1  # the winter file lacks its cloudy image
    sample = train[0]
    assert (sample["season"], sample["roi"], sample["patch"]) == ("spring", 101, 30)
    assert Path(train.triplets[0].s2).parent.name == "s2_cloudFree"
    val = ds.SEN12MSCR(root, "val", crop_size=None, split_file=listing)
    assert [(t.season, t.roi, t.patch) for t in val.triplets] == [("summer", 80, 2)]
    # the flattened layout also works without a split file (default ROI splits)
    index = ds.build_index(root)
    assert index.layout == "flat" and len(index.triplets) == 3 and len(index.incomplete) == 1
    assert [t.roi for t in ds.SEN12MSCR(root, "test").triplets] == [106]
    assert [t.roi for t in ds.SEN12MSCR(root, "val").triplets] == [80]


# --------------------------------------------------------------------------- bad data
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


BAD = {2: r"S2 cloudy image .*_s2_cloudy_1_p2\.tif: corrupt or truncated",
       3: r"S1 image .*_s1_1_p3\.tif has 3 band\(s\), expected 2",
       4: r"S2 image .*_s2_1_p4\.tif is 16 x 16 pixels, but the cloudy S2 image",
       5: r"S2 cloudy image .*_s2_cloudy_1_p5\.tif has dtype uint8, expected uint16",
       6: r"cannot read S1 image .*_s1_1_p6\.tif"}  # fmt: skip


def test_bad_files_raise(bad_root: Path) -> None:
    dset = ds.SEN12MSCR(bad_root, "all", crop_size=None)
    assert [t.patch for t in dset.triplets] == [1, 2, 3, 4, 5, 6]
    assert dset[0]["optical"].shape == (13, SIZE, SIZE)
    for i, pattern in BAD.items():
        with pytest.raises(DataError, match=pattern):
            dset[i - 1]


def test_bad_files_skipped(bad_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    dset = ds.SEN12MSCR(bad_root, "all", crop_size=8, augment=True, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="dsen2cr.datasets"):
        samples = [dset[i] for i in range(len(dset))]
    assert samples[0] is not None and all(s is None for s in samples[1:])
    assert dset.skipped == 5 and len(dset.skipped_messages) == 5
    assert "skipping sample" in caplog.text and "_s1_1_p3.tif" in caplog.text
    batch = ds.collate(samples)
    assert batch["optical"].shape == (1, 13, 8, 8) and batch["patch"] == [1]
    empty = ds.collate([None, None])
    assert ds.is_empty_batch(empty) and empty["sar"].shape[:2] == (0, 2) and empty["roi"] == []
    loader = torch.utils.data.DataLoader(dset, batch_size=3, collate_fn=ds.collate)
    assert [b["optical"].shape[0] for b in loader] == [1, 0]


# --------------------------------------------------------------------------- Lightning
def test_train_loader_starts_at_the_trainers_epoch(small_root: Path) -> None:
    """A resumed run continues the epoch sequence of crops and order instead of repeating 0."""
    from types import SimpleNamespace

    dm = ds.SEN12MSCRDataModule.from_config(
        {"root": str(small_root), "batch_size": 2, "num_workers": 0, "crop_size": 16})
    dm.setup("fit")
    assert dm.train_dataloader().sampler.epoch == 0
    dm.trainer = SimpleNamespace(current_epoch=3)
    sampler = dm.train_dataloader().sampler
    assert sampler.epoch == 3
    fresh = ds.EpochRandomSampler(len(sampler), sampler.seed)
    fresh.set_epoch(3)
    assert list(sampler) == list(fresh)


@pytest.mark.parametrize("workers", [0, 2])
def test_datamodule_batches(small_root: Path, workers: int) -> None:
    dm = ds.SEN12MSCRDataModule.from_config(
        {"root": str(small_root), "batch_size": 2, "eval_batch_size": 3, "num_workers": workers,
         "crop_size": 16, "with_mask": workers == 0}
    )
    dm.setup("fit")
    train = list(dm.train_dataloader())
    assert [b["optical"].shape for b in train] == [(2, 13, 16, 16)] * 2 + [(1, 13, 16, 16)]
    assert train[0]["sar"].shape == (2, 2, 16, 16) and train[0]["target"].shape == (2, 13, 16, 16)
    assert ("mask" in train[0]) == (workers == 0)
    val = list(dm.val_dataloader())
    assert [b["optical"].shape for b in val] == [(1, 13, SIZE, SIZE)]
    dm.setup("test")
    test = list(dm.test_dataloader())
    assert [b["optical"].shape[0] for b in test] == [3]
    assert sorted(test[0]["roi"]) == [63, 106, 106]
    loader = dm.train_dataloader()
    assert loader.persistent_workers == (workers > 0)
    with pytest.raises(DSen2CRError, match="unknown data option"):
        ds.SEN12MSCRDataModule.from_config({"root": "x", "batchsize": 2})


def test_cli_index(small_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dsen2cr.cli import main

    os.remove(paths(small_root, "spring", 10, 10)["s1"])
    assert main(["index", str(small_root)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["triplets"] == 8 and out["incomplete"] == 1
    assert out["splits"] == {"train": {"spring": 3, "winter": 1}, "test": {"spring": 2, "winter": 1},
                             "val": {"spring": 1}}  # fmt: skip
    assert out["incomplete_examples"][0]["missing"] == ["s1"]
    assert main(["index", str(small_root / "nope")]) == 2
