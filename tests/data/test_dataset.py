"""SEN12MS-CR samples: preprocessing, whole patches by default, crops and augmentation,
reproducibility across workers, bad files (raise or skip), batching."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from dsen2cr.cloudmask import binary_mask
from dsen2cr.data import SEN12MSCR, EpochRandomSampler, collate, is_empty_batch
from dsen2cr.errors import DataError
from dsen2cr.scaling import s1_to_scaled, s2_to_scaled, scaled_to_s1, scaled_to_s2
from tests.data.fake_sen12mscr import SIZE, write_triplet


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
    sample = SEN12MSCR(root, "all", crop_size=None)[0]
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
    root = tmp_path / "d"
    arrays = _pattern_triplet(root)
    full_mask = binary_mask(arrays["s2_cloudy"]).astype(np.float32)
    assert full_mask[4:10, 6:16].all() and full_mask[22:26, 24:28].all()
    assert full_mask.mean() < 0.4
    dset = SEN12MSCR(root, "all", crop_size=16, augment=True, with_mask=True, seed=3)
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
    whole = SEN12MSCR(root, "all")[0]  # whole patches unless a crop is asked for
    assert whole["target"].shape == (13, SIZE, SIZE)
    assert np.allclose(whole["target"].numpy(), s2_to_scaled(arrays["s2"]))
    centre = SEN12MSCR(root, "all", crop_size=16)[0]
    assert np.allclose(centre["target"].numpy(), s2_to_scaled(arrays["s2"][:, 8:24, 8:24]))
    assert centre["flip"] == 0 and centre["rot90"] == 0
    with pytest.raises(DataError, match="smaller than the crop size 64"):
        SEN12MSCR(root, "all", crop_size=64)[0]


def test_reproducible_and_independent_of_workers(small_root: Path) -> None:
    def batches(workers: int, seed: int = 0) -> list[dict]:
        dset = SEN12MSCR(small_root, "train", crop_size=8, augment=True, seed=seed)
        loader = torch.utils.data.DataLoader(
            dset, batch_size=2, sampler=EpochRandomSampler(len(dset), seed),
            num_workers=workers, collate_fn=collate,
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


BAD = {2: r"S2 cloudy image .*_s2_cloudy_1_p2\.tif: corrupt or truncated",
       3: r"S1 image .*_s1_1_p3\.tif has 3 band\(s\), expected 2",
       4: r"S2 image .*_s2_1_p4\.tif is 16 x 16 pixels, but the cloudy S2 image",
       5: r"S2 cloudy image .*_s2_cloudy_1_p5\.tif has dtype uint8, expected uint16",
       6: r"cannot read S1 image .*_s1_1_p6\.tif"}  # fmt: skip


def test_bad_files_raise(bad_root: Path) -> None:
    dset = SEN12MSCR(bad_root, "all", crop_size=None)
    assert [t.patch for t in dset.triplets] == [1, 2, 3, 4, 5, 6]
    assert dset[0]["optical"].shape == (13, SIZE, SIZE)
    for i, pattern in BAD.items():
        with pytest.raises(DataError, match=pattern):
            dset[i - 1]


def test_bad_files_skipped(bad_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    dset = SEN12MSCR(bad_root, "all", crop_size=8, augment=True, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="dsen2cr.data"):
        samples = [dset[i] for i in range(len(dset))]
    assert samples[0] is not None and all(s is None for s in samples[1:])
    assert dset.skipped == 5 and len(dset.skipped_messages) == 5
    assert "skipping sample" in caplog.text and "_s1_1_p3.tif" in caplog.text
    batch = collate(samples)
    assert batch["optical"].shape == (1, 13, 8, 8) and batch["patch"] == [1]
    empty = collate([None, None])
    assert is_empty_batch(empty) and empty["sar"].shape[:2] == (0, 2) and empty["roi"] == []
    loader = torch.utils.data.DataLoader(dset, batch_size=3, collate_fn=collate)
    assert [b["optical"].shape[0] for b in loader] == [1, 0]
