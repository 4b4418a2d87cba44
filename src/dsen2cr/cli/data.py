"""``dsen2cr synth-data``, ``dsen2cr index`` and ``dsen2cr mosaic`` (library:
:mod:`dsen2cr.data`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dsen2cr.cli.common import Subparsers, add_overwrite, register

if TYPE_CHECKING:
    from dsen2cr.data.mosaic import MosaicResult


# --------------------------------------------------------------------------- synth-data
def add_synth_data(sub: Subparsers) -> None:
    """Declare ``dsen2cr synth-data`` (:func:`run_synth_data`)."""
    p = sub.add_parser(
        "synth-data",
        help="write a synthetic SEN12MS-CR (published layout, georeferenced)",
        description="Generate a synthetic SEN12MS-CR in the published folder layout: per ROI a "
        "land-cover scene with plausible 13-band L1C spectra, S1 VV/VH from the same land cover, "
        "clouds (thick and thin, 0-100 % cover) with shadows, cut into 50 %-overlapping patches "
        "on a UTM grid; test and val ROIs included. Python: dsen2cr.data.synthetic.generate_dataset.",
    )
    p.add_argument("out", type=Path, help="output root folder")
    p.add_argument("--rois", type=int, default=8, help="number of ROIs (default 8)")
    p.add_argument("--patches", type=int, default=32, help="patches per ROI (default 32)")
    p.add_argument("--size", type=int, default=256, help="patch size in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--compress", default=None, help="GeoTIFF compression, e.g. zstd (default none)")
    p.add_argument("--preview", type=Path, default=None, metavar="PNG",
                   help="also write a PNG grid of a few triplets")
    add_overwrite(p, "files: write into a folder that is not empty")
    register(p, run_synth_data)


def run_synth_data(a: argparse.Namespace) -> int:
    """``dsen2cr synth-data``: :func:`dsen2cr.data.synthetic.generate_dataset`, then
    :func:`~dsen2cr.data.synthetic.preview_grid` with ``--preview``.

    Args:
        a: the arguments parsed by the parser of :func:`add_synth_data`.

    Returns:
        0.
    """
    from dsen2cr.data.synthetic import generate_dataset, preview_grid
    from dsen2cr.io import guard_outputs

    guard_outputs({"out": a.out, "preview": a.preview}, overwrite=a.overwrite, folders=["out"])
    root = generate_dataset(a.out, rois=a.rois, patches=a.patches, size=a.size, seed=a.seed,
                            progress=sys.stderr.isatty(), compress=a.compress,
                            overwrite=a.overwrite)  # fmt: skip
    print(f"wrote {a.rois * a.patches} triplets to {root}")
    if a.preview is not None:
        preview_grid(root, a.preview, overwrite=a.overwrite)
        print(f"wrote {a.preview}")
    return 0


# --------------------------------------------------------------------------- index
def add_index(sub: Subparsers) -> None:
    """Declare ``dsen2cr index`` (:func:`run_index`)."""
    p = sub.add_parser(
        "index",
        help="index a SEN12MS-CR root and print triplet counts",
        description="Build or refresh the index cache of a SEN12MS-CR root (published or "
        "flattened layout) and print per-split / per-season triplet counts and incomplete "
        "triplets as JSON. With --verify, also open every file and check its size, band count, "
        "dtype and that its last block decodes; write the list of bad files and exit with status "
        "1 when any is bad. Python: dsen2cr.data.index_summary, dsen2cr.data.verify.verify_dataset.",
    )
    p.add_argument("root", type=Path, help="dataset root folder")
    p.add_argument("--split-file", type=Path, default=None,
                   help="CSV (split,season,roi,patch), DSen2-CR file list or per-patch list")
    p.add_argument("--refresh", action="store_true", help="re-walk even if the cache is valid")
    p.add_argument("--cache-dir", type=Path, default=None, help="folder of the index cache")
    p.add_argument("--verify", action="store_true",
                   help="open every file and check it (finds truncated or corrupt downloads)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="threads checking files with --verify (default: CPU count, at most 8)")
    p.add_argument("--bad-list", type=Path, default=None, metavar="FILE",
                   help="where --verify writes the bad files (default: beside the index cache)")
    register(p, run_index)


def run_index(a: argparse.Namespace) -> int:
    """``dsen2cr index``: :func:`dsen2cr.data.index_summary` and, with ``--verify``,
    :func:`dsen2cr.data.verify.verify_dataset`; prints JSON.

    Args:
        a: the arguments parsed by the parser of :func:`add_index`.

    Returns:
        0, or 1 when ``--verify`` found a bad file (counted on stderr).
    """
    from dsen2cr.data import index_summary
    from dsen2cr.data.verify import check_workers

    if a.verify:
        check_workers(a.workers)  # before anything is written (the index cache)
    summary = index_summary(a.root, split_file=a.split_file, refresh=a.refresh,
                            cache_dir=a.cache_dir)
    if not a.verify:
        print(json.dumps(summary, indent=2))
        return 0
    from dsen2cr.data.verify import verify_dataset

    report = verify_dataset(a.root, workers=a.workers, bad_list=a.bad_list,
                            progress=sys.stderr.isatty())  # fmt: skip
    print(json.dumps({**summary, "verify": report}, indent=2))
    if report["bad"]:
        print(f"dsen2cr index: {report['bad']} bad file(s) of {report['files']}; list in "
              f"{report['bad_list']}", file=sys.stderr)  # fmt: skip
        return 1
    return 0


# --------------------------------------------------------------------------- mosaic
def add_mosaic(sub: Subparsers) -> None:
    """Declare ``dsen2cr mosaic`` (:func:`run_mosaic`)."""
    p = sub.add_parser(
        "mosaic",
        help="put the patches of each SEN12MS-CR ROI back together into large scenes",
        description="For every (season, ROI) of a split, place its patches by their "
        "georeferencing on their common grid and write OUT/<season folder>_<roi>_s2_cloudy.tif, "
        "_s2.tif and _s1.tif (tiled GeoTIFFs; nodata 0 for S2 and NaN for S1 where no patch "
        "lies). Where overlapping patches disagree the first patch is kept and the disagreement "
        "is reported. Memory is bounded by a row of patches. "
        "Python: dsen2cr.data.mosaic.mosaic_split.",
    )
    p.add_argument("root", type=Path, help="SEN12MS-CR root folder")
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="split whose ROIs are mosaicked (default test)")
    p.add_argument("--season", default=None, choices=["spring", "summer", "fall", "winter"],
                   help="only this season")
    p.add_argument("--roi", type=int, default=None, metavar="N", help="only this ROI number")
    p.add_argument("--split-file", type=Path, default=None,
                   help="split definition (CSV, DSen2-CR file list or per-patch list)")
    add_overwrite(p, "mosaics")
    register(p, run_mosaic, out="output")


def report_mosaic(scene: str, results: dict[str, MosaicResult]) -> None:
    """Print the line of one mosaicked scene: size, patches, coverage, disagreements.

    Args:
        scene: the scene's name.
        results: modality (``s2_cloudy``, ``s2``, ``s1``) -> what was written.
    """
    r = results["s2_cloudy"]
    bad = {m: x.disagreeing_pixels for m, x in results.items() if x.disagreements}
    note = (", disagreeing pixels: " + ", ".join(f"{m} {n}" for m, n in bad.items())
            if bad else "")  # fmt: skip
    print(f"{scene}: {r.width} x {r.height} px from {r.patches} patches, "
          f"{100 * r.covered_fraction:.1f} % covered{note}", flush=True)  # fmt: skip


def run_mosaic(a: argparse.Namespace) -> int:
    """``dsen2cr mosaic``: :func:`dsen2cr.data.mosaic.mosaic_split`, one line per scene
    (:func:`report_mosaic`).

    Args:
        a: the arguments parsed by the parser of :func:`add_mosaic`.

    Returns:
        0.
    """
    from dsen2cr.data.mosaic import mosaic_split

    results = mosaic_split(a.root, a.out, split=a.split, season=a.season, roi=a.roi,
                           split_file=a.split_file, overwrite=a.overwrite,
                           progress=sys.stderr.isatty(), on_scene=report_mosaic)  # fmt: skip
    print(f"wrote {3 * len(results)} mosaics of {len(results)} scene(s) to {a.out}")
    return 0
