"""``dsen2cr convert-weights`` and ``dsen2cr info`` (library: :mod:`dsen2cr.models.weights`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dsen2cr.cli.common import add_overwrite


def add_convert_weights(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-weights",
        help="convert weights (the authors' Keras HDF5, a checkpoint) to safetensors",
        description="Convert a weight file that dsen2cr reads (the authors' Keras 2.x HDF5 files "
        "model_SARcarl.hdf5 ... in either layout, or a training .ckpt) to the native safetensors "
        "format. Python: dsen2cr.models.convert_weights.",
    )
    p.add_argument("input", type=Path, help="Keras .hdf5/.h5, .ckpt or .safetensors weight file")
    p.add_argument("output", type=Path, help="output .safetensors file")
    add_overwrite(p, "output file")

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.models import convert_weights

        model = convert_weights(a.input, a.output, overwrite=a.overwrite)
        print(f"wrote {a.output}: {json.dumps(model.weight_record()[0])}")  # type: ignore[operator]

    p.set_defaults(func=run)


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="describe a weight file (provenance, architecture, parameters, training)",
        description="Print the provenance (what the weights were trained on, with which loss and "
        "inputs), format, architecture, parameter count, receptive field and training metadata "
        "of any weight file dsen2cr reads (safetensors, Keras .hdf5, .ckpt) as JSON. "
        "Python: dsen2cr.models.describe_weights.",
    )
    p.add_argument("weights", type=Path)

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.models import describe_weights

        print(json.dumps(describe_weights(a.weights), indent=2, default=str))

    p.set_defaults(func=run)
