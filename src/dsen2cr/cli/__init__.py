"""The ``dsen2cr`` command line (``dsen2cr <command>``, also ``python -m dsen2cr.cli``)."""

from dsen2cr.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
