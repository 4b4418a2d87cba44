"""Typed training configs: files, overrides, defaults per family, validation, the Trainer's
arguments. Every bad key or value is one ConfigError naming the key."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml

from dsen2cr.errors import ConfigError, DSen2CRError
from dsen2cr.training import FAMILIES, TrainConfig, load_config
from dsen2cr.training.config import DSen2CRLoss, DSen2CRModel, Pix2PixModel

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_load_config_file_overrides_and_types(tmp_path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"model": {"blocks": 4}, "optim": {"lr": "1e-4"}}))
    cfg = load_config(
        path,
        ["trainer.max_epochs=3", "model.sar=false", "optim.betas=[0.8, 0.99]", "optim.eps=1e-7",
         "data.root=/data/SEN12MS-CR", "trainer.gradient_clip_val=0.5"],
    )  # fmt: skip
    assert isinstance(cfg, TrainConfig) and cfg.family is FAMILIES["dsen2cr"]
    assert cfg.model == DSen2CRModel(blocks=4, sar=False)
    assert cfg.optim.lr == pytest.approx(1e-4) and isinstance(cfg.optim.eps, float)
    assert cfg.optim.betas == (0.8, 0.99)
    assert cfg.optim.momentum_decay == pytest.approx(4e-3)
    assert cfg.trainer.max_epochs == 3 and cfg.trainer.extra == {"gradient_clip_val": 0.5}
    assert cfg.data.root == "/data/SEN12MS-CR" and cfg.data.batch_size == 16
    assert cfg.loss == DSen2CRLoss(name="carl", lam=1.0, cloud_threshold=0.2)
    assert cfg.out.name == "exp"  # the file stem
    # a dict works too; pix2pix gets its own defaults
    p2p = load_config({"model": {"name": "pix2pix"}})
    assert isinstance(p2p.model, Pix2PixModel) and p2p.speed is None
    assert p2p.optim.lr == pytest.approx(2e-4) and p2p.optim.betas == (0.5, 0.999)
    assert p2p.data.crop_size == 256 and p2p.trainer.max_epochs == 10
    assert p2p.out.name == "pix2pix"


def test_to_dict_round_trips_through_yaml(tmp_path) -> None:
    cfg = load_config(CONFIGS / "dsen2cr_carl_sar.yaml", ["trainer.gradient_clip_val=1.0"])
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    again = load_config(yaml.safe_load(text))
    assert again == cfg
    assert again.to_dict()["trainer"]["gradient_clip_val"] == 1.0  # extra Trainer args kept
    assert again.to_dict()["optim"]["betas"] == [0.9, 0.999]  # plain lists, not tuples
    assert load_config(cfg) is cfg  # a TrainConfig passes through


@pytest.mark.parametrize(
    ("config", "overrides", "message"),
    [
        ({"model": {"blocks": 2}}, ["trainer.max_epochs"], "key.sub=value"),
        ({"model": {"blokcs": 2}}, [], "model.blokcs"),
        ({"loss": {"name": "l2"}}, [], "loss.name"),
        ({"model": {"name": "unet"}}, [], "model.name"),
        ({"optimiser": {}}, [], "optimiser"),
        ({"optim": {"lr": "fast"}}, [], "optim.lr"),
        ({"model": {"name": "pix2pix", "sar": False}}, [], "SAR"),
        ({}, ["data.batch_size=0"], r"data.batch_size must be an integer >= 1, got 0"),
        ({}, ["data.batch_size=2.5"], r"data.batch_size must be an integer"),
        ({}, ["data.num_workers=-1"], "data.num_workers"),
        ({}, ["data.on_error=ignore"], "data.on_error must be one of raise, skip"),
        ({}, ["trainer.max_epoch=3"], "trainer.max_epoch: not a lightning.Trainer argument"),
        ({}, ["trainer.logger=false"], "trainer.logger is set by dsen2cr train"),
        ({}, ["trainer.precision=bf17"], "trainer.precision"),
        ({}, ["model.sar=maybe"], "model.sar must be true or false"),
        ({}, ["optim.betas=[0.9]"], "optim.betas"),
        ({}, ["optim.lr=0"], "optim.lr must be a number > 0"),
        ({}, ["speed.precision=bf16"], "speed.precision"),
        ({"model": {"name": "pix2pix"}}, ["speed.compile=true"], "'speed'"),
        ({"model": {"name": "pix2pix"}}, ["data.crop_size=100"], "multiple of 2\\*\\*model.num_downs"),
        ({}, ["out.name=a/b"], "out.name"),
        ({"data": 3}, [], "'data' must be a mapping"),
        ({"model": {"features": 8}}, ["model.features.x=1"], "not a section"),
    ],
)
def test_load_config_errors(config, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_config(config, overrides)
    assert "\n" not in str(err.value)


def test_load_config_missing_and_invalid_file(tmp_path) -> None:
    with pytest.raises(DSen2CRError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(DSen2CRError, match="not valid YAML") as err:
        load_config(bad)
    assert "\n" not in str(err.value)


def test_table1_configs() -> None:
    rows = {
        "dsen2cr_carl_sar": ("carl", True),
        "dsen2cr_l1_sar": ("l1", True),
        "dsen2cr_carl_nosar": ("carl", False),
        "dsen2cr_l1_nosar": ("l1", False),
    }
    for name, (loss, sar) in rows.items():
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert (cfg.loss.name, cfg.model.sar) == (loss, sar)
        assert (cfg.model.features, cfg.model.blocks) == (256, 16)  # type: ignore[union-attr]
        assert cfg.data.batch_size == 16 and cfg.data.crop_size == 128
        assert asdict(cfg.optim) == {"lr": 7e-5, "betas": (0.9, 0.999), "eps": 1e-8,
                                     "momentum_decay": 4e-3}  # fmt: skip
        assert cfg.out.name == name and cfg.data.root is None
    p2p = load_config(CONFIGS / "pix2pix.yaml")
    assert isinstance(p2p.model, Pix2PixModel) and p2p.data.crop_size == 256
    assert p2p.model.num_downs == 8 and p2p.loss.lambda_l1 == 100.0  # type: ignore[union-attr]
    assert p2p.trainer.max_epochs == 10


def test_trainer_kwargs() -> None:
    kw = load_config({}, ["trainer.devices=2"]).trainer.lightning_kwargs()
    assert kw["strategy"] == "ddp" and kw["devices"] == 2
    assert "limit_train_batches" not in kw  # None -> Lightning's default
    if not torch.cuda.is_available():
        assert kw["precision"] == "32-true"
    kw = load_config({}, ["trainer.num_nodes=4", "trainer.precision=bf16-mixed"]).trainer.lightning_kwargs()
    assert kw["strategy"] == "ddp" and kw["precision"] == "bf16-mixed"
    assert load_config({}).trainer.lightning_kwargs()["strategy"] == "auto"
    assert load_config({}, ["trainer.devices=[0,1]"]).trainer.lightning_kwargs()["strategy"] == "ddp"
    kw = load_config({}).trainer.lightning_kwargs()
    assert kw["benchmark"] is True  # cuDNN autotuning (Lightning's)
    det = load_config({}, ["trainer.deterministic=true"]).trainer.lightning_kwargs()
    assert "benchmark" not in det and det["deterministic"] is True
