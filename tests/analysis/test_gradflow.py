"""Gradient flow through depth: real forward/backward at init, checked against theory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

import actlab
from actlab.analysis import gradient_flow
from actlab.analysis.gradflow import init_variances

PHI = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731


def E(g) -> float:
    return integrate.quad(lambda z: g(z) * PHI(z), -np.inf, np.inf, epsabs=1e-14)[0]


def sigmoid_chi_default_init(width: int) -> float:
    """Mean-field chi_1 of sigmoid under nn.Linear's default init, computed here with quad:
    sigma_w^2 = 1/3 (U(-1/sqrt(n), 1/sqrt(n)) has variance 1/(3n)), sigma_b^2 = 1/(3n)."""
    sw2, sb2 = 1 / 3, 1 / (3 * width)
    q = 1.0
    for _ in range(100):
        q = sw2 * E(lambda z, q=q: special.expit(math.sqrt(q) * z) ** 2) + sb2
    s = lambda z: special.expit(math.sqrt(q) * z)  # noqa: E731
    return sw2 * E(lambda z: (s(z) * (1 - s(z))) ** 2)


def test_sigmoid_decay_rate_matches_theory():
    r = gradient_flow("sigmoid", 50, width=128, seeds=3)
    factor = math.sqrt(sigmoid_chi_default_init(128))  # about 0.141 per layer
    # the back-propagated signal, fitted over the middle layers
    assert r.middle_factor == pytest.approx(factor, rel=0.03)
    assert r.theory_factor == pytest.approx(factor, rel=1e-6)
    # and the weight gradients decay at the same exponential rate
    lo, hi = 12, 38
    slope = np.polyfit(np.arange(lo, hi), np.log(r.grad_norm[lo:hi]), 1)[0]
    assert math.exp(-slope) == pytest.approx(factor, rel=0.05)
    assert r.ratio < 1e-35  # first / last at depth 50: ~0.14^49
    assert r.per_layer_factor == pytest.approx(factor, rel=0.1)


def test_ratio_decays_exponentially_with_depth_for_sigmoid():
    ratios = [gradient_flow("sigmoid", d, seeds=2).ratio for d in (5, 10, 20)]
    logs = np.log(ratios)
    # log ratio ~ (depth - 1) log(factor): the slope per layer is the same on both intervals
    a, b = (logs[1] - logs[0]) / 5, (logs[2] - logs[1]) / 10
    assert a == pytest.approx(b, rel=0.25)
    assert math.exp(b) == pytest.approx(0.14, rel=0.15)


def test_relu_kaiming_keeps_backprop_norm():
    r = gradient_flow("relu", 50, init="kaiming", seeds=2)
    assert r.theory_factor == pytest.approx(1.0, abs=1e-9)
    assert r.middle_factor == pytest.approx(1.0, abs=0.03)
    assert r.delta_norm.max() / r.delta_norm.min() < 3


@pytest.mark.parametrize("name", ["tanh", "gelu", "silu", "mish", "elu", "sigmoid"])
def test_edge_of_chaos_keeps_gradients_within_a_small_factor(name):
    r = gradient_flow(name, 50, init="critical", seeds=2)
    assert r.delta_norm.max() / r.delta_norm.min() < 3
    assert r.middle_factor == pytest.approx(1.0, abs=0.03)
    default = gradient_flow(name, 50, seeds=1)
    assert default.delta_norm.max() / default.delta_norm.min() > 1e10


@pytest.mark.parametrize("name", ["gelu", "silu", "mish", "elu"])
def test_gain_init_keeps_weight_gradients_within_a_small_factor(name):
    r = gradient_flow(name, 50, init="gain", seeds=2)
    assert r.grad_norm.max() / r.grad_norm.min() < 4
    assert 0.25 < r.ratio < 4


def test_gain_init_puts_the_first_layer_at_q_1():
    sw2, sb2, first = init_variances("tanh", "gain", 128)
    assert sw2 == pytest.approx(actlab.gain("tanh") ** 2) and sb2 == 0 and first == 1.0
    r = gradient_flow("tanh", 20, init="gain", seeds=2)
    assert r.preact_q == pytest.approx(np.ones(20), rel=0.1)  # q = 1 is the fixed point


def test_result_shapes_frame_and_reproducibility():
    a = gradient_flow("relu", 6, width=32, batch=16, seeds=[3, 4])
    b = gradient_flow("relu", 6, width=32, batch=16, seeds=[3, 4])
    np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
    assert a.grad_norm.shape == a.act_var.shape == a.delta_norm.shape == (6,)
    f = a.to_frame()
    assert list(f["layer"]) == [1, 2, 3, 4, 5, 6]
    assert {"grad_norm", "act_var", "preact_q", "delta_norm"} <= set(f.columns)
    assert a.ratio == pytest.approx(a.grad_norm[0] / a.grad_norm[-1])


def test_gated_formula_and_callable():
    g = gradient_flow("swiglu", 4, width=16, batch=8, seeds=1)
    assert np.all(np.isfinite(g.grad_norm)) and g.grad_norm.shape == (4,)
    f = gradient_flow("formula:x * sigmoid(x)", 8, width=32, batch=32, seeds=1)
    s = gradient_flow("silu", 8, width=32, batch=32, seeds=1)
    np.testing.assert_allclose(f.grad_norm, s.grad_norm, rtol=1e-10)
    c = gradient_flow(lambda x: torch.tanh(x), 3, width=8, batch=4, seeds=1)
    assert np.all(c.grad_norm > 0)


def test_weight_gradient_matches_autograd_of_an_nn_sequential():
    # the same network written with nn.Linear and autograd, weights copied from the seed
    r = gradient_flow("tanh", 3, width=8, batch=5, init="kaiming", seeds=[7])
    gen = torch.Generator().manual_seed(7)
    ws, bs = [], []
    for _ in range(3):  # the generator's order: weight, then bias, layer by layer
        ws.append(torch.randn(8, 8, generator=gen, dtype=torch.float64) * math.sqrt(2 / 8))
        bs.append(torch.randn(8, generator=gen, dtype=torch.float64) * 0.0)
    layers = []
    for w, b in zip(ws, bs, strict=True):
        lin = torch.nn.Linear(8, 8).double()
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers += [lin, torch.nn.Tanh()]
    net = torch.nn.Sequential(*layers)
    readout = torch.randn(10, 8, generator=gen, dtype=torch.float64) / math.sqrt(8)
    x = torch.randn(5, 8, generator=gen, dtype=torch.float64)
    t = torch.randn(5, 10, generator=gen, dtype=torch.float64)
    loss = 0.5 * ((net(x) @ readout.t() - t) ** 2).sum(1).mean()
    loss.backward()
    ref = [net[2 * i].weight.grad.norm().item() for i in range(3)]
    np.testing.assert_allclose(r.grad_norm, ref, rtol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        gradient_flow("relu", 0)
    with pytest.raises(ValueError, match="init"):
        gradient_flow("relu", 3, init="xavier")
    with pytest.raises(ValueError, match="seeds"):
        gradient_flow("relu", 3, seeds=[])
    with pytest.raises(ValueError, match="edge of chaos"):
        gradient_flow("bilinear", 3, init="critical")
