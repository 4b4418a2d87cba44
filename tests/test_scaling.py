"""The value mappings of dsen2cr.scaling: paper Sections 3.5 and 4.3, numpy and torch alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsen2cr import scaling


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_s2_network_domain_and_inverse(kind: str) -> None:
    dn = np.array([0, 1000, 2000, 10000, 12000, 65535], np.uint16).reshape(1, 1, 6)
    x = torch.from_numpy(dn.astype(np.int32)) if kind == "torch" else dn
    scaled = scaling.s2_to_scaled(x)
    assert type(scaled) is type(x)
    assert np.allclose(np.asarray(scaled), [[[0.0, 0.5, 1.0, 5.0, 5.0, 5.0]]])
    assert np.allclose(np.asarray(scaling.scaled_to_s2(scaled)), [[[0, 1000, 2000, 10000, 10000, 10000]]])
    assert np.allclose(np.asarray(scaling.scaled_to_reflectance(scaled)), [[[0, 0.1, 0.2, 1, 1, 1]]])
    assert np.allclose(np.asarray(scaling.dn_to_reflectance(x)), dn / 10000.0)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_s1_per_polarisation_clip_and_inverse(kind: str) -> None:
    # (B=1, 2, 1, 4): VV row then VH row, in dB
    db = np.array([[[[-30.0, -25.0, -12.5, 3.0]], [[-40.0, -32.5, -16.25, 0.0]]]], np.float32)
    x = torch.from_numpy(db) if kind == "torch" else db
    scaled = np.asarray(scaling.s1_to_scaled(x))
    assert np.allclose(scaled[0, 0, 0], [0.0, 0.0, 1.0, 2.0])  # VV clipped to [-25, 0]
    assert np.allclose(scaled[0, 1, 0], [0.0, 0.0, 1.0, 2.0])  # VH clipped to [-32.5, 0]
    back = np.asarray(scaling.scaled_to_s1(scaling.s1_to_scaled(x)))
    assert np.allclose(back[0, 0, 0, 1:3], [-25.0, -12.5]) and np.allclose(back[0, 1, 0, 1:3], [-32.5, -16.25])


def test_pix2pix_domain() -> None:
    dn = np.array([0.0, 5000.0, 10000.0, 20000.0]).reshape(1, 1, 4)
    assert np.allclose(scaling.s2_to_pix2pix(dn), [[[-1.0, 0.0, 1.0, 1.0]]])
    assert np.allclose(scaling.pix2pix_to_s2(scaling.s2_to_pix2pix(dn)), [[[0, 5000, 10000, 10000]]])
    db = np.array([[[-30.0, -25.0, -12.5, 0.0]], [[-40.0, -25.0, -12.5, 0.0]]])
    assert np.allclose(scaling.s1_to_pix2pix(db), [[[-1, -1, 0, 1]], [[-1, -1, 0, 1]]])  # both [-25, 0]
    # from the DSen2-CR domain: S2 via DN, S1 via dB (VH -32.5 dB -> clipped to -25 -> -1)
    assert np.allclose(scaling.scaled_to_pix2pix_s2(np.full((1, 1, 1), 2.5)), 0.0)
    s1_scaled = np.zeros((2, 1, 1))
    assert np.allclose(scaling.scaled_to_pix2pix_s1(s1_scaled), -1.0)


def test_fill_nan_uses_mean_of_finite_values() -> None:
    x = np.array([[[1.0, np.nan], [3.0, np.inf]]], np.float32)
    out = scaling.fill_nan(x)
    assert np.array_equal(out, [[[1.0, 2.0], [3.0, 2.0]]]) and np.isnan(x[0, 0, 1])  # copy
    assert np.array_equal(scaling.fill_nan(np.full((1, 2, 2), np.nan)), np.zeros((1, 2, 2)))
    clean = np.ones((1, 2, 2))
    assert scaling.fill_nan(clean) is clean
