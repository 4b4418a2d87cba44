"""DSen2CR architecture, initialisation, receptive field, native weight files and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from dsen2cr import __version__, cli
from dsen2cr.errors import WeightsError
from dsen2cr.models import DSen2CR, ResidualBlock, count_parameters
from dsen2cr.scaling import NORMALIZATION


def functional_forward(model: DSen2CR, optical: torch.Tensor, sar: torch.Tensor | None):
    """Issue 2, section 2, written with torch.nn.functional from the model's raw tensors."""
    x = torch.cat([optical, sar], dim=1) if sar is not None else optical
    sd = model.state_dict()

    def conv(t: torch.Tensor, key: str) -> torch.Tensor:
        return F.conv2d(t, sd[f"{key}.weight"], sd[f"{key}.bias"], stride=1, padding=1)

    h = F.relu(conv(x, "head"))
    for i in range(model.blocks):
        h = h + model.res_scale * conv(F.relu(conv(h, f"body.{i}.conv1")), f"body.{i}.conv2")
    return conv(h, "tail") + optical


def random_inputs(sar: int, batch: int = 2, h: int = 7, w: int = 9, dtype=torch.float32):
    optical = torch.rand(batch, 13, h, w, dtype=dtype) * 2.5
    s1 = torch.rand(batch, sar, h, w, dtype=dtype) * 2.0 if sar else None
    return optical, s1


# ----------------------------------------------------------------------------- architecture


def test_parameter_counts_of_the_paper_configuration() -> None:
    with torch.device("meta"):
        with_sar, without_sar = DSen2CR(), DSen2CR(sar_channels=0)
    assert count_parameters(with_sar) == 18_947_341
    assert count_parameters(without_sar) == 18_942_733
    assert with_sar.config == {"features": 256, "blocks": 16, "res_scale": 0.1,
                               "sar_channels": 2, "optical_channels": 13}  # fmt: skip
    assert with_sar.receptive_field_radius == 34
    convs = [m for m in with_sar.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 34
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.stride == (1, 1)
               and c.bias is not None for c in convs)  # fmt: skip
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in with_sar.modules())


@pytest.mark.parametrize("sar", [2, 0])
@pytest.mark.parametrize(("h", "w"), [(7, 9), (1, 1), (13, 5)])
def test_forward_shapes_any_size(sar: int, h: int, w: int) -> None:
    model = DSen2CR(features=8, blocks=2, sar_channels=sar)
    optical, s1 = random_inputs(sar, 3, h, w)
    out = model(optical, s1)
    assert out.shape == (3, 13, h, w)
    assert out.dtype == torch.float32


def test_long_skip_adds_only_the_optical_input() -> None:
    model = DSen2CR(features=8, blocks=2)
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
    optical, s1 = random_inputs(2)
    assert torch.equal(model(optical, s1), optical)


def test_residual_block_matches_functional_definition() -> None:
    block = ResidualBlock(6, res_scale=0.3).double()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.3)  # non-zero biases too
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    c1, c2 = block.conv1, block.conv2
    expected = x + 0.3 * F.conv2d(F.relu(F.conv2d(x, c1.weight, c1.bias, padding=1)),
                                  c2.weight, c2.bias, padding=1)  # fmt: skip
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-13)
    assert (block(x) < 0).any()  # no activation after the add


@pytest.mark.parametrize("sar", [2, 0])
def test_model_matches_functional_definition(sar: int) -> None:
    model = DSen2CR(features=8, blocks=3, res_scale=0.3, sar_channels=sar).double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.bias.normal_(0.0, 0.2)
    optical, s1 = random_inputs(sar, dtype=torch.float64)
    torch.testing.assert_close(model(optical, s1), functional_forward(model, optical, s1),
                               rtol=0, atol=1e-12)  # fmt: skip


def test_he_uniform_initialisation() -> None:
    model = DSen2CR(features=64, blocks=2)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    for conv in convs:
        fan_in = conv.in_channels * 9
        w = conv.weight.detach()
        assert w.abs().max() <= math.sqrt(6.0 / fan_in)
        assert w.std().item() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.05)
        assert abs(w.mean().item()) < 0.1 * math.sqrt(2.0 / fan_in)
        assert torch.count_nonzero(conv.bias) == 0


# ----------------------------------------------------------------------------- receptive field


@pytest.mark.parametrize(
    ("blocks", "sar", "perturb_sar"), [(1, 2, False), (2, 2, True), (2, 0, False)]
)
def test_receptive_field_radius_is_exact(blocks: int, sar: int, perturb_sar: bool) -> None:
    model = DSen2CR(features=4, blocks=blocks, sar_channels=sar).double().eval()
    r = model.receptive_field_radius
    assert r == 2 * blocks + 2
    # positive weights and inputs keep every ReLU active, so every dependence shows up
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.uniform_(0.01, 0.1)
                m.bias.uniform_(0.0, 0.1)
    size = 2 * r + 7
    c = size // 2
    optical, s1 = random_inputs(sar, 1, size, size, dtype=torch.float64)
    optical2 = optical.clone()
    s12 = s1.clone() if s1 is not None else None
    if perturb_sar:
        s12[0, 1, c, c] += 1.0
    else:
        optical2[0, 5, c, c] += 1.0
    with torch.no_grad():
        diff = (model(optical2, s12) - model(optical, s1)).abs()[0]
    changed = diff > 0
    inside = torch.zeros(size, size, dtype=torch.bool)
    inside[c - r : c + r + 1, c - r : c + r + 1] = True
    assert changed.all(dim=0).eq(inside).all()  # every band changes inside the radius...
    assert not changed[:, ~inside].any()  # ...and nothing changes beyond it


# ----------------------------------------------------------------------------- inputs


def test_sar_required_when_used_and_ignored_otherwise() -> None:
    with_sar = DSen2CR(features=4, blocks=1)
    optical, s1 = random_inputs(2)
    assert with_sar.uses_sar
    with pytest.raises(ValueError, match="uses SAR"):
        with_sar(optical)
    with pytest.raises(ValueError, match="sar input"):
        with_sar(optical, s1[:, :1])
    with pytest.raises(ValueError, match="sar input"):
        with_sar(optical, s1[..., :-1])
    with pytest.raises(ValueError, match="bands"):
        with_sar(optical[:, :12], s1)

    no_sar = DSen2CR(features=4, blocks=1, sar_channels=0)
    assert not no_sar.uses_sar
    assert torch.equal(no_sar(optical), no_sar(optical, s1))
    assert torch.equal(no_sar(optical), no_sar(optical, torch.zeros(2, 5, 1, 1)))


def test_invalid_configuration_raises() -> None:
    with pytest.raises(ValueError):
        DSen2CR(features=0)
    with pytest.raises(ValueError):
        DSen2CR(sar_channels=-1)


# ----------------------------------------------------------------------------- native weights


@pytest.mark.parametrize(
    "config",
    [dict(features=8, blocks=3, res_scale=0.2, sar_channels=0),
     dict(features=5, blocks=0, sar_channels=2),
     dict(features=6, blocks=2, res_scale=0.1, sar_channels=3, optical_channels=4)],
)  # fmt: skip
def test_save_and_from_pretrained_round_trip(tmp_path, config) -> None:
    model = DSen2CR(**config)
    model.training_info = {"loss": "carl", "epochs": 3}
    path = model.save_pretrained(tmp_path / "sub" / "w.safetensors", training_info={"lam": 1.0})
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["w.safetensors"]  # no temp file left

    loaded = DSen2CR.from_pretrained(path)  # the architecture comes from the file alone
    assert loaded.config == model.config
    assert not loaded.training
    assert loaded.training_info == {"loss": "carl", "epochs": 3, "lam": 1.0}
    state = model.state_dict()
    assert loaded.state_dict().keys() == state.keys()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key])
    optical, s1 = random_inputs(model.sar_channels)
    if model.optical_channels != 13:
        optical = optical[:, : model.optical_channels]
    assert torch.equal(loaded(optical, s1), model.eval()(optical, s1))

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["architecture"] == "DSen2CR"
    assert json.loads(meta["config"]) == model.config
    assert json.loads(meta["input_normalization"]) == json.loads(json.dumps(NORMALIZATION))
    assert json.loads(meta["training"])["loss"] == "carl"


def _bad_native(tmp_path, case: str):
    path = tmp_path / f"{case}.safetensors"
    good = DSen2CR(features=4, blocks=1)
    state = {k: v.contiguous() for k, v in good.state_dict().items()}
    config = json.dumps(good.config)
    if case == "random_bytes":
        path.write_bytes(b"\x00\x01not a safetensors file" * 8)
    elif case == "no_metadata":
        save_file(state, str(path))
    elif case == "other_architecture":
        save_file(state, str(path), metadata={"architecture": "ResNet", "config": config})
    elif case == "bad_json":
        save_file(state, str(path), metadata={"architecture": "DSen2CR", "config": "{oops"})
    elif case == "unknown_key":
        save_file(state, str(path), metadata={"architecture": "DSen2CR",
                                              "config": json.dumps({"width": 4})})  # fmt: skip
    elif case == "invalid_value":
        save_file(state, str(path), metadata={"architecture": "DSen2CR",
                                              "config": json.dumps({"features": -1})})  # fmt: skip
    elif case == "shape_mismatch":
        wrong = json.dumps({**good.config, "features": 8})
        save_file(state, str(path), metadata={"architecture": "DSen2CR", "config": wrong})
    elif case == "missing_tensor":
        state.pop("tail.bias")
        save_file(state, str(path), metadata={"architecture": "DSen2CR", "config": config})
    elif case == "missing_file":
        pass
    return path


@pytest.mark.parametrize(
    "case",
    ["random_bytes", "no_metadata", "other_architecture", "bad_json", "unknown_key",
     "invalid_value", "shape_mismatch", "missing_tensor", "missing_file"],
)  # fmt: skip
def test_corrupt_or_foreign_safetensors_raise_weights_error(tmp_path, case) -> None:
    path = _bad_native(tmp_path, case)
    with pytest.raises(WeightsError) as err:
        DSen2CR.from_pretrained(path)
    assert path.name in str(err.value)


# ----------------------------------------------------------------------------- CLI


def test_cli_info_prints_json(tmp_path, capsys) -> None:
    model = DSen2CR(features=8, blocks=2, sar_channels=0)
    path = model.save_pretrained(tmp_path / "m.safetensors", training_info={"loss": "l1"})
    assert cli.main(["info", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"] == model.config
    assert info["parameters"] == count_parameters(model)
    assert info["receptive_field_radius"] == 6
    assert info["training"] == {"loss": "l1"}


def test_cli_info_missing_file_is_one_line_error(tmp_path, capsys) -> None:
    assert cli.main(["info", str(tmp_path / "nope.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.safetensors" in err[0]


def test_cli_version_and_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "convert-weights" in out and "info" in out
    assert cli.main([]) == 2  # no subcommand: help and a non-zero status
