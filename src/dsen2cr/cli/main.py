"""The ``dsen2cr`` command line: the parser, and one line for every user error.

Every subcommand is a thin wrapper over a public Python function (named in its help), imported
lazily inside the subcommand so that ``dsen2cr --help`` is fast. The subcommands are declared by
the ``add_<name>`` functions of :mod:`dsen2cr.cli.scene`, :mod:`~dsen2cr.cli.models`,
:mod:`~dsen2cr.cli.data` and :mod:`~dsen2cr.cli.experiments`, listed in :data:`COMMANDS` by
workflow. User errors (:class:`~dsen2cr.errors.DSen2CRError`) are printed as one line on stderr
with exit status 2, never as a traceback; an :class:`~dsen2cr.errors.OptionError` names the
flag (``--tile``) where the library names the parameter (``tile``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from dsen2cr import __version__
from dsen2cr.cli import data, experiments, models, scene
from dsen2cr.errors import DSen2CRError, OptionError

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    scene.add_predict,
    scene.add_mask,
    models.add_convert_weights,
    models.add_info,
    data.add_synth_data,
    data.add_index,
    experiments.add_train,
    experiments.add_evaluate,
    experiments.add_demo,
    experiments.add_benchmark,
]
"""The subcommands, in the order ``dsen2cr --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``dsen2cr`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="dsen2cr",
        description="Cloud removal for Sentinel-2 with SAR-optical fusion (DSen2-CR).",
    )
    parser.add_argument("--version", action="version", version=f"dsen2cr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def flag_of(args: argparse.Namespace, option: str) -> str:
    """The command-line flag of a library parameter (``tile`` -> ``--tile``), per subcommand."""
    flags: dict[str, str] = getattr(args, "flags", None) or {}
    return flags.get(option, "--" + option.replace("_", "-"))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dsen2cr`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except OptionError as exc:
        print(f"dsen2cr {args.command}: error: {flag_of(args, exc.option)} {exc.problem}",
              file=sys.stderr)  # fmt: skip
        return 2
    except DSen2CRError as exc:
        print(f"dsen2cr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dsen2cr {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
