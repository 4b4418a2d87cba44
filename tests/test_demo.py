"""The demo pipeline (dsen2cr.demo): quick end-to-end run, loss curves, ordering check."""

from __future__ import annotations

import html
import itertools
import json
import re
from pathlib import Path

import pytest

from dsen2cr.demo import (
    NOSAR_NAME,
    SAR_NAME,
    _DemoResult,
    _write_report,
    check_ordering,
    markdown_to_html,
    read_loss_curves,
)


def visible_text(page: str) -> str:
    """What a browser shows of an HTML page: the tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_read_loss_curves_averages_per_epoch(tmp_path: Path) -> None:
    log = tmp_path / "run" / "csv" / "version_0" / "metrics.csv"
    log.parent.mkdir(parents=True)
    log.write_text(
        "epoch,step,train_loss_step,train_loss_epoch,val_loss,val/recon_mae\n"
        "0,0,1.0,,,\n0,1,0.8,,,\n0,1,,0.9,,\n0,1,,,0.7,0.1\n"
        "1,2,0.6,,,\n1,3,0.4,,,\n1,3,,0.5,,\n1,3,,,0.45,0.05\n"
    )
    curves = read_loss_curves(tmp_path / "run")
    assert set(curves) == {"train_loss_epoch", "val_loss"}
    assert curves["train_loss_epoch"] == ([0, 1], [0.9, 0.5])
    assert curves["val_loss"] == ([0, 1], [0.7, 0.45])
    assert read_loss_curves(tmp_path / "nothing") == {}


def test_check_ordering() -> None:
    def res(a: float, b: float, c: float) -> dict:
        return {"models": {SAR_NAME: {"recon_mae": a}, NOSAR_NAME: {"recon_mae": b},
                           "identity": {"recon_mae": c}}}  # fmt: skip

    ok, msg = check_ordering(res(0.01, 0.02, 0.05))
    assert ok and "SAR 0.0100 < no-SAR 0.0200 < identity 0.0500" in msg
    ok, msg = check_ordering(res(0.03, 0.02, 0.05))
    assert not ok and ">=" in msg
    assert not check_ordering(res(0.01, None, 0.05))[0]  # type: ignore[arg-type]


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dsen2cr.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "report.md" in printed and "reconstruction check" in printed
    for name in ("metrics.json", "metrics.csv", "table.md", "band_nrmse.png", "examples.png",
                 "training_curves.png", "report.md", "report.html", "demo.json",
                 "scenes/metrics.json", "scenes/scene_examples.png", "scenes/scene_spectra.png",
                 "scenes/scene_60m.png",
                 f"configs/{SAR_NAME}.yaml", f"configs/{NOSAR_NAME}.yaml"):  # fmt: skip
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {SAR_NAME, NOSAR_NAME, "identity"}
    assert metrics["split"] == "test" and metrics["images"] > 0
    for entry in metrics["models"].values():
        assert len(entry["band_nrmse"]) == 13 and "recon_mae" in entry
    report = (out / "report.md").read_text()
    assert "| dsen2cr_carl_sar |" in report and "![" in report
    assert "Reconstruction check" in report
    assert "## Large scenes" in report and "![" in report and "scenes/scene_spectra.png" in report
    page = (out / "report.html").read_text()
    assert "`" not in visible_text(page) and "**" not in visible_text(page)
    assert f"<code>{SAR_NAME}</code>" in page and "<table>" in page and "<th>Method</th>" in page
    assert '<img alt="Example test patches' in page and 'src="scenes/scene_60m.png"' in page
    summary = json.loads((out / "demo.json").read_text())
    assert set(summary) == {"ordering_ok", "ordering", "report", "weights", "seconds"}
    assert set(summary["weights"]) == {SAR_NAME, NOSAR_NAME}
    # the demo ends with where its weights are and what they are (not) good for
    lines = printed.strip().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("[demo] weights, "))
    note = " ".join(line.removeprefix("[demo]").strip() for line in lines[first:-2])
    assert note.startswith("weights, for testing only: trained on synthetic data")
    assert "blur and tint real imagery" in note and "official weights" in note
    for line, name in zip(lines[-2:], (SAR_NAME, NOSAR_NAME), strict=True):
        label, path = line.removeprefix("[demo]").strip().split(": ", 1)
        assert label == name and Path(path).is_file()
        assert Path(path).samefile(summary["weights"][name])


def test_cosine_lr_callback_anneals_from_lr0_to_final_fraction() -> None:
    from types import SimpleNamespace

    import torch

    from dsen2cr.demo import cosine_lr_callback

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    trainer = SimpleNamespace(optimizers=[opt], estimated_stepping_batches=10, global_step=0)
    cb = cosine_lr_callback(final_fraction=0.1)
    lrs = []
    for step in range(11):
        trainer.global_step = step
        cb.on_train_batch_start(trainer, None, None, step)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.1) and lrs[5] == pytest.approx(0.055)
    assert lrs[10] == pytest.approx(0.01)
    assert all(a >= b for a, b in itertools.pairwise(lrs))


def test_markdown_to_html_renders_the_report_subset_and_escapes_html() -> None:
    page = markdown_to_html(
        "# Title\n\nA `code <b>` span, *emphasis*, **strong** and [a link](https://x.org/?a=1&b=2)"
        " with <script>x</script> & 1 < 2.\n\n- one\n- two\n\n| A | B |\n|---|---|\n| `x` | 2 |\n"
    )
    assert "<h1>Title</h1>" in page and "<code>code &lt;b&gt;</code>" in page
    assert "<em>emphasis</em>" in page and "<strong>strong</strong>" in page
    assert '<a href="https://x.org/?a=1&amp;b=2">a link</a>' in page
    assert "<script>" not in page and "&lt;script&gt;" in page and "1 &lt; 2" in page
    assert "<ul>\n<li>one</li>" in page
    assert "<table>" in page and "<th>A</th>" in page and "<td><code>x</code></td>" in page


def test_report_html_renders_its_markdown(tmp_path: Path) -> None:
    """report.html is report.md rendered: no literal Markdown left, tables as tables."""
    (tmp_path / "examples.png").write_bytes(b"png")
    table = (f"| Method | MAE |\n|---|---|\n| {SAR_NAME} | 0.01 |\n| identity | 0.05 |\n\n"
             "Means over the `test` split.\n")  # fmt: skip
    settings = {"data": {"rois": 6, "patches": 2, "size": 32}, "model": {"features": 8, "blocks": 1},
                "epochs": 2, "crop_size": 32, "batch_size": 4}  # fmt: skip
    ordering = (False, "recon_mae: SAR 0.03 >= no-SAR 0.02 < identity 0.05")
    _write_report(tmp_path, _DemoResult({"images": 4, "device": "cpu"}, table, ordering, settings,
                                        {"total": 1.0}, quick=True))  # fmt: skip
    md = (tmp_path / "report.md").read_text()
    assert f"(`{SAR_NAME}`)" in md and "| identity | 0.05 |" in md and "![" in md
    assert "for testing only" in md
    page = (tmp_path / "report.html").read_text()
    text = visible_text(page)
    assert "`" not in text and "**" not in text and "|---|" not in text
    assert "<table>" in page and f"<td>{SAR_NAME}</td>" in page and "<code>test</code>" in page
    assert '<div class="warning"><p><strong>Reconstruction check (WARNING' in page
    assert "SAR 0.03 &gt;= no-SAR 0.02 &lt; identity 0.05" in page
    assert '<img alt="Example test patches (cf. paper Figs. 6-7)" src="examples.png"' in page
    assert "band_nrmse.png" not in page  # figures that were not drawn are left out
