"""What several subcommands share: speed flags, the options a user actually gave."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

DEVICE_HELP = "auto (default: CUDA when available, else the CPU), cpu, cuda or cuda:N"
"""One wording of the device option for every command."""


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


def speed_options(a: argparse.Namespace) -> Any:
    """The :class:`~dsen2cr.performance.SpeedOptions` of the flags of :func:`add_speed_options`."""
    from dsen2cr.performance import SpeedOptions

    return SpeedOptions(channels_last=a.channels_last, compile=a.compile)


def add_overwrite(p: argparse.ArgumentParser, what: str = "output files") -> None:
    """--overwrite: existing outputs are replaced only when asked for (as rasterio's ``rio``)."""
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace existing {what} (without it an existing output is an error)")


def given(a: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options among ``names`` that were given on the command line (not None), so that
    the library's defaults are the only defaults."""
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
