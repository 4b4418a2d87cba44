"""The main job, ``make demo`` / ``dsen2cr demo``: synthetic data -> training -> evaluation -> report.

On a fresh machine and in a few minutes of CPU time, the demo

1. generates a small synthetic SEN12MS-CR (:func:`dsen2cr.data.synthetic.generate_dataset`), with its
   own held-out test ROIs;
2. trains two small DSen2-CR models with the CARL loss, one with and one without the SAR input
   (:func:`dsen2cr.training.train`, the same code path as ``dsen2cr train``);
3. evaluates both and the ``identity`` baseline on the synthetic test split
   (:func:`dsen2cr.evaluation.evaluate`): its patches, and its ROIs mosaicked back into large
   scenes predicted tile by tile (``scenes=True``, paper Section 4.4);
4. writes a report folder: ``metrics.json`` (models ``dsen2cr_carl_sar``, ``dsen2cr_carl_nosar``,
   ``identity``), ``metrics.csv``, ``table.md``, ``band_nrmse.png``, ``examples.png``,
   ``scenes/`` (scene metrics and the paper's Figs. 9, 10, 12), ``training_curves.png``, the
   resolved training configs, and ``report.md`` / ``report.html`` (the same Markdown, rendered);
5. ends by printing where the weights of the two models are: they are for testing only
   (trained on synthetic data, they blur and tint real imagery; use the official weights for
   real scenes).

The demo checks that the models learnt something real on held-out data: the reconstruction MAE
under clouds must be ordered SAR < no SAR < identity. A violation is printed as a ``WARNING`` line
and recorded in the report, never hidden.

The demo models are much smaller than the paper's (features 256, blocks 16) and are trained for
minutes, not days, so their learning rate is higher than the paper's 7e-5 (see ``DEMO_LR``).
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import shutil
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

from dsen2cr.cloudmask import DEFAULT_THRESHOLD
from dsen2cr.data.synthetic import generate_dataset, roi_plan
from dsen2cr.evaluation import evaluate, format_table
from dsen2cr.figures import training_curves_plot
from dsen2cr.io import atomic_output, guard_outputs
from dsen2cr.metrics import METRIC_KEYS, MetricAccumulator, format_table1, get_protocol
from dsen2cr.training import train

SAR_NAME = "dsen2cr_carl_sar"
NOSAR_NAME = "dsen2cr_carl_nosar"

DEMO_LR = 1e-3
"""Initial learning rate of the demo models, annealed to 2 % by a cosine over the run
(:func:`cosine_lr_callback`). The paper's constant 7e-5 suits the full network (256 features,
16 blocks) trained for hundreds of thousands of steps; the tiny demo network trained for a few
hundred steps needs a larger step to get anywhere."""

_CONFIG_HEADER = (
    "# dsen2cr demo training config (written by dsen2cr.demo; train it again with\n"
    "#   dsen2cr train --config <this file>).\n"
    "# A tiny DSen2-CR (not the paper's 256 features x 16 blocks) trained for minutes on CPU:\n"
    f"# optim.lr = {DEMO_LR:g} instead of the paper's 7e-5, which suits the full model and\n"
    "# hundreds of thousands of steps; the small network needs the larger step to learn in a\n"
    "# few hundred steps. The demo also anneals the lr by a cosine to 2 % over the run\n"
    "# (dsen2cr.demo.cosine_lr_callback), which `dsen2cr train` alone does not do.\n"
)

DEMO_SETTINGS: dict[str, dict[str, Any]] = {
    "full": {
        "data": {"rois": 64, "patches": 5, "size": 64},
        "model": {"features": 32, "blocks": 6},
        "batch_size": 8,
        "crop_size": 64,
        "epochs": 36,
        "limit_train_batches": None,
        "examples": 4,
    },
    "quick": {
        "data": {"rois": 6, "patches": 2, "size": 32},
        "model": {"features": 8, "blocks": 1},
        "batch_size": 4,
        "crop_size": 32,
        "epochs": 2,
        "limit_train_batches": 2,
        "examples": 2,
    },
}
"""Demo sizes: ``full`` (``make demo``, minutes on 2 CPU cores) and ``quick`` (seconds; checks the
pipeline end to end, too small to learn)."""


def demo_config(
    name: str,
    sar: bool,
    data_root: str | os.PathLike[str],
    runs_dir: str | os.PathLike[str],
    quick: bool = False,
    device: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The training config of one demo model (a dict for :func:`dsen2cr.training.train`).

    Args:
        name: run name (``dsen2cr_carl_sar`` / ``dsen2cr_carl_nosar``).
        sar: whether the model takes the SAR input.
        data_root: the synthetic SEN12MS-CR root.
        runs_dir: folder the training runs are written to.
        quick: tiny settings for a pipeline check.
        device: ``"cpu"``, ``"cuda"`` or None (automatic).
        seed: random seed of initialisation and data order.
    """
    s = DEMO_SETTINGS["quick" if quick else "full"]
    cuda = device is not None and str(device).startswith("cuda")
    accelerator = "auto" if device is None else ("gpu" if cuda else "cpu")
    trainer: dict[str, Any] = {
        "max_epochs": s["epochs"],
        "accelerator": accelerator,
        # the same GPU that evaluation uses ("cuda:1" -> device index 1)
        "devices": [torch.device(str(device)).index or 0] if cuda else 1,
        "precision": "32-true",
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 5,
        "enable_model_summary": False,
    }
    if s["limit_train_batches"] is not None:
        trainer["limit_train_batches"] = s["limit_train_batches"]
        trainer["limit_val_batches"] = s["limit_train_batches"]
        # a log interval longer than the epoch makes Lightning warn that nothing is logged
        trainer["log_every_n_steps"] = min(5, s["limit_train_batches"])
    return {
        "model": {
            "name": "dsen2cr",
            "features": s["model"]["features"],
            "blocks": s["model"]["blocks"],
            "res_scale": 0.1,
            "sar": sar,
        },
        "loss": {"name": "carl", "lam": 1.0, "cloud_threshold": DEFAULT_THRESHOLD},
        "optim": {"lr": DEMO_LR},
        "data": {
            "root": str(data_root),
            "batch_size": s["batch_size"],
            "eval_batch_size": 2 * s["batch_size"],
            "num_workers": 0,
            "crop_size": s["crop_size"],
            "seed": seed,
        },
        "trainer": trainer,
        "out": {"dir": str(runs_dir), "name": name, "overwrite": True},
        "seed": seed,
    }


# --------------------------------------------------------------------------- lr schedule
class CosineLR(L.Callback):
    """Anneals every optimiser's lr by a cosine over the whole run (see :func:`cosine_lr_callback`)."""

    def __init__(self, final_fraction: float = 0.02) -> None:
        self.final_fraction = final_fraction
        self.base: list[list[float]] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:  # fmt: skip
        optimizers = trainer.optimizers
        if not self.base:
            self.base = [[g["lr"] for g in o.param_groups] for o in optimizers]
        total = max(1, int(trainer.estimated_stepping_batches))
        t = min(trainer.global_step / total, 1.0)
        f = self.final_fraction
        factor = f + (1.0 - f) * 0.5 * (1.0 + math.cos(math.pi * t))
        for o, base in zip(optimizers, self.base, strict=True):
            for g, lr0 in zip(o.param_groups, base, strict=True):
                g["lr"] = lr0 * factor


def cosine_lr_callback(final_fraction: float = 0.02) -> CosineLR:
    """A Lightning callback that anneals every optimiser's lr by a cosine over the whole run.

    Step ``k`` of ``K`` (``trainer.estimated_stepping_batches``) uses
    ``lr0 * (f + (1 - f) * (1 + cos(pi k / K)) / 2)`` with ``f = final_fraction``. The demo
    trains for minutes at a large learning rate; annealing it removes most of the step-to-step
    noise of the final weights, so that the comparison of the two models is not decided by the
    noise of the last epochs.
    """
    return CosineLR(final_fraction)


# --------------------------------------------------------------------------- training curves
def read_loss_curves(run_dir: str | os.PathLike[str]) -> dict[str, tuple[list[int], list[float]]]:
    """Loss per epoch from the Lightning CSV logs (``metrics.csv``) of a training run.

    Every logged column whose name contains ``loss`` is averaged per epoch (step-level columns are
    used only when no epoch-level column of the same quantity exists).

    Args:
        run_dir: the run folder (searched recursively for ``metrics.csv``).

    Returns:
        ``{column: (epochs, mean values)}``; empty when there is no CSV log.
    """
    files = sorted(Path(run_dir).rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        return {}
    sums: dict[str, dict[int, list[float]]] = {}
    with open(files[-1], newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                epoch = int(float(row.get("epoch") or "nan"))
            except ValueError:
                continue
            for key, value in row.items():
                if key is None or "loss" not in key or value in (None, ""):
                    continue
                try:
                    v = float(value)
                except ValueError:
                    continue
                if math.isfinite(v):
                    sums.setdefault(key, {}).setdefault(epoch, []).append(v)
    curves = {}
    for key, per_epoch in sums.items():
        if key.endswith("_step") and key[: -len("_step")] + "_epoch" in sums:
            continue
        epochs = sorted(per_epoch)
        curves[key] = (epochs, [sum(per_epoch[e]) / len(per_epoch[e]) for e in epochs])
    return curves


def _pretty_series(key: str) -> str:
    """``train/loss_epoch`` -> ``train loss``, ``val/loss`` -> ``val loss``."""
    for suffix in ("/loss_epoch", "_loss_epoch", "/loss", "_loss"):
        if key.endswith(suffix):
            return key[: -len(suffix)] + " loss"
    return key


# --------------------------------------------------------------------------- report
def check_ordering(result: dict[str, Any], key: str = "recon_mae") -> tuple[bool, str]:
    """Check ``SAR < no SAR < identity`` for a metric of the evaluation result.

    Returns:
        ``(ok, one-line message)`` with the three values and the relative margins.
    """
    m = result["models"]
    vals = [m.get(n, {}).get(key) for n in (SAR_NAME, NOSAR_NAME, "identity")]
    if any(v is None or not math.isfinite(v) for v in vals):
        return False, f"{key} is undefined for some model ({vals}); cannot check the ordering"
    sar, nosar, ident = vals
    ok = sar < nosar < ident
    msg = (
        f"{key}: SAR {sar:.4f} {'<' if sar < nosar else '>='} no-SAR {nosar:.4f} "
        f"{'<' if nosar < ident else '>='} identity {ident:.4f} "
        f"(SAR {100 * (1 - sar / nosar):+.1f} % vs no-SAR, no-SAR {100 * (1 - nosar / ident):+.1f} %"
        " vs identity)"
    )
    return ok, msg


TEST_WEIGHTS_NOTE = (
    "for testing only: trained on synthetic data, they blur and tint real imagery; for real "
    "scenes use the official weights (model_SARcarl.hdf5 and the other Keras files published "
    "with the paper, see the README's 'The model and its weights')"
)
"""What the demo's weights are good for, printed at its end and stated in its report."""

_FIGURES = [
    ("examples.png", "Example test patches (cf. paper Figs. 6-7)"),
    ("band_nrmse.png", "Per-band nRMSE over the test split (cf. paper Fig. 11)"),
    ("scenes/scene_examples.png", "Large test scenes mosaicked from the patches (cf. paper Fig. 9)"),
    ("scenes/scene_spectra.png", "Per-channel nRMSE and central-pixel spectra of the scenes (cf. paper Fig. 10)"),
    ("scenes/scene_60m.png", "60 m channels B1, B9, B10 of the scenes (cf. paper Fig. 12)"),
    ("training_curves.png", "Training and validation loss per epoch"),
]  # fmt: skip
"""The report's figures (file under the report folder, caption), in order; missing ones are left out."""

_HTML_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>dsen2cr demo report</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}
code{{background:#f3f3f3;padding:0 3px}}.ok{{color:#1a7f37}}.warning{{color:#cf222e}}</style>
</head><body>
{body}
</body></html>
"""


def markdown_to_html(text: str) -> str:
    """Render Markdown as HTML (Python-Markdown with tables), raw HTML in ``text`` escaped.

    Code spans, emphasis, links, images, tables, lists and headings are rendered; ``<`` and
    ``&`` in the text come out as ``&lt;`` and ``&amp;`` (the report quotes names and messages
    that are not HTML).
    """
    import markdown

    md = markdown.Markdown(extensions=["tables"], output_format="html")
    md.preprocessors.deregister("html_block")  # raw HTML is text here, escaped like the rest
    md.inlinePatterns.deregister("html")
    return str(md.convert(text))


@dataclass(frozen=True)
class _DemoResult:
    """What the report of one demo run says.

    Attributes:
        result: the evaluation's ``metrics.json`` content.
        table: the Table 1 Markdown (``table.md``).
        ordering: the reconstruction check (passed, message).
        settings: the demo's settings (:data:`DEMO_SETTINGS`).
        timings: wall seconds of each step.
        quick: tiny settings were used.
    """

    result: dict[str, Any]
    table: str
    ordering: tuple[bool, str]
    settings: dict[str, Any]
    timings: dict[str, float]
    quick: bool


def _report_markdown(out: Path, run: _DemoResult) -> tuple[list[str], str, list[str]]:
    """The report's Markdown blocks: those before the reconstruction check, the check, the rest."""
    ok, msg = run.ordering
    s, result, table = run.settings, run.result, run.table
    kinds = [k for _, _, k in roi_plan(s["data"]["rois"])]
    intro = (
        f"Synthetic SEN12MS-CR: {s['data']['rois']} ROIs ({kinds.count('train')} train, "
        f"{kinds.count('val')} val, {kinds.count('test')} held-out test) x "
        f"{s['data']['patches']} patches of {s['data']['size']} px. Two DSen2-CR models "
        f"(features {s['model']['features']}, blocks {s['model']['blocks']}) trained with the CARL "
        f"loss for {s['epochs']} epochs on {s['crop_size']} px crops, batch {s['batch_size']}, "
        f"NAdam lr {DEMO_LR:g} with cosine decay: with SAR (`{SAR_NAME}`) and without (`{NOSAR_NAME}`); "
        "`identity` returns the cloudy input."
    )
    if run.quick:
        intro += " **Quick mode: tiny settings that check the pipeline; no learning expected.**"
    time_line = ", ".join(f"{k} {v:.0f} s" for k, v in run.timings.items())
    head = [
        "# dsen2cr demo report",
        intro,
        f"Held-out test split: {result['images']} patches, device `{result['device']}`. "
        f"Wall time: {time_line}.",
        "## Metrics (paper Table 1 layout)",
        table.strip(),
    ]
    status = "OK" if ok else "WARNING: ordering violated"
    check = f"**Reconstruction check ({status}):** {msg}"
    tail = []
    scene_table = scenes_table(out / "scenes" / "metrics.json")
    if scene_table:
        tail += ["## Large scenes (paper Section 4.4)", scene_table.strip()]
    for f, c in _FIGURES:
        if (out / f).exists():
            tail += [f"## {c}", f"![{c}]({f})"]
    tail.append(
        "Files: `metrics.json` (means, per-band nRMSE), `metrics.csv` (per image), `table.md`, "
        "`scenes/` (scene predictions as COGs, mosaics, per-scene metrics), "
        "`configs/*.yaml` (training configs), `runs/` (checkpoints, logs, exported weights)."
    )
    tail.append(f"**The weights in `runs/` are {TEST_WEIGHTS_NOTE}.**")
    return head, check, tail


def _write_report(out: Path, run: _DemoResult) -> None:
    """Write ``report.md`` and the same report rendered as ``report.html``."""
    head, check, tail = _report_markdown(out, run)
    with atomic_output(out / "report.md") as tmp:
        tmp.write_text("\n\n".join([*head, check, *tail]) + "\n")
    body = "\n".join([
        markdown_to_html("\n\n".join(head)),
        f'<div class="{"ok" if run.ordering[0] else "warning"}">{markdown_to_html(check)}</div>',
        markdown_to_html("\n\n".join(tail)),
    ])  # fmt: skip
    with atomic_output(out / "report.html") as tmp:
        tmp.write_text(_HTML_PAGE.format(body=body))


def scenes_table(path: Path) -> str:
    """Table 1 layout of the scene metrics (``scenes/metrics.json``), mean over the scenes.

    Returns:
        Markdown (table and caption), or ``""`` when there is no scene result.
    """
    if not path.is_file():
        return ""
    res = json.loads(path.read_text())
    protocol = get_protocol(res.get("protocol", {}).get("name"))
    rows: dict[str, dict[str, Any]] = {}
    for name in res.get("models", []):
        acc = MetricAccumulator(averaging=protocol.averaging)
        for scene in res["scenes"].values():
            values = scene.get(name, {})
            acc.update({k: math.nan if values.get(k) is None else values[k] for k in METRIC_KEYS})
        rows[name] = {**acc.compute(), "protocol": protocol.name}
    if not rows:
        return ""
    n = len(res["scenes"])
    return (
        format_table1(rows) + "\n\n"
        f"Means over {n} test scenes, each scored on all its covered pixels; the models predict "
        "a whole scene tile by tile with `dsen2cr predict`'s exact tiled predictor. The scene "
        "mask takes its shadow statistics over the whole scene, so it can differ from the "
        "per-patch masks. Per-scene values: `scenes/metrics.json`, `scenes/metrics.csv`.\n"
    )


# --------------------------------------------------------------------------- the demo
def run_demo(
    out: str | os.PathLike[str] = "demo_out",
    quick: bool = False,
    device: str | None = None,
    seed: int = 0,
    keep_data: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the whole demo and write the report folder.

    Args:
        out: report folder (created; a folder that is not empty only with ``overwrite``, which
            replaces the previous demo outputs in it).
        quick: tiny settings (seconds) that exercise every step without real learning.
        device: ``"cpu"``, ``"cuda"`` or None (CUDA when available).
        seed: seed of the synthetic data, initialisation and data order.
        keep_data: keep the generated dataset under ``out/data`` (else it is deleted at the end).
        overwrite: run in an ``out`` that is not empty.

    Returns:
        ``{"metrics": <metrics.json content>, "ordering_ok": bool, "ordering": message,
        "report": path of report.md, "weights": {model: exported weights (for testing
        only, see TEST_WEIGHTS_NOTE)}, "seconds": {step: wall seconds}}``.
    """
    out = guard_outputs({"out": out}, overwrite=overwrite, folders=["out"])["out"]
    out.mkdir(parents=True, exist_ok=True)
    s = DEMO_SETTINGS["quick" if quick else "full"]
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    data_root = _generate_data(out, s, seed, timings)
    weights, curves = _train_models(out, data_root, quick, device, seed, timings)
    t0 = time.perf_counter()
    print("[demo] evaluating on the held-out test split", flush=True)
    result = evaluate(
        [weights[SAR_NAME], weights[NOSAR_NAME]],
        data_root,
        split="test",
        out_dir=out,
        names=[SAR_NAME, NOSAR_NAME],
        batch_size=2 * s["batch_size"],
        device=device,
        examples=s["examples"],
        overwrite=True,  # the demo's own folder, holding its data and runs
        scenes=True,
    )
    timings["evaluate"] = time.perf_counter() - t0
    if any(curves.values()):
        training_curves_plot(
            {n: c for n, c in curves.items() if c},
            out / "training_curves.png",
            title="Demo training: loss per epoch (scaled domain)",
        )
    timings["total"] = time.perf_counter() - t_start
    ordering = check_ordering(result)
    table_md = (out / "table.md").read_text()
    _write_report(out, _DemoResult(result, table_md, ordering, s, timings, quick))
    if not keep_data:
        shutil.rmtree(data_root, ignore_errors=True)
    summary = {
        "metrics": result,
        "ordering_ok": ordering[0],
        "ordering": ordering[1],
        "report": str(out / "report.md"),
        "weights": {name: str(path) for name, path in weights.items()},
        "seconds": timings,
    }
    with atomic_output(out / "demo.json") as tmp:
        tmp.write_text(
            json.dumps({k: v for k, v in summary.items() if k != "metrics"}, indent=2) + "\n"
        )
    _print_summary(out, format_table(result), ordering, timings["total"], weights)
    return summary


def _generate_data(
    out: Path, s: dict[str, Any], seed: int, timings: dict[str, float]
) -> Path:
    """The synthetic dataset of the demo under ``out/data`` (a previous one is replaced)."""
    t0 = time.perf_counter()
    data_root = out / "data"
    if data_root.exists():
        shutil.rmtree(data_root)
    print(
        f"[demo] generating synthetic SEN12MS-CR: {s['data']['rois']} ROIs x "
        f"{s['data']['patches']} patches of {s['data']['size']} px -> {data_root}",
        flush=True,
    )
    generate_dataset(data_root, seed=seed, **s["data"])
    timings["data"] = time.perf_counter() - t0
    return data_root


def _train_models(
    out: Path, data_root: Path, quick: bool, device: str | None, seed: int,
    timings: dict[str, float],
) -> tuple[dict[str, Path], dict[str, dict[str, tuple[list[int], list[float]]]]]:  # fmt: skip
    """Train the demo's two models (with and without SAR) under ``out/runs``; their configs go
    to ``out/configs``. Returns the exported weights and the loss curves of each model."""
    runs_dir = out / "runs"
    if runs_dir.exists():
        shutil.rmtree(runs_dir)
    weights: dict[str, Path] = {}
    curves: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for name, sar in ((SAR_NAME, True), (NOSAR_NAME, False)):
        t0 = time.perf_counter()
        config = demo_config(name, sar, data_root, runs_dir, quick=quick, device=device, seed=seed)
        with atomic_output(out / "configs" / f"{name}.yaml") as tmp:
            tmp.write_text(_CONFIG_HEADER + yaml.safe_dump(copy.deepcopy(config), sort_keys=False))
        print(f"[demo] training {name} ({'with' if sar else 'without'} SAR)", flush=True)
        res = train(config, callbacks=[cosine_lr_callback()])
        weights[name] = Path(res.weights)
        curves[name] = {
            _pretty_series(k): v
            for k, v in sorted(read_loss_curves(res.run_dir).items(), key=lambda kv: "val" in kv[0])
        }
        timings[f"train {name}"] = time.perf_counter() - t0
    return weights, curves


def _print_summary(
    out: Path, table: str, ordering: tuple[bool, str], total: float, weights: dict[str, Path]
) -> None:
    """The demo's last lines: the table, the reconstruction check, the report and the weights."""
    print(table, end="")
    ok, msg = ordering
    if ok:
        print(f"[demo] reconstruction check OK: {msg}")
    else:
        print(
            "[demo] WARNING: reconstruction check failed, expected recon MAE "
            f"SAR < no-SAR < identity; got {msg}"
        )
    print(f"[demo] done in {total:.0f} s. Report: {(out / 'report.md').resolve()}")
    print(f"[demo]                  HTML: {(out / 'report.html').resolve()}")
    for line in textwrap.wrap(f"weights, {TEST_WEIGHTS_NOTE}:", width=92):
        print(f"[demo] {line}")
    for name, path in weights.items():
        print(f"[demo]   {name}: {path.resolve()}")
