"""pix2pix baseline training (paper Section 4.3): the training step, the lr schedule across a
resume, generator files and checkpoints read by the one loader. Tiny widths (ngf = ndf = 8) on
32 x 32 crops (num_downs = 5)."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from dsen2cr import scaling
from dsen2cr.data.datamodule import TensorDataModule
from dsen2cr.errors import WeightsError
from dsen2cr.models import DSen2CR, Pix2PixPredictor, load_weights
from dsen2cr.models.pix2pix import lr_factor
from dsen2cr.training import Pix2PixModule, load_config, train


def tensors(n: int = 4, size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    optical = torch.rand(n, 13, size, size, generator=g) * 2.0
    return {
        "optical": optical,
        "sar": torch.rand(n, 2, size, size, generator=g) * 2.0,
        "target": (optical * 0.6 + 0.1).clamp(0, 5),
    }


def tiny_config(tmp_path, name: str = "p2p", **trainer) -> dict:
    return {
        "model": {"name": "pix2pix", "ngf": 8, "ndf": 8, "num_downs": 5},
        "optim": {"n_epochs_init": 1, "n_epochs_decay": 2},
        "data": {"batch_size": 4, "crop_size": 32},
        "trainer": {
            "max_epochs": 1,
            "accelerator": "cpu",
            "precision": "32-true",
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": 1,
            **trainer,
        },
        "out": {"dir": str(tmp_path / "runs"), "name": name},
    }


def test_training_step_updates_both_networks_and_schedule(tmp_path) -> None:
    data = tensors()
    shapes: list[tuple[int, ...]] = []
    lrs: list[list[float]] = []

    class Spy(L.Callback):
        def on_train_start(self, trainer, module) -> None:
            self.g0 = [p.detach().clone() for p in module.generator.parameters()]
            self.d0 = [p.detach().clone() for p in module.discriminator.parameters()]
            module.discriminator.register_forward_pre_hook(lambda m, a: shapes.append(tuple(a[0].shape)))

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            lrs.append([opt.param_groups[0]["lr"] for opt in trainer.optimizers])

    spy = Spy()
    res = train(tiny_config(tmp_path, max_epochs=3, limit_val_batches=1),
                datamodule=TensorDataModule(data, batch_size=4), callbacks=[spy])  # fmt: skip
    module = res.module
    assert isinstance(module, Pix2PixModule) and module.automatic_optimization is False
    changed_g = [not torch.equal(a, b) for a, b in zip(spy.g0, module.generator.parameters(), strict=True)]
    changed_d = [not torch.equal(a, b) for a, b in zip(spy.d0, module.discriminator.parameters(), strict=True)]
    assert all(changed_g) and all(changed_d)
    # every D call sees concat(SAR 2, cloudy 13, real or fake 13)
    assert shapes and all(s[1] == 28 for s in shapes)
    # lr per epoch: 1 epoch at 2e-4, then 1 - max(0, e + 1 - 1) / 3
    expected = [2e-4 * lr_factor(e, 1, 2) for e in range(3)]
    assert [g for g, _ in lrs] == pytest.approx(expected) and [d for _, d in lrs] == pytest.approx(expected)
    assert expected[1] == pytest.approx(2e-4 * 2 / 3)
    for key in ("train_loss", "val_loss", "val_target_mae"):
        assert key in res.history[-1]

    # resuming restores the schedule: epoch 3 of a 1 + 3 schedule runs at 2e-4 * 1/4
    lrs.clear()
    cfg = tiny_config(tmp_path, max_epochs=4, limit_val_batches=1)
    cfg["optim"]["n_epochs_decay"] = 3
    train(cfg, datamodule=TensorDataModule(data, batch_size=4), resume="last", callbacks=[spy])
    assert [g for g, _ in lrs] == pytest.approx([2e-4 * lr_factor(3, 1, 3)])


def test_predictor_roundtrip_and_domains(tmp_path) -> None:
    data = tensors()
    res = train(tiny_config(tmp_path, max_epochs=1), datamodule=TensorDataModule(data, batch_size=4))
    assert res.weights == res.run_dir / "generator.safetensors"
    pred = Pix2PixPredictor.from_pretrained(res.weights)
    assert pred.uses_sar and pred.name == "p2p" and not pred.training
    with torch.no_grad():
        out = pred(data["optical"], data["sar"])
        # scaled domain in [0, 5] and equal to the module's generator mapped back
        module = res.module.eval()
        gen = module(data["optical"], data["sar"])
        assert torch.allclose(out, scaling.s2_to_scaled(scaling.pix2pix_to_s2(gen)), atol=1e-6)
        assert out.min() >= 0 and out.max() <= 5
        for path in (res.best_checkpoint, res.last_checkpoint):
            other = load_weights(path)
            assert isinstance(other, Pix2PixPredictor) and other.name == "p2p"
            assert torch.equal(other(data["optical"], data["sar"]), out)
        same = load_weights(res.weights)
        assert torch.equal(same(data["optical"], data["sar"]), out)
        # sizes that are not multiples of 2**num_downs are padded and cropped back
        odd = pred(data["optical"][:, :, :20, :27], data["sar"][:, :, :20, :27])
        assert odd.shape == (4, 13, 20, 27)
    assert pred.training_info["model"] == "pix2pix" and pred.training_info["epochs"] == 1

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(WeightsError):
        Pix2PixPredictor.from_pretrained(bad)
    with pytest.raises(WeightsError, match="not found"):
        Pix2PixPredictor.from_pretrained(tmp_path / "none.safetensors")
    native = DSen2CR(features=4, blocks=1).save_pretrained(tmp_path / "native.safetensors")
    with pytest.raises(WeightsError, match="not a Pix2PixUNet"):
        Pix2PixPredictor.from_pretrained(native)


def test_inputs_mapped_to_pix2pix_domain() -> None:
    module = Pix2PixModule(load_config({"model": {"name": "pix2pix", "ngf": 4, "ndf": 4, "num_downs": 5}}))
    seen = {}
    module.generator.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    optical = torch.full((1, 13, 32, 32), 5.0)  # 10000 DN -> +1
    sar = torch.zeros(1, 2, 32, 32)  # VV -25 dB, VH -32.5 dB -> both clip to -25 -> -1
    module.eval()(optical, sar)
    x = seen["x"]
    assert x.shape[1] == 15
    assert torch.allclose(x[:, :13], torch.ones(1)) and torch.allclose(x[:, 13:], -torch.ones(1))
