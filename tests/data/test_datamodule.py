"""The Lightning DataModule: crops for training, whole patches for val/test, resumed epochs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from dsen2cr.data import EpochRandomSampler
from dsen2cr.data.datamodule import SEN12MSCRDataModule
from dsen2cr.errors import DSen2CRError
from tests.data.fake_sen12mscr import SIZE


def test_train_loader_starts_at_the_trainers_epoch(small_root: Path) -> None:
    """A resumed run continues the epoch sequence of crops and order instead of repeating 0."""
    dm = SEN12MSCRDataModule.from_config(
        {"root": str(small_root), "batch_size": 2, "num_workers": 0, "crop_size": 16})
    dm.setup("fit")
    assert dm.train_dataloader().sampler.epoch == 0
    dm.trainer = SimpleNamespace(current_epoch=3)
    sampler = dm.train_dataloader().sampler
    assert sampler.epoch == 3
    fresh = EpochRandomSampler(len(sampler), sampler.seed)
    fresh.set_epoch(3)
    assert list(sampler) == list(fresh)


@pytest.mark.parametrize("workers", [0, 2])
def test_datamodule_batches(small_root: Path, workers: int) -> None:
    dm = SEN12MSCRDataModule.from_config(
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
        SEN12MSCRDataModule.from_config({"root": "x", "batchsize": 2})
