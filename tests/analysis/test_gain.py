"""Init gain and Gaussian moments against independent references (SciPy quad, constants)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

import actlab
from actlab.analysis import act_moments, find_breaks, gain, gain_table, torch_gain
from actlab.analysis.quadrature import normal_rule

PHI = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731


def quad_expect(g, points=()) -> float:
    """E[g(z)], z ~ N(0, 1), by adaptive quadrature split at ``points``."""
    edges = [-np.inf, *points, np.inf]
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        total += integrate.quad(lambda z: g(z) * PHI(z), lo, hi, epsabs=1e-14, epsrel=1e-12)[0]
    return total


def test_relu_gain_is_sqrt2():
    assert gain("relu") == pytest.approx(math.sqrt(2.0), abs=1e-12)
    assert actlab.gain("relu") == pytest.approx(math.sqrt(2.0), abs=1e-12)


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.25, 0.5])
def test_leaky_relu_matches_pytorch(alpha):
    # PyTorch's leaky_relu gain sqrt(2 / (1 + a^2)) is exactly 1/sqrt(E[f(z)^2])
    expected = torch.nn.init.calculate_gain("leaky_relu", alpha)
    assert gain(actlab.get("leaky_relu", alpha=alpha)) == pytest.approx(expected, abs=1e-12)
    call, value = torch_gain(actlab.get("prelu", alpha=alpha))
    assert value == pytest.approx(expected) and "leaky_relu" in call


@pytest.mark.parametrize(
    "name, fn",
    [
        ("tanh", np.tanh),
        ("sigmoid", special.expit),
        ("gelu", lambda z: z * special.ndtr(z)),
        ("silu", lambda z: z * special.expit(z)),
        ("mish", lambda z: z * np.tanh(np.logaddexp(0.0, z))),
        ("elu", lambda z: z if z > 0 else math.expm1(z)),
        ("softplus", lambda z: np.logaddexp(0.0, z)),
    ],
)
def test_moments_match_scipy_quad(name, fn):
    m = act_moments(name)
    assert m.second == pytest.approx(quad_expect(lambda z: fn(z) ** 2, (0.0,)), rel=1e-10)
    assert m.mean == pytest.approx(quad_expect(fn, (0.0,)), rel=1e-10, abs=1e-13)
    assert gain(name) == pytest.approx(1 / math.sqrt(m.second), rel=1e-12)


def test_tanh_and_sigmoid_differ_from_pytorch_heuristics():
    # reported, not forced: tanh 5/3 and sigmoid 1 are heuristics
    assert torch_gain("tanh")[1] == pytest.approx(5 / 3)
    assert gain("tanh") == pytest.approx(1.5925374, abs=1e-6)
    assert torch_gain("sigmoid")[1] == 1.0
    assert gain("sigmoid") == pytest.approx(1.8462286, abs=1e-6)
    assert torch_gain("gelu") is None


def test_kinked_formula_split_at_measured_break():
    kinked = actlab.formula("where(x > 1, x, 0.5 * x + 0.5)")
    assert find_breaks(kinked).derivative == (1.0,)
    ref = quad_expect(lambda z: (z if z > 1 else 0.5 * z + 0.5) ** 2, (1.0,))
    assert act_moments(kinked).second == pytest.approx(ref, rel=1e-12)
    jump = actlab.formula("where(x > 1, x, 0.5 * x)")
    assert find_breaks(jump).value == (1.0,)
    ref = quad_expect(lambda z: (z if z > 1 else 0.5 * z) ** 2, (1.0,))
    assert act_moments(jump).second == pytest.approx(ref, rel=1e-12)


def test_moments_at_large_variance_are_accurate():
    # features of f at scale 1 in x are at 1/sqrt(q) in z: the graded rule resolves them
    q = 1e4
    ref = quad_expect(lambda z: math.expm1(100 * z) ** 2 if z < 0 else (100 * z) ** 2, (0.0,))
    assert act_moments("elu", q).second == pytest.approx(ref, rel=1e-9)
    ref_d = quad_expect(lambda z: 16 * special.expit(200 * z) ** 2 * special.expit(-200 * z) ** 2)
    assert act_moments("tanh", q).deriv2 == pytest.approx(ref_d, rel=1e-8)


def test_gated_uses_independent_halves():
    # glu: E[(a sigmoid(b))^2] = E[a^2] E[sigmoid(b)^2] = E[sigmoid^2]
    ref = quad_expect(lambda z: special.expit(z) ** 2)
    assert act_moments("glu").second == pytest.approx(ref, rel=1e-10)
    assert gain("reglu") == pytest.approx(math.sqrt(2.0), rel=1e-10)
    assert gain("bilinear") == pytest.approx(1.0, rel=1e-10)


def test_callable_and_formula_accepted():
    f = actlab.from_callable(lambda x: x * torch.sigmoid(x))
    assert gain(f) == pytest.approx(gain("silu"), rel=1e-10)
    assert gain("formula:x * sigmoid(x)") == pytest.approx(gain("silu"), rel=1e-10)


def test_undefined_gain_is_a_clear_error():
    with pytest.raises(ValueError, match="E\\[f\\(z\\)\\^2\\]"):
        gain("formula:log(x)")
    with pytest.raises(ValueError, match="undefined"):
        gain("formula:0 * x")


def test_normal_rule_integrates_polynomials_and_splits():
    z, w = normal_rule()
    assert w @ z**4 == pytest.approx(3.0, rel=1e-13)
    z, w = normal_rule([0.3, -1.2])
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    assert w @ (z > 0.3) == pytest.approx(special.ndtr(-0.3), abs=1e-14)


def test_gain_table_has_the_article_columns():
    t = gain_table(["relu", "tanh", "formula:log(x)"], (0.0, 0.1))
    assert list(t["activation"][:2]) == ["relu", "tanh"]
    assert t.loc[0, "crit sigma_w^2 (sigma_b^2=0)"] == pytest.approx(2.0)
    assert t.loc[1, "torch gain"] == pytest.approx(5 / 3)
    assert "finite" in t.loc[2, "error"]
