"""``dsen2cr predict`` and ``dsen2cr mask``: whole scenes (library: :mod:`dsen2cr.scene`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from dsen2cr.cli.common import (
    DEVICE_HELP,
    Subparsers,
    add_overwrite,
    add_speed_options,
    command_parser,
    given,
    register,
    require,
    speed_options,
)

if TYPE_CHECKING:
    from dsen2cr.scene import PredictOptions, Shard


def _add_scene_options(p: argparse.ArgumentParser, tile_help: str) -> None:
    """--tile, --device, --threshold, --compress, --quiet (shared by predict and mask)."""
    p.add_argument("--tile", type=int, default=None, help=tile_help)
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--threshold", type=float, default=None,
                   help="cloud threshold of the mask (default 0.2)")
    p.add_argument("--compress", default=None, choices=["DEFLATE", "ZSTD", "LZW", "NONE"],
                   type=str.upper,
                   help="output compression (default DEFLATE, the most widely readable; ZSTD "
                   "writes faster)")
    p.add_argument("--no-band-check", dest="band_check", action="store_false",
                   help="proceed with a 13-band S2 GeoTIFF whose bands do not look like B1 ... "
                   "B12 in SEN12MS-CR order (named otherwise, or B10 brighter than B3)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads of each stage: decoding, S1 warping, writing and "
                   "compressing (default: every core this process may use)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


class _Summary(argparse.Action):
    """``--summary MANIFEST``: print the summary and exit, before any other option is required
    (as ``--version`` does)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:  # fmt: skip
        from dsen2cr.errors import DSen2CRError, cli_flags, one_line
        from dsen2cr.scene import format_summary, summarize

        try:
            with cli_flags(lambda name: "--" + name.replace("_", "-")):
                summary = summarize(Path(str(values)))
                text = format_summary(summary)
        except (DSen2CRError, OSError) as exc:
            with cli_flags(lambda name: "--" + name.replace("_", "-")):
                parser.exit(2, f"dsen2cr predict: error: {one_line(exc)}\n")
        print(text)
        parser.exit(0 if summary.complete else 1)


# --------------------------------------------------------------------------- predict
def add_predict(sub: Subparsers) -> None:
    """Declare ``dsen2cr predict`` (:func:`run_predict`)."""
    p = sub.add_parser(
        "predict",
        help="remove clouds from whole Sentinel-2 scenes (georeferenced COG output)",
        description="Predict cloud-free Sentinel-2 for whole scenes with exact tiling: 13-band "
        "GeoTIFF or L1C .SAFE/.zip (baseline >= 04.00 offset removed) plus an S1 VV/VH GeoTIFF in "
        "dB (any CRS, reprojected onto the S2 grid). Writes a 13-band uint16 DN Cloud-Optimized "
        "GeoTIFF on the S2 grid (0 = nodata). A batch (several scenes, quoted globs or --pairs) "
        "writes into folders: each S2 gets the S1 covering most of its footprint; under torchrun, "
        "srun or a job array every process takes a fixed share of the sorted scenes; scenes whose "
        "outputs were already made with the same weights and options are skipped; a failing "
        "scene is reported and the others go on (exit status 1 at the end); every scene is logged "
        "to a JSON-lines manifest. Python: dsen2cr.scene.predict / predict_batch.",
    )
    # in this order: the order of the usage line and of --help
    _add_predict_inputs(p)
    _add_predict_extra_outputs(p)
    _add_predict_batch_options(p)
    _add_predict_network_options(p)
    _add_scene_options(p, "output pixels per tile side; the network sees tile + 2 x halo "
                          "(default 512)")
    add_speed_options(p, "")
    add_overwrite(p, "output files (prediction, mask, preview)")
    register(p, run_predict, s2="--s2")


def _add_predict_inputs(p: argparse.ArgumentParser) -> None:
    """--s2, --s1, --pairs and the required --weights, --out."""
    p.add_argument("--s2", nargs="+", default=None, metavar="CLOUDY",
                   help="cloudy S2: 13-band GeoTIFF (DN), .SAFE folder or .zip; globs allowed")
    p.add_argument("--s1", nargs="+", default=None, metavar="SAR",
                   help="S1 VV/VH GeoTIFF(s) in dB (optional for weights without SAR); in a "
                   "batch, candidates matched to each S2 by footprint")
    p.add_argument("--pairs", type=Path, default=None, metavar="CSV",
                   help="batch from a CSV with columns s2,s1 and an optional out (paths relative "
                   "to the CSV's folder) instead of --s2/--s1")
    need = p.add_argument_group("required")
    need.add_argument("--weights", type=Path, required=True,
                      help=".safetensors, the authors' Keras .hdf5, or a training .ckpt")
    need.add_argument("--out", type=Path, required=True,
                      help="output .tif (a folder for a batch)")


def _add_predict_extra_outputs(p: argparse.ArgumentParser) -> None:
    """--mask-out, --preview."""
    p.add_argument("--mask-out", type=Path, default=None,
                   help="also write the int8 cloud(1)/shadow(-1)/clear(0) mask (-128 nodata)")
    p.add_argument("--preview", type=Path, default=None,
                   help="also write a PNG preview: input, SAR, mask, prediction side by side")


def _add_predict_batch_options(p: argparse.ArgumentParser) -> None:
    """--manifest, --shard, --summary (batches of scenes)."""
    p.add_argument("--manifest", type=Path, default=None, metavar="FILE",
                   help="batch: the JSON-lines manifest every process appends to (default "
                   "OUT/manifest.jsonl)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="batch: predict share I (0-based) of N, e.g. $SLURM_ARRAY_TASK_ID/N "
                   "(default: from torchrun / srun / job-array variables)")
    p.add_argument("--summary", type=Path, action=_Summary, metavar="MANIFEST",
                   help="print what a batch's manifest says is done, skipped, failed and still "
                   "missing, and exit (status 1 unless complete; nothing else is needed)")


def _add_predict_network_options(p: argparse.ArgumentParser) -> None:
    """--batch, --precision, --s1-linear, --keep-clear, --clear-margin."""
    p.add_argument("--batch", type=int, default=None,
                   help="tiles per forward pass (default 4 on CUDA, 1 on CPU)")
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default=None,
                   help="fp32: IEEE float32; tf32: TF32 tensor cores (CUDA); bf16: bfloat16 "
                   "autocast (default tf32 on CUDA, fp32 on CPU; README 'Precision')")
    p.add_argument("--s1-linear", action="store_true",
                   help="S1 holds linear backscatter: convert to dB (10 log10)")
    p.add_argument("--keep-clear", action="store_true",
                   help="keep the input where the cloud/shadow mask says clear, predict only under "
                   "clouds and shadows; adds a 14th band, the provenance (0 nodata, 1 input kept, "
                   "2 under cloud, 3 under shadow)")
    p.add_argument("--clear-margin", type=int, default=None, metavar="PX",
                   help="with --keep-clear, grow clouds and shadows by PX pixels first (default 0)")


def predict_options(a: argparse.Namespace) -> PredictOptions:
    """The :class:`~dsen2cr.scene.PredictOptions` of ``dsen2cr predict``'s flags (the flags not
    given keep the library's defaults)."""
    from dsen2cr.scene import PredictOptions

    return PredictOptions(
        **given(a, "tile", "batch", "device", "precision", "threshold", "compress", "readers",
                "threads"),
        **given(a, "clear_margin"), s1_linear=a.s1_linear, speed=speed_options(a),
        progress=not a.quiet, band_check=a.band_check, keep_clear=a.keep_clear,
    )  # fmt: skip


def run_predict(a: argparse.Namespace) -> int:
    """``dsen2cr predict``: one scene (:func:`dsen2cr.scene.predict`) or a batch
    (:func:`dsen2cr.scene.predict_batch`), as :func:`dsen2cr.scene.plan_predict` decides.

    Args:
        a: the arguments parsed by the parser of :func:`add_predict`.

    Returns:
        0, or 1 when a scene of a batch failed (the others are predicted).
    """
    from dsen2cr.scene import parse_shard, plan_predict, predict

    p = command_parser(a)
    require(p, [("--s2 (or --pairs)", a.s2 if a.pairs is None else a.pairs)])
    if a.s2 is not None and a.pairs is not None:
        p.error("give --s2/--s1 or --pairs, not both")
    options = predict_options(a)
    shard = parse_shard(a.shard) if a.shard is not None else None
    one = plan_predict(a.s2, a.s1, a.out, weights=a.weights, mask_out=a.mask_out,
                       preview=a.preview, pairs=a.pairs, shard=shard, overwrite=a.overwrite)  # fmt: skip
    if one is None:
        return _predict_batch(a, options, shard)
    print(json.dumps(predict(one[0], a.weights, a.out, one[1], mask_out=a.mask_out,
                             preview=a.preview, options=options, overwrite=a.overwrite)))  # fmt: skip
    return 0


def _predict_batch(a: argparse.Namespace, options: PredictOptions, shard: Shard | None) -> int:
    """The batch of ``dsen2cr predict``: one JSON line per scene of this process's share."""
    from dsen2cr.scene import predict_batch

    result = predict_batch(a.s2 if a.pairs is None else None, a.weights, a.out, a.s1,
                           pairs=a.pairs, mask_dir=a.mask_out, preview_dir=a.preview,
                           options=options, overwrite=a.overwrite, manifest=a.manifest,
                           shard=shard, quiet=a.quiet)  # fmt: skip
    for r in result.records:
        print(json.dumps(r))
    return 0 if result.ok else 1


# --------------------------------------------------------------------------- mask
def add_mask(sub: Subparsers) -> None:
    """Declare ``dsen2cr mask`` (:func:`run_mask`)."""
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
    _add_scene_options(p, "output pixels per tile side; the mask is computed on tile + 2 x 7 "
                          "pixels (its filters' radius) (default 512)")
    p.add_argument("--readers", type=int, default=None, metavar="N",
                   help="input reader threads (default 1 on CPU)")
    add_overwrite(p, "output file")
    register(p, run_mask)


def run_mask(a: argparse.Namespace) -> int:
    """``dsen2cr mask``: :func:`dsen2cr.scene.mask_scene`; prints its result as JSON.

    Args:
        a: the arguments parsed by the parser of :func:`add_mask`.

    Returns:
        0.
    """
    from dsen2cr.scene import PredictOptions, mask_scene

    options = PredictOptions(**given(a, "tile", "device", "threshold", "compress", "readers",
                                     "threads"), progress=not a.quiet,
                             band_check=a.band_check)  # fmt: skip
    print(json.dumps(mask_scene(a.s2, a.out, options=options, overwrite=a.overwrite)))
    return 0
