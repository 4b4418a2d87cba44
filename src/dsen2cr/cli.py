"""The ``dsen2cr`` command line.

Every subcommand is a thin wrapper over a public Python function (named in its help), imported
lazily so that ``dsen2cr --help`` is fast. User errors (:class:`~dsen2cr.errors.DSen2CRError`)
are printed as one line on stderr with exit status 2, never as a traceback.

Each subcommand is declared by one ``_add_<name>`` function below and listed in ``_COMMANDS``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dsen2cr import __version__
from dsen2cr.errors import DSen2CRError


# --------------------------------------------------------------------------- foundation
def _add_mask(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mask",
        help="cloud / cloud-shadow mask of a 13-band S2 GeoTIFF",
        description="Write the cloud (1) / shadow (-1) / clear (0) mask of a 13-band Sentinel-2 "
        "L1C GeoTIFF (DN) as a single-band int8 GeoTIFF on the input grid. "
        "Python: dsen2cr.cloudmask.mask_file.",
    )
    p.add_argument("s2", type=Path, help="13-band Sentinel-2 L1C GeoTIFF in DN")
    p.add_argument("out", type=Path, help="output int8 GeoTIFF")
    p.add_argument("--threshold", type=float, default=0.2, help="cloud threshold (default 0.2)")

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.cloudmask import mask_file

        stats = mask_file(a.s2, a.out, threshold=a.threshold)
        print(json.dumps(stats))

    p.set_defaults(func=run)


def _add_convert_weights(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-weights",
        help="convert the authors' Keras HDF5 weights to safetensors",
        description="Convert a DSen2-CR Keras 2.x HDF5 weight file (model_SARcarl.hdf5, ...; "
        "weights-only or full-model layout) to the native safetensors format. "
        "Python: dsen2cr.keras_weights.convert_keras_weights.",
    )
    p.add_argument("input", type=Path, help="Keras .hdf5/.h5 weight file")
    p.add_argument("output", type=Path, help="output .safetensors file")

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.keras_weights import convert_keras_weights

        model = convert_keras_weights(a.input, a.output)
        print(f"wrote {a.output}: {json.dumps(model.config)}")

    p.set_defaults(func=run)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="describe a weight file (architecture, parameters, training)",
        description="Print the architecture, parameter count, receptive field and training "
        "metadata of a .safetensors or Keras .hdf5 DSen2-CR weight file as JSON.",
    )
    p.add_argument("weights", type=Path)

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.models import DSen2CR, count_parameters

        model = DSen2CR.from_pretrained(a.weights)
        info = {
            "config": model.config,
            "parameters": count_parameters(model),
            "receptive_field_radius": model.receptive_field_radius,
            "training": model.training_info,
        }
        print(json.dumps(info, indent=2))

    p.set_defaults(func=run)


# --------------------------------------------------------------------------- evaluation
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score models on a SEN12MS-CR split (paper Table 1, Figs. 6-11)",
        description="Run weight files (native safetensors, Keras .hdf5, pix2pix generators, "
        "Lightning .ckpt) and the identity baseline over every whole patch of a SEN12MS-CR "
        "split; write metrics.json, metrics.csv (per image), table.md (paper Table 1 layout), "
        "band_nrmse.png and examples.png to --out. Python: dsen2cr.evaluation.evaluate.",
    )
    p.add_argument("--weights", type=Path, nargs="+", required=True, metavar="W",
                   help="weight files to evaluate")
    p.add_argument("--data", type=Path, required=True, metavar="ROOT",
                   help="SEN12MS-CR root folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="split to evaluate (default test)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--name", nargs="+", default=None, metavar="NAME",
                   help="one model name per weight file (default: file stems)")
    p.add_argument("--batch", type=int, default=8, help="patches per forward pass (default 8)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--num-workers", type=int, default=2, help="data-loader workers (default 2)")
    p.add_argument("--max-images", type=int, default=None, metavar="N",
                   help="evaluate only the first N patches")
    p.add_argument("--examples", type=int, default=4, metavar="K",
                   help="rows of the example figure (default 4, 0 for none)")
    p.add_argument("--split-file", type=Path, default=None, help="custom split definition")

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.evaluation import evaluate, format_table

        result = evaluate(
            a.weights, a.data, split=a.split, out_dir=a.out, names=a.name,
            batch_size=a.batch, device=a.device, num_workers=a.num_workers,
            max_images=a.max_images, examples=a.examples, split_file=a.split_file,
        )  # fmt: skip
        print(format_table(result), end="")
        print(f"wrote {a.out}/metrics.json, metrics.csv, table.md and figures")

    p.set_defaults(func=run)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="synthetic data -> train SAR / no-SAR models -> evaluate -> report",
        description="Generate a synthetic SEN12MS-CR, train small DSen2-CR models with the CARL "
        "loss with and without SAR, evaluate them and the identity baseline on the held-out test "
        "split, and write a report (report.md, report.html, metrics, figures) to --out. "
        "Python: dsen2cr.demo.run_demo.",
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="report folder (default demo_out)")
    p.add_argument("--quick", action="store_true",
                   help="tiny settings (seconds): checks the pipeline, shows no real learning")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available)")

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.demo import run_demo

        run_demo(a.out, quick=a.quick, device=a.device)

    p.set_defaults(func=run)


# --------------------------------------------------------------------------- training
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train DSen2-CR or the pix2pix baseline from a YAML config",
        description="Train a model as configured (configs/*.yaml: one file per row of the paper's "
        "Table 1) with Lightning: checkpoints every epoch (last + best by val/loss), TensorBoard "
        "and CSV logs, bf16 / multi-GPU / multi-node through --precision, --devices, --num-nodes "
        "(launch one process per GPU with torchrun or SLURM srun). Exports run_dir/"
        "weights.safetensors (or generator.safetensors for pix2pix). "
        "Python: dsen2cr.training.train.",
    )
    p.add_argument("--config", type=Path, required=True, help="YAML config (configs/*.yaml)")
    p.add_argument("--resume", default=None, metavar="PATH|last",
                   help="continue from a Lightning checkpoint, or 'last' of this run")
    p.add_argument("--devices", default=None,
                   help="devices per node (int, -1 for all, or e.g. '0,1'); trainer.devices")
    p.add_argument("--num-nodes", type=int, default=None, help="nodes; trainer.num_nodes")
    p.add_argument("--precision", default=None,
                   help="auto, bf16-mixed, 32-true, 16-mixed ...; trainer.precision")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help="config overrides, e.g. data.root=/data/SEN12MS-CR trainer.max_epochs=2")

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.training import describe, train

        extra = []
        if a.devices is not None:
            extra.append(f"trainer.devices={a.devices}" if "," not in a.devices
                         else f"trainer.devices=[{a.devices}]")
        if a.num_nodes is not None:
            extra.append(f"trainer.num_nodes={a.num_nodes}")
        if a.precision is not None:
            extra.append(f"trainer.precision={a.precision}")
        from lightning.pytorch.utilities import rank_zero_only

        result = train(a.config, [*a.overrides, *extra], resume=a.resume)
        if rank_zero_only.rank == 0:  # one summary line, not one per DDP process
            print(describe(result))

    p.set_defaults(func=run)


# --------------------------------------------------------------------------- data
def _add_synth_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth-data",
        help="write a synthetic SEN12MS-CR (published layout, georeferenced)",
        description="Generate a synthetic SEN12MS-CR in the published folder layout: per ROI a "
        "land-cover scene with plausible 13-band L1C spectra, S1 VV/VH from the same land cover, "
        "clouds (thick and thin, 0-100 % cover) with shadows, cut into 50 %-overlapping patches "
        "on a UTM grid; test and val ROIs included. Python: dsen2cr.synthetic.generate_dataset.",
    )
    p.add_argument("out", type=Path, help="output root folder")
    p.add_argument("--rois", type=int, default=8, help="number of ROIs (default 8)")
    p.add_argument("--patches", type=int, default=32, help="patches per ROI (default 32)")
    p.add_argument("--size", type=int, default=256, help="patch size in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--compress", default=None, help="GeoTIFF compression, e.g. zstd (default none)")
    p.add_argument("--preview", type=Path, default=None, metavar="PNG",
                   help="also write a PNG grid of a few triplets")

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.synthetic import generate_dataset, preview_grid

        if a.rois < 1 or a.patches < 1 or a.size < 8:
            raise DSen2CRError("--rois and --patches must be >= 1 and --size >= 8")
        root = generate_dataset(a.out, rois=a.rois, patches=a.patches, size=a.size, seed=a.seed,
                                progress=sys.stderr.isatty(), compress=a.compress)
        print(f"wrote {a.rois * a.patches} triplets to {root}")
        if a.preview is not None:
            preview_grid(root, a.preview)
            print(f"wrote {a.preview}")

    p.set_defaults(func=run)


def _add_index(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="index a SEN12MS-CR root and print triplet counts",
        description="Build or refresh the index cache of a SEN12MS-CR root (published or "
        "flattened layout) and print per-split / per-season triplet counts and incomplete "
        "triplets as JSON. Python: dsen2cr.datasets.index_summary.",
    )
    p.add_argument("root", type=Path, help="dataset root folder")
    p.add_argument("--split-file", type=Path, default=None,
                   help="CSV (split,season,roi,patch) or DSen2-CR file list")
    p.add_argument("--refresh", action="store_true", help="re-walk even if the cache is valid")
    p.add_argument("--cache-dir", type=Path, default=None, help="folder of the index cache")

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.datasets import index_summary

        summary = index_summary(a.root, split_file=a.split_file, refresh=a.refresh,
                                cache_dir=a.cache_dir)
        print(json.dumps(summary, indent=2))

    p.set_defaults(func=run)


# --------------------------------------------------------------------------- predict
def _add_speed_options(p: argparse.ArgumentParser, where: str) -> None:
    """--compile, --readers, --no-channels-last (dsen2cr.performance; predict's readers)."""
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network first (tens of seconds; pays for large scenes "
                   "on a GPU)")
    p.add_argument("--readers", type=int, default=None, metavar="N",
                   help=f"input reader threads{where} (default 1 on CPU; on CUDA a quarter of the "
                   "CPU cores, 1 to 4)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="run the network in NCHW instead of the faster NHWC memory format")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="remove clouds from whole Sentinel-2 scenes (georeferenced COG output)",
        description="Predict cloud-free Sentinel-2 for whole scenes with exact tiling: 13-band "
        "GeoTIFF or L1C .SAFE/.zip (baseline >= 04.00 offset removed) plus an S1 VV/VH GeoTIFF in "
        "dB (any CRS, reprojected onto the S2 grid). Writes a 13-band uint16 DN Cloud-Optimized "
        "GeoTIFF on the S2 grid (0 = nodata). With several scenes (a list or quoted globs), --out "
        "(and --mask-out, --preview) are folders and S1 files pair with S2 in sorted order. "
        "Python: dsen2cr.inference.predict / predict_many.",
    )
    p.add_argument("--s2", nargs="+", required=True, metavar="CLOUDY",
                   help="cloudy S2: 13-band GeoTIFF (DN), .SAFE folder or .zip; globs allowed")
    p.add_argument("--s1", nargs="+", default=None, metavar="SAR",
                   help="S1 VV/VH GeoTIFF(s) in dB (optional for weights without SAR)")
    p.add_argument("--weights", required=True, type=Path,
                   help=".safetensors or the authors' Keras .hdf5 weights")
    p.add_argument("--out", required=True, type=Path, help="output .tif (a folder for several)")
    p.add_argument("--mask-out", type=Path, default=None,
                   help="also write the int8 cloud(1)/shadow(-1)/clear(0) mask (-128 nodata)")
    p.add_argument("--preview", type=Path, default=None,
                   help="also write a PNG preview: input, SAR, mask, prediction side by side")
    p.add_argument("--tile", type=int, default=512,
                   help="output pixels per tile side; the network sees tile + 2 x halo (default 512)")
    p.add_argument("--batch", type=int, default=None,
                   help="tiles per forward pass (default 4 on CUDA, 1 on CPU)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16 runs the network under torch.autocast (default fp32)")
    p.add_argument("--s1-linear", action="store_true",
                   help="S1 holds linear backscatter: convert to dB (10 log10)")
    p.add_argument("--threshold", type=float, default=0.2, help="cloud mask threshold (0.2)")
    p.add_argument("--compress", default="DEFLATE", choices=["DEFLATE", "ZSTD", "LZW", "NONE"],
                   type=str.upper,
                   help="output compression (default DEFLATE, the most widely readable; ZSTD "
                   "writes faster)")
    _add_speed_options(p, "")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.inference import predict_scenes

        results = predict_scenes(
            a.s2, a.weights, a.out, a.s1, mask_out=a.mask_out, preview=a.preview, tile=a.tile,
            batch=a.batch, device=a.device, precision=a.precision, s1_linear=a.s1_linear,
            threshold=a.threshold, compress=a.compress, progress=not a.quiet,
            channels_last=a.channels_last, compile=a.compile, readers=a.readers,
        )  # fmt: skip
        for r in results:
            print(json.dumps(r))

    p.set_defaults(func=run)


# --------------------------------------------------------------------------- benchmark
def _add_benchmark(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="measure peak FLOP/s, inference / training throughput and MFU, scene speed, bf16 error",
        description="Measure on one device, in the precision used (bf16 on CUDA, fp32 on CPU): the "
        "FLOP/s of a large matrix multiply (the measured peak, 'peak'); DSen2-CR (F=256, B=16) "
        "inference on 256 x 256 patches ('infer') and CARL training steps on 128 x 128 crops "
        "('train'), each with throughput, achieved TFLOP/s and MFU (model FLOP/s / peak); end-to-"
        "end prediction of a generated scene with I/O in megapixels/s ('scene'; a full 10980 x "
        "10980 tile on CUDA); the mean |bf16 - fp32| in reflectance on real SEN12MS-CR patches "
        "('bf16'). Prints one JSON object; progress goes to stderr. "
        "Python: dsen2cr.benchmark.run_benchmark.",
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--quick", action="store_true",
                   help="small sizes: a CPU run takes under two minutes")
    p.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="also write the JSON to FILE (atomically)")
    p.add_argument("--sections", nargs="+", default=None, metavar="NAME",
                   help="sections to run: peak infer train scene bf16 (default all)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="default bf16 on CUDA, fp32 on CPU")
    _add_speed_options(p, " of the scene section")
    p.add_argument("--ladder", action="store_true",
                   help="also measure each optimisation one at a time (fp32 NCHW, +channels_last, "
                   "+bf16, +cudnn.benchmark, +torch.compile) for infer and train")
    p.add_argument("--realdata", type=Path, default=None, metavar="DIR",
                   help="folder of *_s2_cloudy.tif / *_s1.tif patches for 'bf16' (default "
                   "../shared/realdata/sen12mscr_triplets; skipped when absent)")
    p.add_argument("--weights", type=Path, default=None, metavar="W",
                   help="weights for 'bf16' (default: random init, seed 0)")
    p.add_argument("--scene-size", type=int, default=None, metavar="N",
                   help="side of the generated scene in pixels (default 10980 on CUDA, 512 on "
                   "CPU, 256 with --quick)")
    p.add_argument("--features", type=int, default=256,
                   help="F of the model (default 256); smaller model for smoke tests")
    p.add_argument("--blocks", type=int, default=16,
                   help="B of the model (default 16); smaller model for smoke tests")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.benchmark import SECTIONS, run_benchmark
        from dsen2cr.io import atomic_output

        result = run_benchmark(
            a.device, quick=a.quick, sections=a.sections or SECTIONS, precision=a.precision,
            channels_last=a.channels_last, compile=a.compile, ladder=a.ladder,
            realdata=a.realdata, weights=a.weights, scene_size=a.scene_size,
            features=a.features, blocks=a.blocks, readers=a.readers, progress=not a.quiet,
        )  # fmt: skip
        text = json.dumps(result, indent=2)
        if a.json is not None:
            with atomic_output(a.json) as tmp:
                tmp.write_text(text + "\n")
        print(text)

    p.set_defaults(func=run)


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_predict,
    _add_mask,
    _add_convert_weights,
    _add_info,
    _add_synth_data,
    _add_index,
    _add_train,
    _add_evaluate,
    _add_demo,
    _add_benchmark,
]


def build_parser() -> argparse.ArgumentParser:
    """The ``dsen2cr`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="dsen2cr",
        description="Cloud removal for Sentinel-2 with SAR-optical fusion (DSen2-CR).",
    )
    parser.add_argument("--version", action="version", version=f"dsen2cr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dsen2cr`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except DSen2CRError as exc:
        print(f"dsen2cr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dsen2cr {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
