"""Training: the DSen2-CR LightningModule, resume, export, checkpoints read by the loader, CLI.

Tiny models (F = 8, B = 2) on tiny in-memory scenes (32 x 32, made with dsen2cr.data.synthetic) on the
CPU; every Lightning run here takes about a second.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from dsen2cr import losses, scaling
from dsen2cr.cli import main
from dsen2cr.data.datamodule import TensorDataModule
from dsen2cr.data.dataset import collate
from dsen2cr.data.synthetic import generate_dataset, make_scene
from dsen2cr.errors import DSen2CRError, WeightsError
from dsen2cr.models import DSen2CR, load_weights
from dsen2cr.performance import SpeedOptions
from dsen2cr.training import DSen2CRModule, load_config, train
from dsen2cr.training import base as training_base
from tests.helpers import needs_cuda
from tests.models.test_keras import random_weights, write_keras  # Keras-layout file writer


def scene_tensors(n: int = 4, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """``n`` synthetic scenes as scaled tensors: optical/target (n, 13, s, s), sar (n, 2, s, s)."""
    scenes = [make_scene(size, size, seed=seed + i, cloud_cover=0.5) for i in range(n)]
    return {
        "optical": torch.stack([torch.from_numpy(scaling.s2_to_scaled(s["s2_cloudy"])) for s in scenes]),
        "sar": torch.stack([torch.from_numpy(scaling.s1_to_scaled(s["s1"])) for s in scenes]),
        "target": torch.stack([torch.from_numpy(scaling.s2_to_scaled(s["s2"])) for s in scenes]),
    }


def nhwc(model: torch.nn.Module):
    """``model`` run as the training module runs it (NHWC weights and inputs): the same kernels,
    so the same bits (NCHW and NHWC convolutions differ in float round-off on some CPUs)."""
    model.to(memory_format=torch.channels_last)
    return lambda optical, sar: model(optical.contiguous(memory_format=torch.channels_last),
                                      sar.contiguous(memory_format=torch.channels_last))


def tiny_config(tmp_path: Path, name: str = "run", **sections) -> dict:
    cfg = {
        "model": {"name": "dsen2cr", "features": 8, "blocks": 2},
        "optim": {"lr": 1e-3},
        "data": {"batch_size": 4},
        "trainer": {
            "max_epochs": 2,
            "accelerator": "cpu",
            "precision": "32-true",
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "log_every_n_steps": 1,
            "num_sanity_val_steps": 0,
        },
        "out": {"dir": str(tmp_path / "runs"), "name": name},
        "seed": 0,
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


@pytest.fixture(scope="module")
def data() -> dict[str, torch.Tensor]:
    return scene_tensors()


def datamodule(data: dict[str, torch.Tensor], batch_size: int = 4) -> TensorDataModule:
    return TensorDataModule(data, batch_size=batch_size, shuffle=False)


# ----------------------------------------------------------------------------- training
def test_tiny_model_loss_falls_and_exports(tmp_path, data) -> None:
    cfg = tiny_config(tmp_path, trainer={"max_epochs": 12})
    res = train(cfg, datamodule=datamodule(data))
    losses_ = [h["train_loss"] for h in res.history]
    assert [h["epoch"] for h in res.history] == list(range(12))
    assert losses_[-1] < 0.7 * losses_[0], losses_
    assert res.history[-1]["val_loss"] < res.history[0]["val_loss"]
    for key in ("val_target_mae", "val_target_psnr", "val_recon_mae", "val_reprod_mae"):
        assert np.isfinite(res.history[-1][key]), key

    # run folder: resolved config, checkpoints, logs
    assert yaml.safe_load((res.run_dir / "config.yaml").read_text()) == res.config.to_dict()
    assert res.last_checkpoint == res.run_dir / "checkpoints" / "last.ckpt"
    assert res.best_checkpoint is not None and res.best_checkpoint.is_file()
    assert list((res.run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    (csv_file,) = (res.run_dir / "csv").rglob("metrics.csv")
    import csv

    rows = list(csv.DictReader(csv_file.open()))
    assert sum(bool(r["train/loss_step"]) for r in rows) == 12  # one per step (1 step per epoch)
    epoch_losses = [float(r["train/loss_epoch"]) for r in rows if r["train/loss_epoch"]]
    assert epoch_losses == pytest.approx(losses_, rel=1e-6)  # the global epoch mean

    # exported weights = the best checkpoint, loadable by DSen2CR.from_pretrained
    assert res.weights == res.run_dir / "weights.safetensors"
    model = DSen2CR.from_pretrained(res.weights)
    info = model.training_info
    assert info["loss"] == "carl" and info["sar"] is True and info["name"] == "run"
    assert info["config"] == res.config.to_dict()
    best = torch.load(res.best_checkpoint, map_location="cpu", weights_only=True)
    assert info["epochs"] == best["epoch"] + 1
    assert info["val_loss"] == pytest.approx(min(h["val_loss"] for h in res.history))
    with torch.no_grad():
        expected = res.module(data["optical"], data["sar"])
        assert torch.equal(nhwc(model)(data["optical"], data["sar"]), expected)
        module = DSen2CRModule(res.config)
        module.load_state_dict(best["state_dict"])
        assert torch.equal(module.eval()(data["optical"], data["sar"]), expected)


def test_speed_settings(data, monkeypatch) -> None:
    cfg = load_config({"model": {"features": 8, "blocks": 2}})
    assert cfg.speed == SpeedOptions(channels_last=True, compile=False)
    fast = DSen2CRModule(cfg).eval()
    assert fast.model.head.weight.is_contiguous(memory_format=torch.channels_last)
    plain = DSen2CRModule(load_config(cfg, ["speed.channels_last=false"])).eval()
    assert plain.model.head.weight.is_contiguous()
    plain.load_state_dict(fast.state_dict())
    with torch.no_grad():
        y_fast = fast(data["optical"], data["sar"])
        y_plain = plain(data["optical"], data["sar"])
    assert y_fast.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y_fast, y_plain, rtol=1e-5, atol=1e-6)

    old = cfg.to_dict()  # a checkpoint's config from before the speed section existed
    del old["speed"]
    assert DSen2CRModule(old).channels_last is True

    calls = []
    monkeypatch.setattr(DSen2CR, "compile", lambda self, *a, **k: calls.append(self))
    DSen2CRModule(cfg).configure_model()
    assert calls == []
    compiled = DSen2CRModule(load_config(cfg, ["speed.compile=true"]))
    compiled.configure_model()
    compiled.configure_model()  # Lightning may call the hook again: compile once
    assert calls == [compiled.model]


@needs_cuda
def test_training_step_makes_no_host_sync() -> None:
    """Mask, forward (bf16), CARL, backward and NAdam queue on the GPU without waiting for it."""
    dev = torch.device("cuda")
    batch = {k: v.to(dev) for k, v in scene_tensors(n=2, size=64).items()}
    module = DSen2CRModule(load_config({"model": {"features": 16, "blocks": 2}})).to(dev)
    opt = module.configure_optimizers()

    def step() -> torch.Tensor:
        mask = module.cloud_mask(batch, batch["optical"])
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = module(batch["optical"], batch["sar"])
        loss = module.compute_loss(pred, batch["target"], batch["optical"], mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    step()  # first step: optimiser state allocation, cuDNN autotuning
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses_ = [step() for _ in range(3)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(v).item() for v in losses_)


class CaptureRestored(L.Callback):
    """Records the optimiser state and epoch once Lightning has restored a checkpoint."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch = trainer.current_epoch
        self.step = trainer.global_step
        self.state = {
            k: {n: t.clone() if torch.is_tensor(t) else t for n, t in v.items()}
            for k, v in trainer.optimizers[0].state_dict()["state"].items()
        }


def test_resume_restores_optimizer_and_epoch(tmp_path, data) -> None:
    cfg = tiny_config(tmp_path, name="resume")
    first = train(cfg, datamodule=datamodule(data, batch_size=2))
    assert [h["epoch"] for h in first.history] == [0, 1]
    saved = torch.load(first.last_checkpoint, map_location="cpu", weights_only=True)
    assert saved["epoch"] == 1

    # starting over in the same folder must be explicit
    with pytest.raises(DSen2CRError, match="resume='last'"):  # Python names the parameter
        train(cfg, datamodule=datamodule(data))

    capture = CaptureRestored()
    second = train(
        cfg, ["trainer.max_epochs=3"], datamodule=datamodule(data, batch_size=2),
        resume="last", callbacks=[capture],
    )  # fmt: skip
    assert capture.epoch == 2 and capture.step == saved["global_step"] == 4
    state = saved["optimizer_states"][0]["state"]
    assert set(capture.state) == set(state) and len(state) == len(list(first.module.parameters()))
    for k, v in state.items():
        for name, tensor in v.items():
            assert torch.equal(torch.as_tensor(capture.state[k][name]), torch.as_tensor(tensor)), name
    assert [h["epoch"] for h in second.history] == [2]
    assert torch.load(second.last_checkpoint, weights_only=True)["epoch"] == 2
    assert DSen2CR.from_pretrained(second.weights).training_info["epochs"] in (1, 2, 3)

    with pytest.raises(DSen2CRError, match="no checkpoint"):
        train(tiny_config(tmp_path, name="fresh"), datamodule=datamodule(data), resume="last")
    with pytest.raises(DSen2CRError, match="not found"):
        train(cfg, datamodule=datamodule(data), resume=tmp_path / "missing.ckpt")
    # out.overwrite starts over
    again = train(cfg, ["out.overwrite=true", "trainer.max_epochs=1"], datamodule=datamodule(data))
    assert [h["epoch"] for h in again.history] == [0]


@pytest.mark.parametrize("loss", ["carl", "l1"])
def test_configured_loss_is_used(tmp_path, data, monkeypatch, loss) -> None:
    calls = {"carl": 0, "l1": 0, "mask": 0}
    real_carl, real_l1, real_mask = losses.carl_loss, losses.l1_loss, training_base.binary_mask

    def carl(*args, **kwargs):
        calls["carl"] += 1
        pred, mask = args[0], args[3]
        assert mask.shape == (pred.shape[0], 1, *pred.shape[-2:]) and mask.dtype == torch.float32
        return real_carl(*args, **kwargs)

    def l1(*args, **kwargs):
        calls["l1"] += 1
        return real_l1(*args, **kwargs)

    def mask(image, threshold=0.2, *args, **kwargs):
        calls["mask"] += 1
        assert threshold == 0.3 and image.shape[1] == 13 and image.max() <= 10000.0
        return real_mask(image, threshold, *args, **kwargs)

    monkeypatch.setattr(losses, "carl_loss", carl)
    monkeypatch.setattr(losses, "l1_loss", l1)
    monkeypatch.setattr(training_base, "binary_mask", mask)
    cfg = tiny_config(tmp_path, loss={"name": loss, "cloud_threshold": 0.3},
                      trainer={"max_epochs": 1, "limit_val_batches": 0})  # fmt: skip
    train(cfg, datamodule=datamodule(data))
    other = "l1" if loss == "carl" else "carl"
    assert calls[loss] == 1 and calls[other] == 0
    assert calls["mask"] == (1 if loss == "carl" else 0)


def test_batch_mask_takes_precedence(data) -> None:
    module = DSen2CRModule(load_config(tiny_config(Path("."))))
    given = torch.zeros(4, 1, 32, 32)
    given[:, :, :8] = 1
    batch = {**data, "mask": given}
    assert torch.equal(module.cloud_mask(batch, data["optical"]), given)
    computed = module.cloud_mask(data, data["optical"])
    assert computed.shape == (4, 1, 32, 32) and set(computed.unique().tolist()) <= {0.0, 1.0}


def test_empty_batches_from_skip_mode_are_skipped(data) -> None:
    module = DSen2CRModule(load_config(tiny_config(Path("."))))
    empty = collate([None, None])  # every sample of the batch was skipped (on_error="skip")
    assert module.training_step(empty, 0) is None
    module.on_validation_epoch_start()
    module.validation_step(empty, 0)
    assert module._val_acc.keys == []
    module.validation_step(data, 1)
    assert "loss" in module._val_acc.keys


def test_no_sar_model(tmp_path, data) -> None:
    cfg = tiny_config(tmp_path, name="nosar", model={"sar": False}, loss={"name": "l1"},
                      trainer={"max_epochs": 1})  # fmt: skip
    res = train(cfg, datamodule=datamodule(data))
    model = load_weights(res.weights)
    assert model.uses_sar is False and model.name == "nosar" and model.sar_channels == 0
    with torch.no_grad():
        out = model(data["optical"], data["sar"])
        assert torch.equal(out, model(data["optical"], torch.zeros_like(data["sar"])))
    assert model.training_info["loss"] == "l1" and model.training_info["sar"] is False


# ----------------------------------------------------------------------------- the one loader
def test_load_weights_formats(tmp_path, data) -> None:
    res = train(tiny_config(tmp_path, name="fmt", trainer={"max_epochs": 1}), datamodule=datamodule(data))
    with torch.no_grad():
        expected = res.module(data["optical"], data["sar"])
        for path in (res.weights, res.best_checkpoint, res.last_checkpoint):
            model = load_weights(path)
            assert model.uses_sar and model.name == "fmt" and not model.training
            assert torch.equal(nhwc(model)(data["optical"], data["sar"]), expected), path

    # the authors' Keras HDF5 layout (writer from the Keras-weights tests)
    kernels, biases = random_weights(features=4, blocks=1, sar=2, seed=3)
    h5 = write_keras(tmp_path / "model_SARcarl.hdf5", kernels, biases)
    model = load_weights(h5)
    assert model.uses_sar and model.name == "model_SARcarl" and model.config["features"] == 4

    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "missing.safetensors")
    other = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(other), metadata={"architecture": "ResNet"})
    with pytest.raises(WeightsError, match="not a dsen2cr weight file"):
        load_weights(other)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        load_weights(junk)


# ----------------------------------------------------------------------------- CLI and real data
def test_cli_train_errors(tmp_path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path)))
    assert main(["train", "--config", str(cfg)]) == 2
    assert "data.root=/path/to/SEN12MS-CR" in capsys.readouterr().err
    assert main(["train", "--config", str(cfg), f"data.root={tmp_path / 'nowhere'}"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "none.yaml")]) == 2
    assert main(["train", "--config", str(cfg), "--resume", "last"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "Traceback" not in err


def test_cli_train_on_generated_dataset(tmp_path, capsys) -> None:
    root = generate_dataset(tmp_path / "data", rois=4, patches=4, size=32, progress=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path, name="cli", data={"crop_size": 16})))
    argv = ["train", "--config", str(cfg), "--devices", "1", "--precision", "32-true",
            f"data.root={root}", "data.num_workers=0"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epochs_trained"] == 2 and Path(summary["weights"]).is_file()
    assert np.isfinite(summary["last_epoch"]["val_loss"])
    assert "val_recon_mae" in summary["last_epoch"] or "val_target_mae" in summary["last_epoch"]
    assert main([*argv[:3], "--resume", "last", *argv[3:], "trainer.max_epochs=3"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epochs_trained"] == 1 and summary["last_epoch"]["epoch"] == 2


class WarnsOnce(L.Callback):
    """Warns a real warning at the start of training (the console must keep it)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        warnings.warn("a real FutureWarning from the run", FutureWarning, stacklevel=1)


def test_console_has_one_bar_and_no_lightning_ads_or_deprecation(tmp_path, data, capsys) -> None:
    """Lightning's litlogger tip, its GPU / TPU lines and the LeafSpec deprecation its pytree code
    triggers are dropped; its other lines, real warnings and the epoch bar are kept."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    lightning_log = logging.getLogger("lightning.pytorch")  # where Lightning's lines are printed
    lightning_log.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(tiny_config(tmp_path, trainer={"enable_progress_bar": True}),
                  datamodule=datamodule(data), callbacks=[WarnsOnce()])  # fmt: skip
    finally:
        lightning_log.removeHandler(handler)
    printed = capsys.readouterr()
    logged = [r.getMessage() for r in records]
    warned = [str(w.message) for w in caught]
    text = "\n".join([*logged, *warned, printed.out, printed.err])
    assert any("`Trainer.fit` stopped" in line for line in logged)  # Lightning still speaks
    assert "a real FutureWarning from the run" in warned
    for noise in ("Tip:", "litlogger", "GPU available", "TPU available", "LeafSpec"):
        assert noise not in text, noise
    assert "Epoch 1" in printed.out and "Validation" not in printed.out  # one bar: the epochs
    assert not logging.getLogger("lightning.pytorch.utilities.rank_zero").filters  # removed


@pytest.mark.slow
def test_validation_metrics_merge_across_processes(data) -> None:
    """Two DDP processes (gloo, CPU) give the same val metrics as one process."""
    cfg = load_config(tiny_config(Path(".")))
    results = {}
    for devices, strategy in ((1, "auto"), (2, "ddp_spawn")):
        torch.manual_seed(0)
        module = DSen2CRModule(cfg)
        trainer = L.Trainer(
            accelerator="cpu", devices=devices, strategy=strategy, logger=False,
            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        )  # fmt: skip
        # 4 images, 1 per batch: each process validates 2 (no padding duplicates)
        results[devices] = trainer.validate(module, datamodule=datamodule(data, batch_size=1),
                                            verbose=False)[0]  # fmt: skip
    single, merged = results[1], results[2]
    assert set(single) == set(merged) and "val/recon_mae" in single and "val/loss" in single
    for key, value in single.items():
        assert merged[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
