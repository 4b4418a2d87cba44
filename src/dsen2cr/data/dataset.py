"""SEN12MS-CR samples: reading, preprocessing, cropping, augmentation and batching.

See :class:`SEN12MSCR`. Preprocessing is :mod:`dsen2cr.scaling` (paper Section 3.5): S2 DN clipped
to [0, 10000] / 2000; S1 VV clipped to [-25, 0], VH to [-32.5, 0], mapped onto [0, 2]; NaNs in S1
replaced by the mean of the finite values of the window read. Which triplets a split holds is
:mod:`dsen2cr.data.splits`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypedDict, cast

import numpy as np
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from dsen2cr.cloudmask import binary_mask
from dsen2cr.data.splits import select_triplets
from dsen2cr.errors import DataError
from dsen2cr.io import check_band_count, gdal_reason, open_raster
from dsen2cr.scaling import fill_nan, s1_to_scaled, s2_to_scaled

log = logging.getLogger(__name__)

S2_DTYPES = ("uint16", "int16")
"""Accepted dtypes of SEN12MS-CR S2 files."""
S1_DTYPES = ("float32", "float64")
"""Accepted dtypes of SEN12MS-CR S1 files."""


# --------------------------------------------------------------------------- reading
def open_patch(
    path: str | os.PathLike[str], what: str, bands: int, dtypes: Sequence[str]
) -> DatasetReader:
    """Open a SEN12MS-CR raster and check its band count and dtype (:class:`DataError`)."""
    src = open_raster(path, what)
    try:
        check_band_count(src.count, bands, path, what)
        if src.dtypes[0] not in dtypes:
            raise DataError(f"{what} {path} has dtype {src.dtypes[0]}, expected "
                            f"{' or '.join(dtypes)}")  # fmt: skip
    except DataError:
        src.close()
        raise
    return src


def read_patch(src: DatasetReader, what: str, window: Window | None = None) -> np.ndarray:
    """Read ``window`` (None: all) of an open raster; a decoding failure is a :class:`DataError`."""
    try:
        return src.read(window=window)
    except (RasterioError, OSError, ValueError) as exc:
        raise DataError(f"cannot read {what} {src.name}: corrupt or truncated ({gdal_reason(exc)})") from None


def _gdal_env() -> rasterio.Env:
    return rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR")


def _crs_string(crs: CRS | None) -> str:
    if crs is None:
        return ""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def augment_array(x: np.ndarray, flip: int, rot90: int) -> np.ndarray:
    """Apply the training augmentation to a (C, H, W) or (H, W) array.

    Args:
        x: array, spatial axes last.
        flip: 0 none, 1 vertical (rows reversed), 2 horizontal (columns reversed); applied first.
        rot90: number of counter-clockwise quarter turns (``np.rot90``), 0..3; applied second.

    Returns:
        A view of ``x`` (not necessarily contiguous).
    """
    if flip == 1:
        x = x[..., ::-1, :]
    elif flip == 2:
        x = x[..., :, ::-1]
    return np.rot90(x, rot90, axes=(-2, -1)) if rot90 % 4 else x


class _SampleMask(TypedDict, total=False):
    mask: torch.Tensor
    """(1, h, w) float32 {0, 1} cloud-or-shadow mask (only with ``with_mask``)."""


class SampleImages(_SampleMask):
    """The tensors of a :class:`Sample` (``mask`` only with ``with_mask``)."""

    optical: torch.Tensor
    sar: torch.Tensor
    target: torch.Tensor


class Sample(SampleImages):
    """One sample of :class:`SEN12MSCR`: its tensors and metadata (see the class docs)."""

    season: str
    roi: int
    patch: int
    crs: str
    transform: tuple[float, ...]
    flip: int
    rot90: int


class Batch(TypedDict, total=False):
    """Samples collated by :func:`collate`: (B, C, h, w) tensors and per-sample lists.

    ``mask`` is there when the samples have one; an empty batch has all the other keys.
    """

    optical: torch.Tensor
    sar: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    season: list[str]
    roi: list[int]
    patch: list[int]
    crs: list[str]
    transform: list[tuple[float, ...]]
    flip: list[int]
    rot90: list[int]


class SEN12MSCR(torch.utils.data.Dataset[Sample | None]):
    """SEN12MS-CR triplets as preprocessed tensors (see the module docstring for the layouts).

    Each sample is a dict:

    * ``optical``: (13, h, w) float32 cloudy S2, scaled (DN clipped to [0, 10000], / 2000);
    * ``sar``: (2, h, w) float32 S1 VV, VH, scaled onto [0, 2];
    * ``target``: (13, h, w) float32 cloud-free S2, scaled;
    * ``mask``: (1, h, w) float32 {0, 1} cloud-or-shadow of the cloudy input, only with
      ``with_mask`` (computed with :func:`dsen2cr.cloudmask.binary_mask` on the whole cloudy patch,
      because the shadow test uses whole-image statistics, then cropped and augmented like the
      rasters);
    * metadata: ``season`` (str), ``roi`` (int), ``patch`` (int), ``crs`` (``"EPSG:xxxxx"``, WKT,
      or ``""``), ``transform`` (6 floats, GDAL/affine order a, b, c, d, e, f) of the window read,
      i.e. the crop **before** augmentation; ``flip`` and ``rot90`` give the augmentation applied
      (undo ``np.rot90(x, -rot90)`` then the flip to get back onto that window's grid).

    Cropping: by default (``crop_size=None``) every sample is the whole patch, as evaluation
    needs. With ``crop_size`` (< the patch size) a ``crop_size`` square window is read with a
    windowed read (only that window is read); its position is random when ``random_crop``
    (default: ``augment``), else the centre. Training asks for its crops through
    :class:`dsen2cr.data.datamodule.SEN12MSCRDataModule` (128 px by default).
    Augmentation: flip none / vertical / horizontal, then rot90 by k in 0..3, identical for the
    three rasters and the mask.

    Randomness comes from ``numpy.random.default_rng([seed, epoch, i])`` for sample ``i``, so a
    sample depends only on (seed, epoch, index), never on the number of workers. The epoch is
    ``set_epoch(e)`` plus ``index // len(self)``: :class:`EpochRandomSampler` passes indices
    offset by ``epoch * len(self)``, which works with persistent workers.

    Args:
        root: dataset root.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        crop_size: crop size in pixels, or ``None`` (default) for whole patches.
        augment: random flips and rotations.
        with_mask: add the ``mask`` entry (CPU cloud/shadow detection, ~costly).
        split_file: optional split file (CSV or DSen2-CR file list).
        on_error: ``"raise"`` (default) or ``"skip"``: a bad sample is logged, counted in
            ``skipped`` / ``skipped_messages`` and returned as ``None`` (dropped by :func:`collate`).
            Counts are per process (each DataLoader worker has its own copy).
        seed: random seed.
        cache_dir: index cache folder (see :func:`build_index`).
        random_crop: random (True) or centre (False) crops; default ``augment``.
        patch_size: if given, every raster must be ``patch_size`` square.
        refresh_index: rebuild the index cache.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        crop_size: int | None = None,
        augment: bool = False,
        with_mask: bool = False,
        split_file: str | os.PathLike[str] | None = None,
        on_error: str = "raise",
        seed: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        random_crop: bool | None = None,
        patch_size: int | None = None,
        refresh_index: bool = False,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if crop_size is not None and crop_size < 1:
            raise ValueError(f"crop_size must be positive or None, got {crop_size}")
        self.root = Path(root)
        self.split = split
        self.crop_size = crop_size
        self.augment = augment
        self.with_mask = with_mask
        self.on_error = on_error
        self.seed = int(seed)
        self.random_crop = augment if random_crop is None else random_crop
        self.patch_size = patch_size
        self.triplets, self.report = select_triplets(root, split, split_file, cache_dir,
                                                     refresh_index)  # fmt: skip
        self.epoch = 0
        self.skipped = 0
        self.skipped_messages: list[str] = []

    def __len__(self) -> int:
        return len(self.triplets)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds crops and augmentation (in this process)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator used for (possibly epoch-offset) sample ``index``."""
        n = max(len(self), 1)
        return np.random.default_rng([self.seed, self.epoch + index // n, index % n])

    def __getitem__(self, index: int) -> Sample | None:
        if len(self) == 0:
            raise IndexError("empty dataset")
        try:
            return self._load(int(index))
        except DataError as exc:
            if self.on_error == "raise":
                raise
            self.skipped += 1
            if len(self.skipped_messages) < 1000:
                self.skipped_messages.append(str(exc))
            log.warning("skipping sample %d: %s", index, exc)
            return None

    def _load(self, index: int) -> Sample:
        t = self.triplets[index % len(self)]
        rng = self.rng(index)
        with contextlib.ExitStack() as stack:
            # no directory listing per open (SEN12MS-CR folders hold ~1000 files, no sidecars)
            stack.enter_context(_gdal_env())
            s1 = stack.enter_context(open_patch(t.s1, "S1 image", 2, S1_DTYPES))
            s2 = stack.enter_context(open_patch(t.s2, "S2 image", 13, S2_DTYPES))
            s2c = stack.enter_context(open_patch(t.s2_cloudy, "S2 cloudy image", 13, S2_DTYPES))
            h, w = s2c.height, s2c.width
            for src, what in ((s1, "S1 image"), (s2, "S2 image")):
                if (src.height, src.width) != (h, w):
                    raise DataError(f"{what} {src.name} is {src.height} x {src.width} pixels, "
                                    f"but the cloudy S2 image {t.s2_cloudy} is {h} x {w}")  # fmt: skip
            if self.patch_size is not None and (h, w) != (self.patch_size,) * 2:
                raise DataError(f"S2 cloudy image {t.s2_cloudy} is {h} x {w} pixels, expected "
                                f"{self.patch_size} x {self.patch_size}")  # fmt: skip
            c = self.crop_size
            if c is None or (c, c) == (h, w):
                y0, x0, ch, cw = 0, 0, h, w
            elif c > h or c > w:
                raise DataError(f"S2 cloudy image {t.s2_cloudy} is {h} x {w} pixels, smaller "
                                f"than the crop size {c}")  # fmt: skip
            elif self.random_crop:
                y0, x0, ch, cw = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1)), c, c
            else:
                y0, x0, ch, cw = (h - c) // 2, (w - c) // 2, c, c
            window = Window(x0, y0, cw, ch)
            whole = (ch, cw) == (h, w)
            mask = None
            if self.with_mask:
                cloudy_full = read_patch(s2c, "S2 cloudy image", None)
                mask = binary_mask(cloudy_full)[y0 : y0 + ch, x0 : x0 + cw]
                cloudy = cloudy_full[:, y0 : y0 + ch, x0 : x0 + cw]
            else:
                cloudy = read_patch(s2c, "S2 cloudy image", None if whole else window)
            target = read_patch(s2, "S2 image", None if whole else window)
            sar = read_patch(s1, "S1 image", None if whole else window)
            transform = tuple(float(v) for v in tuple(s2c.window_transform(window))[:6])
            crs = _crs_string(s2c.crs)
        flip, rot = (int(rng.integers(0, 3)), int(rng.integers(0, 4))) if self.augment else (0, 0)
        sar = fill_nan(sar.astype(np.float32, copy=False))

        def tensor(x: np.ndarray) -> torch.Tensor:
            x = augment_array(x, flip, rot)
            return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

        images: SampleImages = {
            "optical": tensor(s2_to_scaled(cloudy)),
            "sar": tensor(s1_to_scaled(sar)),
            "target": tensor(s2_to_scaled(target)),
        }
        if mask is not None:
            images["mask"] = tensor(mask[None].astype(np.float32))
        return {**images, "season": t.season, "roi": t.roi, "patch": t.patch, "crs": crs,
                "transform": transform, "flip": flip, "rot90": rot}  # fmt: skip


TENSOR_KEYS = ("optical", "sar", "target", "mask")
_EMPTY_SHAPES = {"optical": 13, "sar": 2, "target": 13}


def collate(batch: Sequence[Sample | None]) -> Batch:
    """Collate samples of :class:`SEN12MSCR`: stack tensors, keep metadata as lists.

    Skipped samples (``None``) are dropped. If every sample of the batch was skipped the result
    is an *empty batch* of the same structure: tensors of shape (0, C, 0, 0) and empty lists
    (``batch["optical"].shape[0] == 0``); training and evaluation steps must skip it (e.g.
    ``return None`` from ``training_step``).

    Args:
        batch: samples (dicts) or ``None``.

    Returns:
        Dict with (B, C, h, w) tensors under ``optical``, ``sar``, ``target`` (and ``mask``) and
        lists of length B for every other key (``transform``: list of 6-tuples).
    """
    samples: list[Mapping[str, object]] = [s for s in batch if s is not None]
    if not samples:
        return cast(Batch, {**{k: torch.zeros((0, c, 0, 0)) for k, c in _EMPTY_SHAPES.items()},
                            **{k: [] for k in ("season", "roi", "patch", "crs", "transform",
                                               "flip", "rot90")}})  # fmt: skip
    out: dict[str, object] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        out[key] = (torch.stack(cast("list[torch.Tensor]", values)) if key in TENSOR_KEYS
                    else values)  # fmt: skip
    return cast(Batch, out)


def is_empty_batch(batch: Mapping[str, object] | None) -> bool:
    """True for ``None`` or a batch from :func:`collate` in which every sample was skipped."""
    return batch is None or cast(torch.Tensor, batch["optical"]).shape[0] == 0


class EpochRandomSampler(torch.utils.data.Sampler[int]):
    """Shuffles ``range(n)`` with a (seed, epoch) generator and yields ``epoch * n + i``.

    :class:`SEN12MSCR` reads the epoch from the index, so crops and augmentation change every
    epoch even in persistent DataLoader workers, and depend only on (seed, epoch, index). Lightning
    calls :meth:`set_epoch` at each epoch start (also on resume); without it the epoch advances
    by one per iteration.
    """

    def __init__(self, n: int, seed: int = 0, epoch: int = 0) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = int(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch of the next iteration."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        self.epoch += 1
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return iter((epoch * self.n + perm).tolist())
