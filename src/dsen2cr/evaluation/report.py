"""What every evaluation report shares: the baseline's name, units, how values are written, and
the one writer of ``metrics.json`` and ``metrics.csv``.

* :data:`IDENTITY` - the baseline that returns the cloudy input unchanged;
* :data:`UNITS` - the unit of every metric, recorded in each ``metrics.json``;
* :func:`json_value` - NaN (undefined) as ``null``; an infinite value stays a float, written
  as ``Infinity`` as Python's ``json`` does (the ``uncrtaints`` PSNR of a perfect image);
* :func:`csv_value` - undefined as an empty cell, numbers with six significant digits;
* :func:`write_report` - ``metrics.json`` (the summary, indented by 2) and ``metrics.csv`` (one
  row per scored item), written atomically, for the patch and the scene evaluation alike.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dsen2cr.io import atomic_output

__all__ = [
    "IDENTITY",
    "UNITS",
    "CsvRow",
    "JSONObject",
    "csv_value",
    "json_value",
    "write_csv",
    "write_json",
    "write_report",
]

IDENTITY = "identity"
"""Name of the baseline that returns the cloudy input unchanged."""

UNITS: dict[str, str] = {
    "mae": "TOA reflectance",
    "rmse": "TOA reflectance",
    "psnr": "dB",
    "sam": "degrees",
    "ssim": "unitless",
    "band_nrmse": "percent of each band's value range",
    "spectrum": "TOA reflectance",
}
"""Units of the metrics in ``metrics.json`` and ``metrics.csv``."""

JSONObject = dict[str, Any]
"""A JSON object (the content of a ``metrics.json``, or a part of it): its values are arbitrary
JSON values (numbers, strings, None, lists, objects)."""

CsvRow = Mapping[str, object]
"""One row of a ``metrics.csv``: column name -> value (a missing column is an empty cell)."""


def json_value(v: Any) -> Any:
    """A metric value for JSON: NaN (and numpy floats that are NaN) as None, lists element-wise.

    Args:
        v: a metric value (Python or numpy scalar, list or tuple of them, or any JSON value).

    Returns:
        The value as plain JSON (``None`` for NaN).
    """
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (list, dict)):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def csv_value(v: object) -> object:
    """A metric value for a CSV cell: None or NaN as ``""``, floats as ``%.6g`` (``inf`` too).

    Args:
        v: a metric value or a label (strings and integers are kept as they are).
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def write_json(path: str | os.PathLike[str], content: Mapping[str, Any]) -> None:
    """Write ``content`` as JSON indented by 2 with a final newline, atomically.

    Args:
        path: the ``.json`` file.
        content: JSON values (NaN already turned into None by :func:`json_value`).
    """
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(content, indent=2) + "\n")


def write_csv(
    path: str | os.PathLike[str], fields: Sequence[str], rows: Iterable[CsvRow]
) -> None:
    """Write a CSV table with a header row, every cell through :func:`csv_value`, atomically.

    Args:
        path: the ``.csv`` file.
        fields: the columns, in order; keys of a row that are not columns are left out.
        rows: the rows (a column missing from a row is an empty cell).
    """
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        for row in rows:
            writer.writerow([csv_value(row.get(k)) for k in fields])


def write_report(
    out_dir: str | os.PathLike[str],
    summary: Mapping[str, Any],
    fields: Sequence[str],
    rows: Iterable[CsvRow],
) -> None:
    """Write an evaluation's ``metrics.json`` and ``metrics.csv`` (the one report writer).

    Args:
        out_dir: the report folder (it exists).
        summary: the content of ``metrics.json`` (JSON values).
        fields: the columns of ``metrics.csv``.
        rows: one row per scored item (image and model, or scene and model).
    """
    out = Path(out_dir)
    write_json(out / "metrics.json", summary)
    write_csv(out / "metrics.csv", fields, rows)
