"""What several subcommands share: speed flags, the options a user actually gave, the types of
the declaring and running functions."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from dsen2cr.performance import SpeedOptions

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``ArgumentParser.add_subparsers`` returns: every ``add_<command>`` adds its parser to it."""

AddCommand: TypeAlias = Callable[[Subparsers], None]
"""An ``add_<command>`` function: declares one subcommand on the ``dsen2cr`` parser."""

RunCommand: TypeAlias = Callable[[argparse.Namespace], int]
"""A ``run_<command>`` function: the parsed arguments -> the Python call -> the exit status."""

DEVICE_HELP = "auto (default: CUDA when available, else the CPU), cpu, cuda or cuda:N"
"""One wording of the device option for every command."""


def register(p: argparse.ArgumentParser, run: RunCommand, **flags: str) -> None:
    """Make ``run`` the function of the subcommand ``p`` (called by :func:`dsen2cr.cli.main.main`
    with the parsed arguments).

    Args:
        p: the subcommand's parser.
        run: its module-level ``run_<command>`` function.
        **flags: library parameter -> command-line flag, for the parameters whose flag is not
            ``--<parameter>`` (read by :func:`dsen2cr.cli.main.flag_of`).
    """
    p.set_defaults(func=run, flags=flags, parser=p)


def command_parser(a: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the subcommand that parsed ``a`` (its usage errors are reported by it)."""
    parser = getattr(a, "parser", None)
    if not isinstance(parser, argparse.ArgumentParser):
        raise TypeError("arguments not parsed by a dsen2cr subcommand")
    return parser


def add_speed_options(p: argparse.ArgumentParser, where: str) -> None:
    """--compile, --readers, --no-channels-last (:class:`dsen2cr.performance.SpeedOptions`,
    and the reader threads of scene prediction)."""
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network first (tens of seconds; pays for large scenes "
                   "on a GPU)")
    p.add_argument("--readers", type=int, default=None, metavar="N",
                   help=f"input reader threads{where} (default 1 on CPU; on CUDA a quarter of the "
                   "CPU cores, 1 to 4)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="run the network in NCHW instead of the faster NHWC memory format")


def speed_options(a: argparse.Namespace) -> SpeedOptions:
    """The :class:`~dsen2cr.performance.SpeedOptions` of the flags of :func:`add_speed_options`."""
    from dsen2cr.performance import SpeedOptions

    return SpeedOptions(channels_last=a.channels_last, compile=a.compile)


def add_overwrite(p: argparse.ArgumentParser, what: str = "output files") -> None:
    """--overwrite: existing outputs are replaced only when asked for (as rasterio's ``rio``)."""
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace existing {what} (without it an existing output is an error)")


def given(a: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options among ``names`` that were given on the command line (not None), so that
    the library's defaults are the only defaults.

    Returns:
        name -> value; the values, of several types, are passed on as keyword arguments.
    """
    return {n: getattr(a, n) for n in names if getattr(a, n) is not None}


def require(p: argparse.ArgumentParser, given_flags: Sequence[tuple[str, object]]) -> None:
    """Fail as argparse does for missing required flags, for flags that are required only in
    some modes (e.g. not with ``--list-protocols`` or ``--summary``).

    Args:
        p: the subcommand's parser.
        given_flags: ``(flag, value)`` pairs; a value of None means the flag is missing.
    """
    missing = [flag for flag, value in given_flags if value is None]
    if missing:
        p.error(f"the following arguments are required: {', '.join(missing)}")
