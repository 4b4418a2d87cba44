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

Sub = "argparse._SubParsersAction[argparse.ArgumentParser]"


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


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_mask,
    _add_convert_weights,
    _add_info,
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
