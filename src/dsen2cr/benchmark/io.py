"""Benchmark section ``io``: the scene path with the network replaced by an identity.

What a scene costs besides the network, on any machine: :func:`dsen2cr.scene.predict` of a
generated scene (:func:`dsen2cr.benchmark.scene.make_inputs`: 13-band uint16 DEFLATE S2 and S1 at
20 m, warped) with :class:`IdentityNetwork`, a network of the paper model's tiling (halo 34) that
returns its input, so every stage but the network runs as in a real prediction: decoding, S1
warping, the device round trip, DN conversion, compression of the COG blocks, overviews and the
COG layout. For each thread count it reports the end-to-end rate and the seconds of every stage;
each heavy stage is also timed alone (``stage_scaling``) to show how it scales with threads. The
anchor, in the same run, is GDAL's own COG translation of the same S2 input (``COMPRESS`` as
predict's, ``NUM_THREADS=ALL_CPUS``): decoding, overviews and compression of the same pixels.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window
from torch import nn

from dsen2cr.benchmark.timing import sig
from dsen2cr.cog import COG_BLOCKSIZE, CogProfile, CogWriter
from dsen2cr.io import bounded_gdal, cpu_count
from dsen2cr.scene.predict import PredictOptions, predict
from dsen2cr.scene.sentinel1 import open_s1
from dsen2cr.scene.sentinel2 import open_s2

PAPER_HALO = 34
"""Receptive-field radius of the paper model (2B + 2, B = 16): the tiling the identity mimics."""


class IdentityNetwork(nn.Module):
    """A network with DSen2-CR's interface and tiling that returns its optical input.

    Args:
        halo: receptive-field radius to tile with.
    """

    uses_sar = True

    def __init__(self, halo: int = PAPER_HALO) -> None:
        super().__init__()
        self.receptive_field_radius = halo
        self.config = {"identity": True, "halo": halo}
        self.name = "identity"

    def forward(self, optical: torch.Tensor, sar: torch.Tensor | None = None) -> torch.Tensor:
        return optical


def thread_counts(cores: int | None = None) -> list[int]:
    """1, 2, 4, ... up to the cores this process may use, and that count itself."""
    cores = cores or cpu_count()
    counts = [1]
    while counts[-1] * 2 <= cores:
        counts.append(counts[-1] * 2)
    return sorted({*counts, cores})


def _predict_once(s2: Path, s1: Path, out: Path, device: torch.device, threads: int,
                  compress: str, tile: int) -> dict[str, Any]:  # fmt: skip
    opts = PredictOptions(device=str(device), threads=threads, compress=compress, tile=tile,
                          progress=False)  # fmt: skip
    t0 = time.perf_counter()
    summary = predict(s2, IdentityNetwork(), out, s1, options=opts, overwrite=True)
    wall = time.perf_counter() - t0
    px = summary["width"] * summary["height"]
    return {
        "threads": threads,
        "wall_seconds": sig(wall),
        "megapixels_per_s": sig(px / 1e6 / wall),
        "loop_seconds": sig(summary["seconds"]),
        "cog_seconds": sig(summary["cog_seconds"]),
        "startup_seconds": sig(summary["startup_seconds"]),
        "seconds": {k: sig(v, 4) for k, v in summary["stages"].items()},
    }


def _time_decode(s2: Path, threads: int) -> float:
    scene = open_s2(s2)
    with bounded_gdal(threads), scene.open() as reader:
        t0 = time.perf_counter()
        for r in range(0, scene.height, COG_BLOCKSIZE):
            reader.read_raw(Window(0, r, scene.width, min(COG_BLOCKSIZE, scene.height - r)), native=True)
        return time.perf_counter() - t0


def _time_warp(s2: Path, s1: Path, threads: int) -> float:
    scene = open_s2(s2)
    source = open_s1(s1, scene)
    with bounded_gdal(threads), source.open(threads=threads) as reader:
        t0 = time.perf_counter()
        for r in range(0, scene.height, COG_BLOCKSIZE):
            reader.read(Window(0, r, scene.width, min(COG_BLOCKSIZE, scene.height - r)))
        return time.perf_counter() - t0


def _time_encode(data: np.ndarray, out: Path, threads: int, compress: str) -> float:
    _, h, w = data.shape
    profile = CogProfile(count=data.shape[0], dtype=str(data.dtype), nodata=0, compress=compress,
                         predictor=True)  # fmt: skip
    b = COG_BLOCKSIZE
    pieces = [(r, c) for r in range(0, h, b) for c in range(0, w, b)]
    t0 = time.perf_counter()
    with bounded_gdal(threads), CogWriter(out, h, w, profile) as cog, \
         concurrent.futures.ThreadPoolExecutor(threads) as pool:  # fmt: skip
        list(pool.map(lambda rc: cog.write(data[:, rc[0] : rc[0] + b, rc[1] : rc[1] + b], *rc), pieces))
    seconds = time.perf_counter() - t0
    out.unlink()
    return seconds


def _time_gdal_cog(s2: Path, out: Path, compress: str) -> float:
    t0 = time.perf_counter()
    rio_copy(str(s2), str(out), driver="COG", COMPRESS=compress, NUM_THREADS="ALL_CPUS",
             BLOCKSIZE=COG_BLOCKSIZE, BIGTIFF="IF_SAFER")  # fmt: skip
    seconds = time.perf_counter() - t0
    out.unlink()
    return seconds


def bench_io(
    device: torch.device,
    s2: Path,
    s1: Path,
    folder: Path,
    *,
    threads: list[int] | None = None,
    compress: str = "DEFLATE",
    tile: int = 512,
    pairs: int = 3,
) -> dict[str, Any]:
    """The ``io`` section on an existing pair of generated inputs.

    Args:
        device: where the identity network runs (CUDA includes the host-device round trip and
            the DN conversion on the device).
        s2: the S2 input (:func:`~dsen2cr.benchmark.scene.make_inputs`).
        s1: its S1 input.
        folder: where the outputs are written (and removed).
        threads: thread counts to run with (default :func:`thread_counts`).
        compress: output compression (predict's default DEFLATE).
        tile: core tile size.
        pairs: runs of the path with the most threads and of GDAL's translation, taken in turn
            (A B A B ...), so that the ratio holds on a machine whose speed drifts.

    Returns:
        ``size``, ``megapixels``, ``runs`` (one per thread count: ``wall_seconds``,
        ``megapixels_per_s``, ``loop_seconds``, ``cog_seconds``, ``startup_seconds``,
        ``seconds`` by stage), ``megapixels_per_s`` (thread count -> rate),
        ``stage_scaling`` (``decode``, ``warp``, ``encode`` timed alone per thread count, the
        best of two, and the speed-up of the most threads over one), ``gdal_cog_seconds`` (the
        median of GDAL's runs) and ``ratio_to_gdal`` (the median, over the pairs, of the wall
        time of the path with the most threads over GDAL's), ``ratio_pairs``.
    """
    counts = threads or thread_counts()
    with rasterio.open(s2) as ds:
        height, width = ds.height, ds.width
    runs = [_predict_once(s2, s1, folder / "io_out.tif", device, t, compress, tile) for t in counts]
    (folder / "io_out.tif").unlink(missing_ok=True)
    with bounded_gdal(max(counts)), rasterio.open(s2) as ds:
        data = ds.read()
    scaling: dict[str, Any] = {"decode": {}, "warp": {}, "encode": {}}
    for t in counts:
        scaling["decode"][str(t)] = sig(min(_time_decode(s2, t) for _ in range(2)), 4)
        scaling["warp"][str(t)] = sig(min(_time_warp(s2, s1, t) for _ in range(2)), 4)
        scaling["encode"][str(t)] = sig(_time_encode(data, folder / "io_enc.tif", t, compress), 4)
    del data
    lo, hi = str(min(counts)), str(max(counts))
    scaling["speedup"] = {k: sig(v[lo] / v[hi], 3) for k, v in scaling.items() if v.get(hi)}
    ours, gdal = [], []
    for k in range(max(1, pairs)):
        run = runs[-1] if k == 0 else _predict_once(s2, s1, folder / "io_out.tif", device, max(counts),
                                                    compress, tile)  # fmt: skip
        ours.append(float(run["wall_seconds"]))
        gdal.append(_time_gdal_cog(s2, folder / "io_gdal.tif", compress))
    (folder / "io_out.tif").unlink(missing_ok=True)
    ratios = [a / b for a, b in zip(ours, gdal, strict=True)]
    gdal_seconds = statistics.median(gdal)
    return {
        "size": height if height == width else [height, width],
        "megapixels": sig(height * width / 1e6),
        "device": str(device),
        "network": f"identity with the paper model's tiling (halo {PAPER_HALO})",
        "compress": compress,
        "tile": tile,
        "runs": runs,
        "megapixels_per_s": {str(r["threads"]): r["megapixels_per_s"] for r in runs},
        "stage_scaling": scaling,
        "gdal_cog_seconds": sig(gdal_seconds),
        "gdal_cog": f"GDAL COG driver, COMPRESS={compress}, NUM_THREADS=ALL_CPUS, same S2 input",
        "ratio_to_gdal": sig(statistics.median(ratios), 3),
        "ratio_pairs": [sig(r, 3) for r in ratios],
    }
