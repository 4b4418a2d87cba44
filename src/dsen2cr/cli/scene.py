"""``dsen2cr predict`` and ``dsen2cr mask``: whole scenes (library: :mod:`dsen2cr.scene`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dsen2cr.cli.common import add_overwrite, add_speed_options, given, speed_options


def _add_scene_options(p: argparse.ArgumentParser) -> None:
    """--tile, --device, --threshold, --compress, --quiet (shared by predict and mask)."""
    p.add_argument("--tile", type=int, default=None,
                   help="output pixels per tile side; the network sees tile + 2 x halo (default 512)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--threshold", type=float, default=None,
                   help="cloud threshold of the mask (default 0.2)")
    p.add_argument("--compress", default=None, choices=["DEFLATE", "ZSTD", "LZW", "NONE"],
                   type=str.upper,
                   help="output compression (default DEFLATE, the most widely readable; ZSTD "
                   "writes faster)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="remove clouds from whole Sentinel-2 scenes (georeferenced COG output)",
        description="Predict cloud-free Sentinel-2 for whole scenes with exact tiling: 13-band "
        "GeoTIFF or L1C .SAFE/.zip (baseline >= 04.00 offset removed) plus an S1 VV/VH GeoTIFF in "
        "dB (any CRS, reprojected onto the S2 grid). Writes a 13-band uint16 DN Cloud-Optimized "
        "GeoTIFF on the S2 grid (0 = nodata). With several scenes (a list or quoted globs), --out "
        "(and --mask-out, --preview) are folders and S1 files pair with S2 in sorted order. "
        "Python: dsen2cr.scene.predict / predict_scenes.",
    )
    p.add_argument("--s2", nargs="+", required=True, metavar="CLOUDY",
                   help="cloudy S2: 13-band GeoTIFF (DN), .SAFE folder or .zip; globs allowed")
    p.add_argument("--s1", nargs="+", default=None, metavar="SAR",
                   help="S1 VV/VH GeoTIFF(s) in dB (optional for weights without SAR)")
    p.add_argument("--weights", required=True, type=Path,
                   help=".safetensors, the authors' Keras .hdf5, or a training .ckpt")
    p.add_argument("--out", required=True, type=Path, help="output .tif (a folder for several)")
    p.add_argument("--mask-out", type=Path, default=None,
                   help="also write the int8 cloud(1)/shadow(-1)/clear(0) mask (-128 nodata)")
    p.add_argument("--preview", type=Path, default=None,
                   help="also write a PNG preview: input, SAR, mask, prediction side by side")
    p.add_argument("--batch", type=int, default=None,
                   help="tiles per forward pass (default 4 on CUDA, 1 on CPU)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="bf16 runs the network under torch.autocast (default fp32)")
    p.add_argument("--s1-linear", action="store_true",
                   help="S1 holds linear backscatter: convert to dB (10 log10)")
    _add_scene_options(p)
    add_speed_options(p, "")
    add_overwrite(p, "output files (prediction, mask, preview)")

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.scene import PredictOptions, predict_scenes

        options = PredictOptions(
            **given(a, "tile", "batch", "device", "precision", "threshold", "compress", "readers"),
            s1_linear=a.s1_linear, speed=speed_options(a), progress=not a.quiet,
        )  # fmt: skip
        results = predict_scenes(a.s2, a.weights, a.out, a.s1, mask_out=a.mask_out,
                                 preview=a.preview, options=options, overwrite=a.overwrite)  # fmt: skip
        for r in results:
            print(json.dumps(r))

    p.set_defaults(func=run)


def add_mask(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mask",
        help="cloud / cloud-shadow mask of a Sentinel-2 scene",
        description="Write the cloud (1) / shadow (-1) / clear (0) mask of a Sentinel-2 L1C scene "
        "(13-band GeoTIFF in DN, .SAFE or .zip) as an int8 Cloud-Optimized GeoTIFF on the input "
        "grid, -128 where the input is nodata: tile by tile with bounded memory, the same mask as "
        "predict --mask-out. Python: dsen2cr.scene.mask_scene.",
    )
    p.add_argument("s2", type=Path, help="Sentinel-2 L1C: 13-band GeoTIFF in DN, .SAFE or .zip")
    p.add_argument("out", type=Path, help="output int8 COG")
    _add_scene_options(p)
    p.add_argument("--readers", type=int, default=None, metavar="N",
                   help="input reader threads (default 1 on CPU)")
    add_overwrite(p, "output file")

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.scene import PredictOptions, mask_scene

        options = PredictOptions(**given(a, "tile", "device", "threshold", "compress", "readers"),
                                 progress=not a.quiet)  # fmt: skip
        print(json.dumps(mask_scene(a.s2, a.out, options=options, overwrite=a.overwrite)))

    p.set_defaults(func=run)
