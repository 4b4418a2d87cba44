"""``dsen2cr convert-weights`` and ``dsen2cr info`` (library: :mod:`dsen2cr.models.weights`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dsen2cr.cli.common import Subparsers, add_overwrite, register


def add_convert_weights(sub: Subparsers) -> None:
    """Declare ``dsen2cr convert-weights`` (:func:`run_convert_weights`)."""
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
    register(p, run_convert_weights)


def run_convert_weights(a: argparse.Namespace) -> int:
    """``dsen2cr convert-weights``: :func:`dsen2cr.models.convert_weights`; prints the written
    file and the network's config.

    Args:
        a: the arguments parsed by the parser of :func:`add_convert_weights`.

    Returns:
        0.
    """
    from dsen2cr.models import convert_weights

    model = convert_weights(a.input, a.output, overwrite=a.overwrite)
    print(f"wrote {a.output}: {json.dumps(model.weight_record()[0])}")
    return 0


def add_info(sub: Subparsers) -> None:
    """Declare ``dsen2cr info`` (:func:`run_info`)."""
    p = sub.add_parser(
        "info",
        help="describe a weight file (provenance, architecture, parameters, training)",
        description="Print the provenance (what the weights were trained on, with which loss and "
        "inputs), format, architecture, parameter count, receptive field and training metadata "
        "of any weight file dsen2cr reads (safetensors, Keras .hdf5, .ckpt) as JSON. "
        "Python: dsen2cr.models.describe_weights.",
    )
    p.add_argument("weights", type=Path)
    register(p, run_info)


def run_info(a: argparse.Namespace) -> int:
    """``dsen2cr info``: :func:`dsen2cr.models.describe_weights`, printed as JSON.

    Args:
        a: the arguments parsed by the parser of :func:`add_info`.

    Returns:
        0.
    """
    from dsen2cr.models import describe_weights

    print(json.dumps(describe_weights(a.weights), indent=2, default=str))
    return 0
