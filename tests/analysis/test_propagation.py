"""Mean-field signal propagation against an independent SciPy implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, special

from actlab.analysis import c_map, critical_weight_variance, fixed_point, q_map

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


# ---------------------------------------------------------------- the correlation fixed point
# An independent computation: iterate the q map, then the correlation map, to convergence.
# E[f(u1) f(u2)] for u1, u2 ~ N(0, q) with correlation c is in closed form for sine and erf,
# and a 2-D Gauss-Hermite product rule (probabilists' nodes, written here) for the others.
_Z, _W = np.polynomial.hermite_e.hermegauss(160)
_W = _W / math.sqrt(2 * math.pi)
_NUMERIC = {
    "tanh": np.tanh,
    "gelu": lambda x: 0.5 * x * special.erfc(-x / math.sqrt(2)),
    "silu": lambda x: x * special.expit(x),
}


def _ff(name: str, q: float, c: float) -> float:
    """E[f(u1) f(u2)], variance q, correlation c."""
    if name == "sine":  # E[sin u1 sin u2] = e^-q sinh(q c)
        return math.exp(-q) * math.sinh(q * c)
    if name == "formula:erf(x)":  # (2/pi) asin(2 q c / (1 + 2 q))
        return 2 / math.pi * math.asin(min(1.0, max(-1.0, 2 * q * c / (1 + 2 * q))))
    f = _NUMERIC[name]
    r = math.sqrt(max(0.0, 1 - c * c))
    z1, z2 = _Z[:, None], _Z[None, :]
    u1, u2 = math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + r * z2)
    return float(np.sum(_W[:, None] * _W[None, :] * f(u1) * f(u2)))


def _steffensen(step, x: float, tol: float, lo: float, hi: float) -> float:
    """The fixed point of ``step`` reached from ``x``: 30 plain iterations, then Steffensen's
    acceleration of the same iteration (Aitken's delta-squared), to ``tol``."""
    for _ in range(30):
        x = step(x)
    for _ in range(200):
        x1 = step(x)
        x2 = step(x1)
        d = x2 - 2 * x1 + x
        x_new = x2 if d == 0 else min(max(x - (x1 - x) ** 2 / d, lo), hi)
        if abs(x_new - x) < tol:
            return x_new
        x = x_new
    raise AssertionError("the reference iteration did not converge")


def _iterate(name: str, sw2: float, sb2: float) -> tuple[float, float]:
    """(q*, c*) by iterating the q map from q = 1, then the correlation map from c = 0.5."""
    q = _steffensen(lambda q: sw2 * _ff(name, q, 1.0) + sb2, 1.0, 1e-14, 0.0, math.inf)
    if q < 1e-9:  # the signal collapses: no correlation to iterate
        return q, math.nan
    c = _steffensen(lambda c: min(1.0, (sw2 * _ff(name, q, c) + sb2) / q), 0.5, 1e-13, -1.0, 1.0)
    return q, c


GRID = [
    (name, sw2, sb2)
    for name in ("tanh", "formula:erf(x)", "sine", "gelu", "silu")
    for sw2, sb2 in ((1.5, 0.0), (1.5, 0.05), (1.9, 0.3), (3.0, 0.0), (3.0, 0.3), (4.0, 1.0))
    if not (name in ("gelu", "silu") and sw2 > 2)  # relu-like: q grows without bound above 2
]


@pytest.mark.parametrize(("name", "sw2", "sb2"), GRID)
def test_correlation_fixed_point_matches_iterating_the_map(name: str, sw2: float, sb2: float):
    fp = fixed_point(name, sw2, sb2)
    q_ref, c_ref = _iterate(name, sw2, sb2)
    assert fp.q_star == pytest.approx(q_ref, rel=1e-7, abs=1e-9)
    if math.isnan(c_ref):  # collapsed (gelu, silu without bias): the limit q -> 0 is ordered
        assert fp.q_star == 0.0 and fp.phase == "ordered" and fp.c_star == 1.0
    elif fp.phase == "chaotic":
        assert fp.c_star == pytest.approx(c_ref, abs=2e-6)
    else:  # ordered: the map contracts every pair of inputs to c = 1
        assert fp.c_star == 1.0
        assert c_ref == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", ["tanh", "formula:erf(x)", "sine"])
@pytest.mark.parametrize("sw2", [1.5, 4.0])
def test_odd_activation_without_bias_gives_exactly_zero(name: str, sw2: float):
    fp = fixed_point(name, sw2, 0.0)
    assert fp.phase == "chaotic"
    assert fp.c_star == 0.0  # exactly: symmetry, not round-off
    assert fp.xi_c < math.inf and fp.chi_c < 1.0


@settings(max_examples=20, deadline=None)
@given(
    name=st.sampled_from(["tanh", "sine", "gelu", "silu", "elu", "formula:erf(x)"]),
    sw2=st.floats(0.3, 4.0),
    sb2=st.floats(0.0, 1.0),
)
def test_correlation_fixed_point_properties(name: str, sw2: float, sb2: float):
    fp = fixed_point(name, sw2, sb2)
    if fp.phase == "unbounded":
        assert math.isnan(fp.c_star)
        return
    assert -1.0 <= fp.c_star <= 1.0
    if fp.phase != "chaotic":
        assert fp.c_star == 1.0
        return
    # the map returns c*, and c* is stable (|slope| < 1) while c = 1 is not (chi_1 > 1)
    assert c_map(name, fp.c_star, fp.q_star, sw2, sb2) == pytest.approx(fp.c_star, abs=1e-8)
    assert abs(fp.chi_c) < 1.0 < fp.chi_1
    h = 1e-5
    lo, hi = max(-1.0, fp.c_star - h), min(1.0, fp.c_star + h)
    up, down = (c_map(name, c, fp.q_star, sw2, sb2) for c in (hi, lo))
    slope = (up - down) / (hi - lo)
    assert slope == pytest.approx(fp.chi_c, abs=1e-4)
