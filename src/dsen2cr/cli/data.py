"""``dsen2cr synth-data`` and ``dsen2cr index`` (library: :mod:`dsen2cr.data`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dsen2cr.errors import DSen2CRError


def add_synth_data(sub: argparse._SubParsersAction) -> None:
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

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.data.synthetic import generate_dataset, preview_grid

        for flag, value, low in (("--rois", a.rois, 1), ("--patches", a.patches, 1), ("--size", a.size, 8)):
            if value < low:
                raise DSen2CRError(f"{flag} must be >= {low}, got {value}")
        root = generate_dataset(a.out, rois=a.rois, patches=a.patches, size=a.size, seed=a.seed,
                                progress=sys.stderr.isatty(), compress=a.compress)
        print(f"wrote {a.rois * a.patches} triplets to {root}")
        if a.preview is not None:
            preview_grid(root, a.preview)
            print(f"wrote {a.preview}")

    p.set_defaults(func=run)


def add_index(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="index a SEN12MS-CR root and print triplet counts",
        description="Build or refresh the index cache of a SEN12MS-CR root (published or "
        "flattened layout) and print per-split / per-season triplet counts and incomplete "
        "triplets as JSON. Python: dsen2cr.data.index_summary.",
    )
    p.add_argument("root", type=Path, help="dataset root folder")
    p.add_argument("--split-file", type=Path, default=None,
                   help="CSV (split,season,roi,patch) or DSen2-CR file list")
    p.add_argument("--refresh", action="store_true", help="re-walk even if the cache is valid")
    p.add_argument("--cache-dir", type=Path, default=None, help="folder of the index cache")

    def run(a: argparse.Namespace) -> None:
        from dsen2cr.data import index_summary

        summary = index_summary(a.root, split_file=a.split_file, refresh=a.refresh,
                                cache_dir=a.cache_dir)
        print(json.dumps(summary, indent=2))

    p.set_defaults(func=run)
