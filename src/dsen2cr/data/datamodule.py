"""Lightning DataModules: SEN12MS-CR from disk, or in-memory tensors.

:class:`SEN12MSCRDataModule` serves training (random 128 px crops, flips and rotations, shuffled
per epoch), validation and test (whole patches, index order) from a SEN12MS-CR root;
:class:`TensorDataModule` serves tensors already in memory (tests, benchmarks, notebooks). This
is the one data module that imports Lightning; :mod:`dsen2cr.data.dataset` does not.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch

from dsen2cr.data.dataset import SEN12MSCR, EpochRandomSampler, Sample, collate
from dsen2cr.data.splits import read_split_file
from dsen2cr.errors import DataError, DSen2CRError

TRAIN_CROP = 128
"""Side of the random training crops of the paper (Section 3.5)."""


class SEN12MSCRDataModule(L.LightningDataModule):
    """Train / val / test loaders over SEN12MS-CR.

    Train: random ``crop_size`` crops with flips and rotations, shuffled with
    :class:`EpochRandomSampler`. Val / test: whole patches, no augmentation, in index order.

    Args:
        root: dataset root.
        batch_size: training batch size.
        eval_batch_size: val/test batch size (default ``batch_size``).
        num_workers: DataLoader worker processes (0: load in the main process).
        crop_size: training crop (``None`` or the patch size: whole patches).
        split_file: optional split file (CSV or DSen2-CR file list; a per-patch list is one split
            and is refused here).
        on_error: ``"raise"`` or ``"skip"`` (see :class:`SEN12MSCR`).
        seed: seed of crops, augmentation and shuffling.
        pin_memory: pin host memory (only used when CUDA is available).
        persistent_workers: keep workers between epochs (only when ``num_workers > 0``).
        with_mask: add CPU cloud/shadow masks to the samples (training usually computes them
            batched on the accelerator instead).
        cache_dir: index cache folder.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        crop_size: int | None = TRAIN_CROP,
        split_file: str | os.PathLike[str] | None = None,
        on_error: str = "raise",
        seed: int = 0,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        with_mask: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.crop_size = crop_size
        if split_file is not None and read_split_file(split_file)[0] == "patches":
            raise DataError(
                f"split file {split_file} is a per-patch list, which is one split; training needs "
                "its train and val splits apart: give a CSV split,season,roi,patch or a DSen2-CR "
                "file list"
            )
        self.split_file = split_file
        self.on_error = on_error
        self.seed = int(seed)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        self.with_mask = bool(with_mask)
        self.cache_dir = cache_dir
        self._datasets: dict[str, SEN12MSCR] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SEN12MSCRDataModule:
        """Build from a dict of constructor arguments (e.g. the ``data:`` block of a YAML config).

        Raises:
            DSen2CRError: an unknown key.
        """
        params = inspect.signature(cls.__init__).parameters
        unknown = sorted(set(config) - set(params) - {"self"})
        if unknown:
            raise DSen2CRError(f"unknown data option(s) {', '.join(unknown)}; allowed: "
                               f"{', '.join(p for p in params if p != 'self')}")  # fmt: skip
        return cls(**dict(config))

    def dataset(self, split: str) -> SEN12MSCR:
        """The (cached) dataset of a split: ``"train"`` augmented and cropped, others whole."""
        if split not in self._datasets:
            train = split == "train"
            self._datasets[split] = SEN12MSCR(
                self.root, split=split, crop_size=self.crop_size if train else None,
                augment=train, with_mask=self.with_mask, split_file=self.split_file,
                on_error=self.on_error, seed=self.seed, cache_dir=self.cache_dir,
            )  # fmt: skip
        return self._datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Index the splits needed for ``stage`` (fit: train + val; validate; test)."""
        needs = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                 "predict": ("test",)}.get(stage or "", ("train", "val", "test"))  # fmt: skip
        for split in needs:
            self.dataset(split)

    def _loader(
        self, split: str, batch_size: int, sampler: torch.utils.data.Sampler[int] | None = None
    ) -> torch.utils.data.DataLoader[Sample | None]:
        ds = self.dataset(split)
        workers = self.num_workers
        return torch.utils.data.DataLoader(
            ds, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers,
            collate_fn=collate, pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and workers > 0, drop_last=False,
        )  # fmt: skip

    def train_dataloader(self) -> torch.utils.data.DataLoader[Sample | None]:
        """Shuffled, cropped, augmented training batches."""
        ds = self.dataset("train")
        # start at the trainer's epoch: on resume the checkpoint is restored before this is
        # called, and neither DDP's sampler wrapper nor the first prefetch sees set_epoch
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        sampler = EpochRandomSampler(len(ds), self.seed, epoch=epoch)
        return self._loader("train", self.batch_size, sampler)

    def val_dataloader(self) -> torch.utils.data.DataLoader[Sample | None]:
        """Whole validation patches in index order."""
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> torch.utils.data.DataLoader[Sample | None]:
        """Whole test patches in index order."""
        return self._loader("test", self.eval_batch_size)


class _TensorDataset(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors
        self.n = len(next(iter(tensors.values())))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


class TensorDataModule(L.LightningDataModule):
    """A LightningDataModule over in-memory scaled tensors (tests, benchmarks, notebooks).

    Samples are dicts like :class:`dsen2cr.data.SEN12MSCR`'s: ``optical`` (13, H, W),
    ``sar`` (2, H, W) and ``target`` (13, H, W), all scaled float32.

    Args:
        train: ``{"optical": (N, 13, H, W), "sar": (N, 2, H, W), "target": (N, 13, H, W)}``.
        val: the same for validation (default: the training tensors).
        batch_size: training batch size.
        eval_batch_size: validation batch size (default: ``batch_size``).
        shuffle: shuffle the training samples each epoch.
    """

    def __init__(
        self,
        train: Mapping[str, torch.Tensor],
        val: Mapping[str, torch.Tensor] | None = None,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        self.train_set = _TensorDataset(dict(train))
        self.val_set = _TensorDataset(dict(val if val is not None else train))
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.shuffle = shuffle

    def train_dataloader(self) -> torch.utils.data.DataLoader[dict[str, torch.Tensor]]:
        return torch.utils.data.DataLoader(
            self.train_set, batch_size=self.batch_size, shuffle=self.shuffle
        )

    def val_dataloader(self) -> torch.utils.data.DataLoader[dict[str, torch.Tensor]]:
        return torch.utils.data.DataLoader(self.val_set, batch_size=self.eval_batch_size)

    def test_dataloader(self) -> torch.utils.data.DataLoader[dict[str, torch.Tensor]]:
        return self.val_dataloader()
