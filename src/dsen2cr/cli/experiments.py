"""``dsen2cr train``, ``evaluate``, ``table``, ``demo`` and ``benchmark``: experiments."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dsen2cr.cli.common import (
    DEVICE_HELP,
    Subparsers,
    add_overwrite,
    add_speed_options,
    command_parser,
    register,
    require,
    speed_options,
)


# --------------------------------------------------------------------------- train
def add_train(sub: Subparsers) -> None:
    """Declare ``dsen2cr train`` (:func:`run_train`)."""
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
    register(p, run_train)


def trainer_overrides(a: argparse.Namespace) -> list[str]:
    """The config overrides of ``--devices``, ``--num-nodes`` and ``--precision``
    (``trainer.devices=[0,1]`` for a list of devices), after those given as arguments."""
    extra = []
    if a.devices is not None:
        extra.append(f"trainer.devices={a.devices}" if "," not in a.devices
                     else f"trainer.devices=[{a.devices}]")
    if a.num_nodes is not None:
        extra.append(f"trainer.num_nodes={a.num_nodes}")
    if a.precision is not None:
        extra.append(f"trainer.precision={a.precision}")
    return [*a.overrides, *extra]


def run_train(a: argparse.Namespace) -> int:
    """``dsen2cr train``: :func:`dsen2cr.training.train` with the overrides of
    :func:`trainer_overrides`; the first process prints the summary line.

    Args:
        a: the arguments parsed by the parser of :func:`add_train`.

    Returns:
        0.
    """
    from dsen2cr.training import describe, train

    result = train(a.config, trainer_overrides(a), resume=a.resume)
    if result.global_zero:  # one summary line, not one per DDP process
        print(describe(result))
    return 0


# --------------------------------------------------------------------------- evaluate
def add_evaluate(sub: Subparsers) -> None:
    """Declare ``dsen2cr evaluate`` (:func:`run_evaluate`)."""
    p = sub.add_parser(
        "evaluate",
        help="score models on a SEN12MS-CR split (paper Table 1, Figs. 6-12)",
        description="Run weight files (native safetensors, Keras .hdf5, pix2pix generators, "
        "Lightning .ckpt) and the identity baseline over every whole patch of a SEN12MS-CR "
        "split; write metrics.json, metrics.csv (per image), table.md (paper Table 1 layout), "
        "band_nrmse.png and examples.png to --out. With --scenes, also mosaic every ROI of the "
        "split into a large scene, predict it tile by tile and score it (--out/scenes/). Every "
        "value follows one declared metric protocol (--protocol; --list-protocols shows them). "
        "Python: dsen2cr.evaluation.evaluate.",
    )
    _add_evaluate_what(p)
    _add_evaluate_how(p)
    add_overwrite(p, "report files: write into a folder that is not empty")
    register(p, run_evaluate, batch_size="--batch", names="--name")


def _add_evaluate_what(p: argparse.ArgumentParser) -> None:
    """--weights, --data, --split, --out, --protocol, --list-protocols, --scenes, --name."""
    p.add_argument("--weights", type=Path, nargs="+", default=None, metavar="W",
                   help="weight files to evaluate (required)")
    p.add_argument("--data", type=Path, default=None, metavar="ROOT",
                   help="SEN12MS-CR root folder (required)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="split to evaluate (default test)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder (required)")
    p.add_argument("--protocol", default="dsen2cr", metavar="NAME",
                   help="metric protocol: dsen2cr (default), uncrtaints, glf-cr")
    p.add_argument("--list-protocols", action="store_true",
                   help="print every metric protocol's conventions and exit")
    p.add_argument("--scenes", action="store_true",
                   help="also evaluate large scenes mosaicked from the split's ROIs "
                   "(paper Sec. 4.4, Figs. 9, 10, 12) into --out/scenes")
    p.add_argument("--name", nargs="+", default=None, metavar="NAME",
                   help="one model name per weight file (default: file stems)")


def _add_evaluate_how(p: argparse.ArgumentParser) -> None:
    """--batch, --device, --num-workers, --max-images, --examples, --split-file."""
    p.add_argument("--batch", type=int, default=8, help="patches per forward pass (default 8)")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--num-workers", type=int, default=2, help="data-loader workers (default 2)")
    p.add_argument("--max-images", type=int, default=None, metavar="N",
                   help="evaluate only the first N patches")
    p.add_argument("--examples", type=int, default=4, metavar="K",
                   help="rows of the example figure (default 4, 0 for none)")
    p.add_argument("--split-file", type=Path, default=None, help="custom split definition")


def run_evaluate(a: argparse.Namespace) -> int:
    """``dsen2cr evaluate``: :func:`dsen2cr.evaluation.evaluate`, then its table
    (:func:`dsen2cr.evaluation.format_table`); with ``--list-protocols`` the metric protocols
    (:func:`dsen2cr.metrics.describe_protocol`) instead.

    Args:
        a: the arguments parsed by the parser of :func:`add_evaluate`.

    Returns:
        0.
    """
    from dsen2cr.evaluation import evaluate, format_table
    from dsen2cr.metrics import describe_protocol, protocol_names

    if a.list_protocols:
        print("\n\n".join(describe_protocol(n) for n in protocol_names()))
        return 0
    require(command_parser(a), [("--weights", a.weights), ("--data", a.data), ("--out", a.out)])
    result = evaluate(
        a.weights, a.data, split=a.split, out_dir=a.out, names=a.name,
        batch_size=a.batch, device=a.device, num_workers=a.num_workers,
        max_images=a.max_images, examples=a.examples, split_file=a.split_file,
        overwrite=a.overwrite, protocol=a.protocol, scenes=a.scenes,
    )  # fmt: skip
    print(format_table(result), end="")
    print(f"wrote {a.out}/metrics.json, metrics.csv, table.md and figures"
          + (f"; scenes in {a.out}/scenes" if a.scenes else ""))  # fmt: skip
    return 0


# --------------------------------------------------------------------------- table
def add_table(sub: Subparsers) -> None:
    """Declare ``dsen2cr table`` (:func:`run_table`)."""
    p = sub.add_parser(
        "table",
        help="put evaluation results side by side (paper Table 1 layout)",
        description="Read the metrics.json of one or more `dsen2cr evaluate` runs and print "
        "their models as one Markdown table in the layout of the paper's Table 1, optionally "
        "with the paper's own rows (--paper). Results computed under different metric "
        "protocols are refused. Python: dsen2cr.evaluation.format_table.",
    )
    p.add_argument("results", type=Path, nargs="+", metavar="METRICS_JSON",
                   help="metrics.json files (or the folders holding them)")
    p.add_argument("--paper", action="store_true",
                   help="add the paper's Table 1 rows (protocol dsen2cr)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help="also write the table to FILE (Markdown)")
    add_overwrite(p, "--out file")
    register(p, run_table)


def run_table(a: argparse.Namespace) -> int:
    """``dsen2cr table``: the results read by :func:`dsen2cr.metrics.table.read_result` (and
    the paper's rows with ``--paper``) as one :func:`dsen2cr.evaluation.format_table`.

    Args:
        a: the arguments parsed by the parser of :func:`add_table`.

    Returns:
        0.
    """
    from dsen2cr.evaluation import format_table
    from dsen2cr.io import atomic_output, guard_outputs
    from dsen2cr.metrics import PAPER_PROTOCOL, PAPER_TABLE1
    from dsen2cr.metrics.table import read_result

    files = [r / "metrics.json" if r.is_dir() else r for r in a.results]
    guard_outputs({"out": a.out}, files, overwrite=a.overwrite)
    results = [read_result(r) for r in a.results]
    if a.paper:
        results.append({"models": {f"paper: {k}": v for k, v in PAPER_TABLE1.items()},
                        "protocol": PAPER_PROTOCOL})  # fmt: skip
    text = format_table(*results)
    if a.out is not None:
        with atomic_output(a.out) as tmp:
            tmp.write_text(text)
    print(text, end="")
    return 0


# --------------------------------------------------------------------------- demo
def add_demo(sub: Subparsers) -> None:
    """Declare ``dsen2cr demo`` (:func:`run_demo`)."""
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
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    add_overwrite(p, "demo outputs: run in a folder that is not empty")
    register(p, run_demo)


def run_demo(a: argparse.Namespace) -> int:
    """``dsen2cr demo``: :func:`dsen2cr.demo.run_demo`.

    Args:
        a: the arguments parsed by the parser of :func:`add_demo`.

    Returns:
        0.
    """
    from dsen2cr.demo import run_demo as demo

    demo(a.out, quick=a.quick, device=a.device, overwrite=a.overwrite)
    return 0


# --------------------------------------------------------------------------- benchmark
def add_benchmark(sub: Subparsers) -> None:
    """Declare ``dsen2cr benchmark`` (:func:`run_benchmark`)."""
    p = sub.add_parser(
        "benchmark",
        help="measure peak FLOP/s, inference / training throughput and MFU, scene speed, bf16 error",
        description="Measure on one device, in the precision used (bf16 on CUDA, fp32 on CPU): the "
        "FLOP/s of a large matrix multiply (the measured peak, 'peak'); DSen2-CR (F=256, B=16) "
        "inference on 256 x 256 patches ('infer') and CARL training steps on 128 x 128 crops "
        "('train'), each with throughput, achieved TFLOP/s and MFU (model FLOP/s / peak); end-to-"
        "end prediction of a generated scene with I/O in megapixels/s ('scene'; a full 10980 x "
        "10980 tile on CUDA, predict's default options, seconds by stage, GPU busy fraction); the "
        "mean |bf16 - fp32| in reflectance on real SEN12MS-CR patches ('bf16'); when asked, the "
        "scene path with an identity network per thread count against GDAL's own COG "
        "translation ('io'). Prints one JSON object; progress goes to stderr. "
        "Python: dsen2cr.benchmark.run_benchmark.",
    )
    # in this order: the order of the usage line and of --help
    _add_benchmark_run_options(p)
    add_speed_options(p, " of the scene section")
    _add_benchmark_section_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_overwrite(p, "--json file")
    register(p, run_benchmark)


def _add_benchmark_run_options(p: argparse.ArgumentParser) -> None:
    """--device, --quick, --json, --sections, --precision."""
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--quick", action="store_true",
                   help="small sizes: a CPU run takes under two minutes")
    p.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="also write the JSON to FILE (atomically)")
    p.add_argument("--sections", nargs="+", default=None, metavar="NAME",
                   help="sections to run: peak infer train scene io compile bf16 (default all "
                   "but io and compile)")
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default=None,
                   help="default bf16 on CUDA, fp32 on CPU ('scene': predict's default)")


def _add_benchmark_section_options(p: argparse.ArgumentParser) -> None:
    """--ladder, --realdata, --weights, --scene-size, --io-size, --io-threads, --inputs-dir,
    --features, --blocks: what the sections measure, on what."""
    p.add_argument("--ladder", action="store_true",
                   help="also measure each optimisation one at a time (fp32 NCHW, +channels_last, "
                   "+bf16, +cudnn.benchmark, +torch.compile) for infer and train")
    p.add_argument("--realdata", type=Path, default=None, metavar="DIR",
                   help="folder of real *_s2_cloudy.tif / *_s1.tif patches for 'bf16' (the "
                   "section is skipped without it)")
    p.add_argument("--weights", type=Path, default=None, metavar="W",
                   help="weights for 'bf16' (default: random init, seed 0)")
    p.add_argument("--scene-size", type=int, default=None, metavar="N",
                   help="side of the generated scene in pixels (default 10980 on CUDA, 512 on "
                   "CPU, 256 with --quick)")
    p.add_argument("--io-size", type=int, default=None, metavar="N",
                   help="side of the generated scene of 'io' (default 4096; 1024 with --quick)")
    p.add_argument("--io-threads", type=int, nargs="+", default=None, metavar="N",
                   help="thread counts of 'io' (default 1, 2, 4, ... up to the cores)")
    p.add_argument("--inputs-dir", type=Path, default=None, metavar="DIR",
                   help="keep the generated scenes of 'scene' and 'io' in DIR and reuse them")
    p.add_argument("--features", type=int, default=256,
                   help="F of the model (default 256); smaller model for smoke tests")
    p.add_argument("--blocks", type=int, default=16,
                   help="B of the model (default 16); smaller model for smoke tests")


def run_benchmark(a: argparse.Namespace) -> int:
    """``dsen2cr benchmark``: :func:`dsen2cr.benchmark.run_benchmark`, printed as JSON (and
    written to ``--json``).

    Args:
        a: the arguments parsed by the parser of :func:`add_benchmark`.

    Returns:
        0.
    """
    from dsen2cr.benchmark import DEFAULT_SECTIONS
    from dsen2cr.benchmark import run_benchmark as benchmark
    from dsen2cr.io import atomic_output, guard_outputs

    guard_outputs({"json": a.json}, [a.realdata, a.weights], overwrite=a.overwrite)
    result = benchmark(
        a.device, quick=a.quick, sections=a.sections or DEFAULT_SECTIONS, precision=a.precision,
        speed=speed_options(a), ladder=a.ladder,
        realdata=a.realdata, weights=a.weights, scene_size=a.scene_size,
        io_size=a.io_size, features=a.features, blocks=a.blocks, readers=a.readers,
        io_threads=a.io_threads,
        inputs_dir=a.inputs_dir, progress=not a.quiet,
    )  # fmt: skip
    text = json.dumps(result, indent=2)
    if a.json is not None:
        with atomic_output(a.json) as tmp:
            tmp.write_text(text + "\n")
    print(text)
    return 0
