"""L1 target loss and CARL (paper Eq. 3) against values computed independently in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsen2cr.losses import carl_loss, l1_loss


def _data(seed: int = 0, shape=(2, 13, 4, 5)):
    rng = np.random.default_rng(seed)
    p, t, i = (rng.uniform(0.0, 3.0, shape) for _ in range(3))
    m = (rng.uniform(size=(shape[0], shape[2], shape[3])) > 0.5).astype(np.float64)
    return p, t, i, m


def _carl_numpy(p, t, i, m, lam):
    """Eq. 3 written out with explicit sums (no broadcasting tricks in the loss path)."""
    b, c, h, w = p.shape
    n = b * c * h * w
    adaptive = target = 0.0
    for bi in range(b):
        for ci in range(c):
            for y in range(h):
                for x in range(w):
                    mask = m[bi, y, x]
                    d_in = abs(p[bi, ci, y, x] - i[bi, ci, y, x])
                    d_t = abs(p[bi, ci, y, x] - t[bi, ci, y, x])
                    adaptive += (1.0 - mask) * d_in + mask * d_t
                    target += d_t
    return adaptive / n + lam * target / n


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a))


def test_l1_hand_computed() -> None:
    p = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    t = torch.tensor([[[[0.0, 2.5], [3.0, 1.0]]]])
    assert l1_loss(p, t).item() == pytest.approx((1.0 + 0.5 + 0.0 + 3.0) / 4)
    pn, tn, _, _ = _data()
    assert l1_loss(_t(pn), _t(tn)).item() == pytest.approx(np.abs(pn - tn).mean(), rel=1e-12)


def test_carl_hand_computed_tiny_example() -> None:
    # one band, 2 pixels: pixel 0 clear (compare with the input), pixel 1 cloudy (target)
    p = torch.tensor([[[[1.0, 2.0]]]])
    t = torch.tensor([[[[0.5, 1.0]]]])
    i = torch.tensor([[[[1.5, 4.0]]]])
    m = torch.tensor([[[[0.0, 1.0]]]])
    # adaptive = (|1-1.5| + |2-1|) / 2 = 0.75 ; target = (0.5 + 1) / 2 = 0.75
    assert carl_loss(p, t, i, m).item() == pytest.approx(0.75 + 0.75)
    assert carl_loss(p, t, i, m, lam=0.5).item() == pytest.approx(0.75 + 0.375)


@pytest.mark.parametrize("mask_form", ["b1hw", "bhw", "bool"])
@pytest.mark.parametrize("lam", [1.0, 0.0, 0.3])
def test_carl_matches_equation_3(mask_form: str, lam: float) -> None:
    p, t, i, m = _data(seed=1)
    expected = _carl_numpy(p, t, i, m, lam)
    mask = {"b1hw": _t(m)[:, None], "bhw": _t(m), "bool": _t(m).bool()[:, None]}[mask_form]
    got = carl_loss(_t(p), _t(t), _t(i), mask, lam=lam)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_carl_limits() -> None:
    p, t, i, _ = _data(seed=2)
    ones = torch.ones(2, 1, 4, 5, dtype=torch.float64)
    l1 = l1_loss(_t(p), _t(t)).item()
    # all cloudy: CARL = (1 + lambda) L1
    assert carl_loss(_t(p), _t(t), _t(i), ones, lam=0.0).item() == pytest.approx(l1, rel=1e-12)
    assert carl_loss(_t(p), _t(t), _t(i), ones, lam=1.0).item() == pytest.approx(2 * l1, rel=1e-12)
    assert carl_loss(_t(p), _t(t), _t(i), ones, lam=0.5).item() == pytest.approx(
        1.5 * l1, rel=1e-12
    )
    # all clear and lambda = 0: only the distance to the cloudy input
    zeros = torch.zeros(2, 4, 5, dtype=torch.bool)
    got = carl_loss(_t(p), _t(t), _t(i), zeros, lam=0.0).item()
    assert got == pytest.approx(np.abs(p - i).mean(), rel=1e-12)


def test_carl_gradient_flows_to_prediction_only_where_expected() -> None:
    p, t, i, m = _data(seed=3)
    pred = _t(p).clone().requires_grad_(True)
    loss = carl_loss(pred, _t(t), _t(i), _t(m), lam=1.0)
    loss.backward()
    n = p.size
    mb = m[:, None]
    expected = ((1 - mb) * np.sign(p - i) + mb * np.sign(p - t) + np.sign(p - t)) / n
    np.testing.assert_allclose(pred.grad.numpy(), expected, rtol=0, atol=1e-15)

    pred32 = torch.rand(1, 13, 3, 3, requires_grad=True)
    l1_loss(pred32, torch.zeros(1, 13, 3, 3)).backward()
    assert torch.allclose(pred32.grad, torch.full_like(pred32, 1 / pred32.numel()))


def test_carl_float32_bool_mask_keeps_dtype() -> None:
    p, t, i = (torch.rand(1, 13, 3, 3) for _ in range(3))
    out = carl_loss(p, t, i, torch.ones(1, 3, 3, dtype=torch.bool))
    assert out.dtype == torch.float32 and out.ndim == 0
