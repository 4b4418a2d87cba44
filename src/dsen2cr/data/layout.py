"""SEN12MS-CR as published: seasons, ROI splits, folder layouts and file names.

Layouts
-------
*Published* (mediaTUM 1554803, as unpacked; the season folders may sit directly under the root or
one level deeper, any nesting works because files are recognised by name)::

    ROOT/ROIs1158_spring/ROIs1158_spring_s1/s1_106/ROIs1158_spring_s1_106_p30.tif
    ROOT/ROIs1158_spring/ROIs1158_spring_s2/s2_106/ROIs1158_spring_s2_106_p30.tif
    ROOT/ROIs1158_spring/ROIs1158_spring_s2_cloudy/s2_cloudy_106/ROIs1158_spring_s2_cloudy_106_p30.tif

A triplet is the three files with the same (season, ROI, patch), parsed from the file names with a
strict regular expression (ROI 1 never matches ROI 106). *Flattened* (original DSen2-CR code):
three folders ``s1``, ``s2_cloudFree``, ``s2_cloudy`` under the root holding identically named
files such as ``ROIs1158_spring_101_30.tif``.

Splits: the ROI split of the SEN12MS-CR-TS / UnCRtainTS loaders (:data:`TEST_ROIS`,
:data:`VAL_ROIS`; every other ROI is train), see :func:`default_split`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEASONS: dict[str, str] = {
    "spring": "ROIs1158_spring",
    "summer": "ROIs1868_summer",
    "fall": "ROIs1970_fall",
    "winter": "ROIs2017_winter",
}
"""Short season name -> SEN12MS-CR season folder / file-name prefix."""
SEASON_OF_FOLDER = {v: k for k, v in SEASONS.items()}
"""SEN12MS-CR season folder / file-name prefix -> short season name."""

TEST_ROIS: dict[str, tuple[int, ...]] = {
    "spring": (106, 123, 140, 31, 44),
    "summer": (119, 73),
    "fall": (139,),
    "winter": (108, 63),
}
"""Test ROIs per season (as in the SEN12MS-CR-TS and UnCRtainTS loaders)."""
VAL_ROIS: dict[str, tuple[int, ...]] = {
    "winter": (22, 107, 130, 84),
    "summer": (19, 80, 127, 17),
    "fall": (65,),
    "spring": (17,),
}
"""Validation ROIs per season; every other ROI is train."""

SPLITS = ("train", "val", "test", "all")
MODALITIES = ("s1", "s2", "s2_cloudy")
FLAT_FOLDERS = {"s1": "s1", "s2": "s2_cloudFree", "s2_cloudy": "s2_cloudy"}
"""Folder of each modality in the flattened (original DSen2-CR) layout."""

_SEASON_RE = "|".join(SEASONS.values())
PUBLISHED_NAME = re.compile(rf"^({_SEASON_RE})_(s1|s2|s2_cloudy)_([0-9]+)_p([0-9]+)\.tif$")
"""File names of the published layout: ``<season>_<s1|s2|s2_cloudy>_<roi>_p<patch>.tif``."""
FLAT_NAME = re.compile(rf"^({_SEASON_RE})_([0-9]+)_p?([0-9]+)\.tif$")
"""File names of the flattened layout: ``<season>_<roi>_<patch>.tif`` (or ``_p<patch>``)."""


@dataclass(frozen=True)
class Triplet:
    """One S1 / cloud-free S2 / cloudy S2 triplet.

    ``season`` is the short name (``"spring"``...; ``""`` and ``roi = patch = -1`` when a
    flattened-layout file name does not follow the SEN12MS-CR pattern).
    """

    season: str
    roi: int
    patch: int
    s1: str
    s2: str
    s2_cloudy: str


def default_split(season: str, roi: int) -> str | None:
    """``"test"``, ``"val"`` or ``"train"`` for an ROI of a season (``None`` for unknown season)."""
    if season not in SEASONS:
        return None
    if roi in TEST_ROIS[season]:
        return "test"
    if roi in VAL_ROIS[season]:
        return "val"
    return "train"


def parse_flat_name(name: str) -> tuple[str, int, int]:
    """``(season, roi, patch)`` of a flattened-layout file name (``("", -1, -1)`` if it has none)."""
    m = FLAT_NAME.match(name)
    if m is None:
        return "", -1, -1
    return SEASON_OF_FOLDER[m.group(1)], int(m.group(2)), int(m.group(3))


