"""Evaluation as the paper does it: patches of a split (Table 1, Figs. 6-8, 11) and large
scenes mosaicked from them (Section 4.4, Figs. 9, 10, 12), under a declared metric protocol.

* :mod:`dsen2cr.evaluation.patches` - :func:`evaluate` (``dsen2cr evaluate``), composed of the
  steps :func:`score_patches` (the rows), :func:`summarize_patches` (the means),
  :func:`write_patch_report` and :func:`patch_figures`; the Table 1 writer :func:`format_table`;
* :mod:`dsen2cr.evaluation.scenes` - :func:`evaluate_scenes` (``dsen2cr evaluate --scenes``, the
  sibling step of the patch evaluation) and :func:`score_scene`;
* :mod:`dsen2cr.evaluation.report` - the identity baseline's name, units, JSON / CSV values and
  the one writer of ``metrics.json`` / ``metrics.csv`` (:func:`write_report`).
"""

from dsen2cr.evaluation.patches import (
    PatchScores,
    evaluate,
    format_table,
    patch_figures,
    score_patches,
    summarize_patches,
    write_patch_report,
)
from dsen2cr.evaluation.report import IDENTITY, write_report
from dsen2cr.evaluation.scenes import evaluate_scenes, score_scene
from dsen2cr.figures import pick_examples

__all__ = [
    "IDENTITY",
    "PatchScores",
    "evaluate",
    "evaluate_scenes",
    "format_table",
    "patch_figures",
    "pick_examples",
    "score_patches",
    "score_scene",
    "summarize_patches",
    "write_patch_report",
    "write_report",
]
