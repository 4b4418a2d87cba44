"""The demo pipeline (dsen2cr.demo): quick end-to-end run, loss curves, ordering check."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from dsen2cr.demo import NOSAR_NAME, SAR_NAME, check_ordering, read_loss_curves


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
    summary = json.loads((out / "demo.json").read_text())
    assert set(summary) == {"ordering_ok", "ordering", "report", "seconds"}


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
