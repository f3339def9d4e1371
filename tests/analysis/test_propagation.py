"""Mean-field signal propagation against an independent SciPy implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize

from actlab.analysis import critical_weight_variance, fixed_point, q_map

PHI = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731


def E(g) -> float:
    return integrate.quad(lambda z: g(z) * PHI(z), -np.inf, np.inf, epsabs=1e-13, epsrel=1e-12)[0]


def sech(x: float) -> float:
    return 2.0 / (math.exp(x) + math.exp(-x)) if abs(x) < 700 else 0.0


def tanh_qstar(sw2: float, sb2: float) -> float:
    """Fixed point of q -> sw2 E[tanh(sqrt(q) z)^2] + sb2, by iterating the map."""
    q = 1.0
    for _ in range(2000):
        q_new = sw2 * E(lambda z, q=q: math.tanh(math.sqrt(q) * z) ** 2) + sb2
        if abs(q_new - q) < 1e-13:
            break
        q = q_new
    return q_new


def tanh_chi(sw2: float, q: float) -> float:
    return sw2 * E(lambda z: sech(math.sqrt(q) * z) ** 4)


def test_relu_critical_is_two():
    for sb2 in (0.0, 0.01, 0.1, 1.0):
        assert critical_weight_variance("relu", sb2) == pytest.approx(2.0, abs=1e-9)


def test_tanh_critical_tends_to_one():
    sb2s = (1e-1, 1e-2, 1e-4, 1e-6, 1e-8, 1e-10)
    values = [critical_weight_variance("tanh", sb2) for sb2 in sb2s]
    assert values == sorted(values, reverse=True)
    assert critical_weight_variance("tanh", 0.0) == pytest.approx(1.0, abs=1e-6)
    assert values[-1] == pytest.approx(1.0, abs=2e-3)
    # small-q expansion: E[tanh^2] = q - 2q^2 + O(q^3), E[sech^4] = 1 - 2q + O(q^2) give
    # sigma_w^2 - 1 ~ 2 q* with q*^3 ~ sigma_b^2: the approach is a power 1/3 of sigma_b^2
    slope = math.log((values[-2] - 1) / (values[-1] - 1)) / math.log(sb2s[-2] / sb2s[-1])
    assert slope == pytest.approx(1 / 3, abs=0.02)


def test_tanh_fixed_point_and_chi_match_quad():
    fp = fixed_point("tanh", 1.5, 0.05)
    q_ref = tanh_qstar(1.5, 0.05)
    assert fp.q_star == pytest.approx(q_ref, rel=1e-9)
    assert fp.chi_1 == pytest.approx(tanh_chi(1.5, q_ref), rel=1e-9)
    assert fp.phase == "ordered" and fp.c_star == 1.0
    assert fp.xi_c == pytest.approx(-1.0 / math.log(fp.chi_1), rel=1e-12)
    # xi_q from the slope of the q map at q*, here by a central difference of the map
    h = 1e-5
    slope = (q_map("tanh", fp.q_star + h, 1.5, 0.05) - q_map("tanh", fp.q_star - h, 1.5, 0.05)) / (
        2 * h
    )
    assert fp.slope == pytest.approx(slope, rel=1e-6)
    assert fp.xi_q == pytest.approx(-1.0 / math.log(slope), rel=1e-5)


def test_tanh_critical_matches_independent_root():
    sb2 = 0.05

    def h(sw2: float) -> float:
        return tanh_chi(sw2, tanh_qstar(sw2, sb2)) - 1.0

    ref = optimize.brentq(h, 1.0, 3.0, xtol=1e-10)
    assert critical_weight_variance("tanh", sb2) == pytest.approx(ref, rel=1e-7)
    fp = fixed_point("tanh", ref, sb2)
    assert fp.chi_1 == pytest.approx(1.0, abs=1e-7)
    assert fp.xi_c > 1e4


def test_relu_above_critical_is_unbounded_not_a_hang():
    fp = fixed_point("relu", 2.5, 0.1)
    assert fp.q_star == math.inf and fp.phase == "unbounded"
    assert fp.chi_1 == pytest.approx(1.25, rel=1e-9)
    below = fixed_point("relu", 1.5, 0.1)  # q* = sb2 / (1 - sw2/2)
    assert below.q_star == pytest.approx(0.4, rel=1e-10)
    assert below.chi_1 == pytest.approx(0.75, rel=1e-10)


def test_tanh_chaotic_phase_correlation_fixed_point():
    fp = fixed_point("tanh", 3.0, 0.0)
    assert fp.phase == "chaotic" and fp.chi_1 > 1
    # odd activation, no bias: the correlation map is odd, c* = 0 and
    # chi_c = sw2 E[f'(u)]^2
    q = fp.q_star
    assert fp.c_star == pytest.approx(0.0, abs=1e-12)
    ref = 3.0 * E(lambda z: sech(math.sqrt(q) * z) ** 2) ** 2
    assert fp.chi_c == pytest.approx(ref, rel=1e-6)


def test_collapse_to_zero_uses_the_limit():
    fp = fixed_point("tanh", 0.5, 0.0)
    assert fp.q_star == 0.0
    assert fp.chi_1 == pytest.approx(0.5, rel=1e-6)  # sw2 f'(0)^2


def test_gated_and_formula_do_not_crash():
    assert 0 < fixed_point("glu", 1.0, 0.1).chi_1 < 10
    assert math.isnan(critical_weight_variance("bilinear", 0.0))  # chi jumps from 0 to inf
    assert critical_weight_variance("formula:tanh(x)", 0.05) == pytest.approx(
        critical_weight_variance("tanh", 0.05), rel=1e-9
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="sigma_w2"):
        fixed_point("tanh", -1.0, 0.0)
    with pytest.raises(ValueError, match="sigma_b2"):
        critical_weight_variance("tanh", -0.1)
    with pytest.raises(ValueError, match="not finite"):
        critical_weight_variance("formula:x * tanh(log(1 + exp(x)))", 0.0)
