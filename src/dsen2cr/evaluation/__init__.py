"""Evaluation as the paper does it: patches of a split (Table 1, Figs. 6-8, 11) and large
scenes mosaicked from them (Section 4.4, Figs. 9, 10, 12), under a declared metric protocol.

* :mod:`dsen2cr.evaluation.patches` - :func:`evaluate` (``dsen2cr evaluate``), the Table 1
  writer :func:`format_table`;
* :mod:`dsen2cr.evaluation.scenes` - :func:`evaluate_scenes` (``dsen2cr evaluate --scenes``) and
  :func:`score_scene`;
* :mod:`dsen2cr.evaluation.report` - the identity baseline's name, units, JSON / CSV values.
"""

from dsen2cr.evaluation.patches import evaluate, format_table
from dsen2cr.evaluation.report import IDENTITY
from dsen2cr.evaluation.scenes import evaluate_scenes, score_scene
from dsen2cr.figures import pick_examples

__all__ = ["IDENTITY", "evaluate", "evaluate_scenes", "format_table", "pick_examples", "score_scene"]
