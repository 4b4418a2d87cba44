"""The paper's Table 1: its columns, its published values and a Markdown writer.

Rows of a table may only be compared when their metrics were computed under the same
:class:`~dsen2cr.metrics.Protocol`; :func:`format_table1` refuses to put rows of different
protocols side by side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dsen2cr.errors import DSen2CRError
from dsen2cr.metrics.protocols import DEFAULT_PROTOCOL, get_protocol

__all__ = [
    "PAPER_PROTOCOL",
    "PAPER_TABLE1",
    "TABLE1_COLUMNS",
    "MixedProtocolsError",
    "TableColumn",
    "format_table1",
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


def _paper_row(values: Sequence[float]) -> dict[str, Any]:
    row: dict[str, Any] = {c.key: v for c, v in zip(TABLE1_COLUMNS, values, strict=True)}
    row["protocol"] = PAPER_PROTOCOL
    return row


PAPER_TABLE1: dict[str, dict[str, Any]] = {
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


def row_protocol(row: Mapping[str, Any]) -> str:
    """The protocol name of a table row: its ``"protocol"`` entry (a name or a dict with
    ``"name"``), the default protocol when it has none."""
    value = row.get("protocol", DEFAULT_PROTOCOL)
    if isinstance(value, Mapping):
        value = value.get("name", DEFAULT_PROTOCOL)
    return get_protocol(str(value)).name


def format_table1(rows: Mapping[str, Mapping[str, Any]]) -> str:
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
            f"({detail}); evaluate them again with one --protocol"
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
            ok = isinstance(v, (int, float)) and not math.isnan(float(v))
            cells.append(_cell(float(v), col.fmt) if ok else "n/a")  # type: ignore[arg-type]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: float, fmt: str) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, fmt)
