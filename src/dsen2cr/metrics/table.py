"""The paper's Table 1: its columns, its published values and a Markdown writer.

Rows of a table may only be compared when their metrics were computed under the same
:class:`~dsen2cr.metrics.Protocol`; :func:`format_table1` refuses to put rows of different
protocols side by side.

:func:`read_result` reads the ``metrics.json`` of ``dsen2cr evaluate`` for a table and checks its
shape (:func:`check_result`), so that a wrong file is one clear error, not a crash half-way.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from dsen2cr.errors import DataError, DSen2CRError, InputNotFoundError
from dsen2cr.metrics.protocols import DEFAULT_PROTOCOL, get_protocol, protocol_names

__all__ = [
    "PAPER_PROTOCOL",
    "PAPER_TABLE1",
    "TABLE1_COLUMNS",
    "MixedProtocolsError",
    "TableColumn",
    "check_result",
    "format_table1",
    "read_result",
    "row_protocol",
]


@dataclass(frozen=True)
class TableColumn:
    """One column of the paper's Table 1.

    Attributes:
        part: ``"a"`` (pixel-wise metrics) or ``"b"`` (spectral and structural fidelity).
        metric: metric name as printed, e.g. ``"MAE"``.
        region: ``"Target"``, ``"Reprod"`` or ``"Recon"``.
        key: the metric key in :func:`~dsen2cr.metrics.image_metrics` /
            :meth:`~dsen2cr.metrics.MetricAccumulator.compute`.
        unit: unit as printed (``"TOA"`` reflectance, ``"dB"``, ``"°"`` or ``""``).
        fmt: format spec of the paper's precision, e.g. ``".4f"``.
        higher_is_better: direction of improvement.
    """

    part: str
    metric: str
    region: str
    key: str
    unit: str
    fmt: str
    higher_is_better: bool


TABLE1_COLUMNS: tuple[TableColumn, ...] = (
    TableColumn("a", "MAE", "Target", "target_mae", "TOA", ".4f", False),
    TableColumn("a", "MAE", "Reprod", "reprod_mae", "TOA", ".4f", False),
    TableColumn("a", "MAE", "Recon", "recon_mae", "TOA", ".4f", False),
    TableColumn("a", "RMSE", "Target", "target_rmse", "TOA", ".4f", False),
    TableColumn("a", "PSNR", "Target", "target_psnr", "dB", ".1f", True),
    TableColumn("b", "SAM", "Target", "target_sam", "°", ".2f", False),
    TableColumn("b", "SAM", "Reprod", "reprod_sam", "°", ".2f", False),
    TableColumn("b", "SAM", "Recon", "recon_sam", "°", ".2f", False),
    TableColumn("b", "SSIM", "Target", "target_ssim", "", ".3f", True),
)
"""Layout of the paper's Table 1 (parts a and b, in the paper's column order)."""

PAPER_PROTOCOL = DEFAULT_PROTOCOL
"""The protocol whose definitions the paper states (whole 256 px patches, no clipping)."""


TableRow: TypeAlias = dict[str, float | str]
"""A row of :data:`PAPER_TABLE1`: metric key -> value, and ``"protocol"`` -> its name."""


def _paper_row(values: Sequence[float]) -> TableRow:
    row: TableRow = {c.key: v for c, v in zip(TABLE1_COLUMNS, values, strict=True)}
    row["protocol"] = PAPER_PROTOCOL
    return row


PAPER_TABLE1: dict[str, TableRow] = {
    "DSen2-CR on CARL": _paper_row((0.0290, 0.0204, 0.0266, 0.0366, 28.7, 8.15, 3.94, 8.04, 0.875)),
    "DSen2-CR on T": _paper_row((0.0270, 0.0398, 0.0266, 0.0343, 29.3, 8.07, 6.33, 8.13, 0.878)),
    "DSen2-CR on CARL w/o SAR": _paper_row(
        (0.0306, 0.0188, 0.0282, 0.0387, 27.6, 8.98, 3.86, 8.97, 0.870)
    ),
    "DSen2-CR on T w/o SAR": _paper_row(
        (0.0284, 0.0389, 0.0281, 0.0361, 28.8, 8.97, 6.17, 9.05, 0.873)
    ),
    "pix2pix": _paper_row((0.0292, 0.0210, 0.0274, 0.0424, 28.2, 13.68, 13.93, 12.67, 0.844)),
}
"""The paper's Table 1 results on the SEN12MS-CR test split, keyed by method then metric key
(plus ``"protocol"``: :data:`PAPER_PROTOCOL`)."""


class MixedProtocolsError(DSen2CRError, ValueError):
    """Rows computed under different metric protocols were put in one table."""


def row_protocol(row: Mapping[str, object]) -> str:
    """The protocol name of a table row: its ``"protocol"`` entry (a name or a dict with
    ``"name"``), the default protocol when it has none."""
    value = row.get("protocol", DEFAULT_PROTOCOL)
    if isinstance(value, Mapping):
        value = value.get("name", DEFAULT_PROTOCOL)
    return get_protocol(str(value)).name


def format_table1(rows: Mapping[str, Mapping[str, object]]) -> str:
    """Lay out results like the paper's Table 1 as one Markdown table.

    Args:
        rows: method name -> metric dict (e.g. :meth:`MetricAccumulator.compute` output or a
            row of :data:`PAPER_TABLE1`), optionally with a ``"protocol"`` entry (default
            ``"dsen2cr"``). Missing or NaN values print as ``n/a``, infinite ones as ``inf``.

    Returns:
        Markdown text: a header row ``Method | MAE Target (TOA) | ...`` and one row per method.

    Raises:
        MixedProtocolsError: the rows were computed under different protocols.
    """
    protocols = {name: row_protocol(values) for name, values in rows.items()}
    if len(set(protocols.values())) > 1:
        groups: dict[str, list[str]] = {}
        for name, proto in protocols.items():
            groups.setdefault(proto, []).append(name)
        detail = "; ".join(f"{p}: {', '.join(n)}" for p, n in sorted(groups.items()))
        raise MixedProtocolsError(
            "refusing to put results of different metric protocols side by side "
            f"({detail}); evaluate them again with one {{protocol}}", protocol=None
        )
    header = ["Method"]
    for col in TABLE1_COLUMNS:
        unit = f" ({col.unit})" if col.unit else ""
        header.append(f"{col.metric} {col.region}{unit}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, values in rows.items():
        cells = [str(name)]
        for col in TABLE1_COLUMNS:
            v = values.get(col.key)
            if isinstance(v, (int, float)) and not math.isnan(float(v)):
                cells.append(_cell(float(v), col.fmt))
            else:
                cells.append("n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: float, fmt: str) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, fmt)


# --------------------------------------------------------------------------- evaluation results
def read_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the ``metrics.json`` of ``dsen2cr evaluate`` for a table, its shape checked.

    Args:
        path: the ``metrics.json`` file, or the evaluation's output folder holding it.

    Returns:
        The parsed result (``{"models": {name: {metric: value}}, "protocol": ...}``).

    Raises:
        DataError: the file is missing, not JSON, or not of the shape :func:`check_result`
            accepts (the file and the problem are named).
    """
    p = Path(path)
    if p.is_dir():
        if not (p / "metrics.json").is_file():
            raise DataError(f"folder {p} holds no metrics.json (expected a metrics.json of "
                            "dsen2cr evaluate or the folder it wrote)")  # fmt: skip
        p = p / "metrics.json"
    if not p.is_file():
        raise InputNotFoundError(f"evaluation result not found: {p}")
    not_json = DataError(f"{p} is not a JSON file (expected the metrics.json of dsen2cr evaluate)")
    try:
        with open(p, "rb") as fh:  # binary data (a GeoTIFF...) is refused before it is read whole
            head = fh.read(1 << 16)
            looks_json = b"\0" not in head  # no NUL in JSON text; most binary files have one
            raw = head + fh.read() if looks_json else b""
    except OSError as exc:
        raise DataError(f"cannot read evaluation result {p}: {exc.strerror or exc}") from None
    if not looks_json:
        raise not_json
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise not_json from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DataError(f"{p} is not valid JSON ({exc}); expected the metrics.json of dsen2cr "
                        "evaluate") from None  # fmt: skip
    return check_result(data, p)


def check_result(data: object, source: str | os.PathLike[str]) -> dict[str, Any]:
    """Check that ``data`` has the shape of an evaluation result a table is made of.

    Accepted: a JSON object with ``"models"``, an object of at least one model name -> an
    object of metrics in which every Table 1 key present (:data:`TABLE1_COLUMNS`) is a number
    or null, at least one of them present; and an optional ``"protocol"``, a known protocol
    name or an object whose ``"name"`` is one. Other entries (``band_nrmse``, ``weights``...)
    are not looked at.

    Args:
        data: the parsed ``metrics.json``.
        source: its file, named in the errors.

    Returns:
        ``data``.

    Raises:
        DataError: a shape other than the accepted one (the first problem is named).
    """

    def refuse(problem: str) -> DataError:
        return DataError(f"{source} is not the metrics.json of dsen2cr evaluate: {problem}")

    if not isinstance(data, dict):
        raise refuse(f"it holds a JSON {_json_type(data)}, not an object")
    models = data.get("models")
    if models is None:
        raise refuse("it has no 'models' object")
    if not isinstance(models, dict):
        raise refuse(f"its 'models' is a JSON {_json_type(models)}, not an object")
    if not models:
        raise refuse("its 'models' lists no model")
    keys = [c.key for c in TABLE1_COLUMNS]
    for name, entry in models.items():
        if not isinstance(entry, dict):
            raise refuse(f"model {name!r} is a JSON {_json_type(entry)}, not an object of metrics")
        if not any(k in entry for k in keys):
            raise refuse(f"model {name!r} has none of the metrics of Table 1 ({', '.join(keys)})")
        for k in keys:
            v = entry.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise refuse(f"model {name!r} has {k} = {json.dumps(v)[:40]}, not a number")
    proto = data.get("protocol", DEFAULT_PROTOCOL)
    name = proto.get("name", DEFAULT_PROTOCOL) if isinstance(proto, dict) else proto
    if not isinstance(name, str) or name.strip().lower() not in protocol_names():
        raise refuse(f"its protocol {json.dumps(name)[:40]} is not one of "
                     f"{', '.join(protocol_names())}")  # fmt: skip
    return data


def _json_type(value: object) -> str:
    """The JSON type name of a parsed value (``list`` -> ``array``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )
