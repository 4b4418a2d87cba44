"""The ``dsen2cr`` command line: the parser, and one line for every user error.

Every subcommand is a thin wrapper over a public Python function (named in its help), imported
lazily inside the subcommand so that ``dsen2cr --help`` is fast. The subcommands are declared by
the ``add_<name>`` functions of :mod:`dsen2cr.cli.scene`, :mod:`~dsen2cr.cli.models`,
:mod:`~dsen2cr.cli.data` and :mod:`~dsen2cr.cli.experiments`, listed in :data:`COMMANDS` by
workflow. Each registers (:func:`dsen2cr.cli.common.register`) the module-level
``run_<name>`` function that maps the parsed arguments to the Python call and returns the exit
status; :func:`main` calls it.

Errors and signals, one mechanism for every subcommand:

* a user error (:class:`~dsen2cr.errors.DSen2CRError`, also one raised in a data-loader worker
  process, and an operating-system error such as a folder that cannot be written) is one line on
  stderr and exit status 2, never a traceback; messages name flags (``--tile``) where the
  library names parameters (``tile``): :func:`dsen2cr.errors.cli_flags` maps every parameter a
  message mentions to its flag (:func:`flag_of`), here, in one place;
* SIGTERM (what SLURM and Kubernetes send) is handled like SIGINT: it interrupts the work, so
  every staging file is removed on the way out (exit status 143; SIGINT 130). SIGKILL cannot be
  handled: the next run writing into the same folder removes what it left
  (:func:`dsen2cr.io.remove_stale_staging`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from dsen2cr import __version__
from dsen2cr.cli import data, experiments, models, scene
from dsen2cr.cli.common import AddCommand
from dsen2cr.errors import DSen2CRError, cli_flags, one_line

COMMANDS: list[AddCommand] = [
    scene.add_predict,
    scene.add_mask,
    models.add_convert_weights,
    models.add_info,
    data.add_synth_data,
    data.add_index,
    data.add_mosaic,
    experiments.add_train,
    experiments.add_evaluate,
    experiments.add_table,
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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the work unwinds as on Ctrl-C."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While the command runs, SIGTERM interrupts it like SIGINT (main thread only)."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread of the interpreter: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def error_message(args: argparse.Namespace, exc: BaseException) -> str:
    """The one line a user error is reported with (without the ``dsen2cr <command>:`` prefix),
    parameters named by their flags (:func:`dsen2cr.errors.cli_flags`)."""
    with cli_flags(lambda name: flag_of(args, name)):
        if isinstance(exc, OSError) and not isinstance(exc, DSen2CRError):
            where = f": {exc.filename}" if exc.filename else ""
            return f"{exc.strerror or one_line(exc)}{where}"
        return one_line(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dsen2cr`` console script; returns the exit status."""
    # GDAL's own error lines (e.g. "_tiffWriteProc: No space left on device"), printed by GDAL
    # or logged through rasterio: a command reports every failure as its one line instead
    # (set CPL_LOG to a file to keep GDAL's messages)
    os.environ.setdefault("CPL_LOG", os.devnull)
    logging.getLogger("rasterio").setLevel(logging.CRITICAL)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with _sigterm_interrupts(), cli_flags(lambda name: flag_of(args, name)):
            status = args.func(args)  # warnings name flags too
    except (DSen2CRError, OSError) as exc:
        print(f"dsen2cr {args.command}: error: {error_message(args, exc)}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"dsen2cr {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"dsen2cr {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)
