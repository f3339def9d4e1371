"""Measured properties and break-point detection against closed forms and SciPy."""

from __future__ import annotations

import math

import pytest
from scipy import optimize, special

import actlab
from actlab.analysis import find_breaks, properties


def test_relu():
    p = actlab.analysis.properties("relu")
    assert p.monotonic == "increasing" and p.extremum is None
    assert p.bounded_below and not p.bounded_above
    assert p.out_min == 0.0 and p.out_max == math.inf
    assert p.derivative_jumps == (0.0,) and p.value_jumps == ()
    assert p.p_zero_grad == 0.5  # exactly half of N(0, 1) inputs: the dying-ReLU risk
    assert p.mean == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-12)
    assert p.saturation == ((-math.inf, 0.0),) or p.saturation[0][0] == -math.inf


def test_sigmoid_saturation_edges_match_closed_form():
    p = properties("sigmoid")
    assert p.bounded_below and p.bounded_above
    assert p.out_max == pytest.approx(1.0) and p.mean == pytest.approx(0.5, abs=1e-12)
    assert not p.zero_centred
    # sigmoid'(x) = 1e-3 where s (1 - s) = 1e-3
    edge = optimize.brentq(lambda x: special.expit(x) * special.expit(-x) - 1e-3, 0, 20)
    (lo1, hi1), (lo2, hi2) = p.saturation
    assert lo1 == -math.inf and hi2 == math.inf
    assert hi1 == pytest.approx(-edge, abs=2e-3) and lo2 == pytest.approx(edge, abs=2e-3)
    assert p.p_zero_grad == 0.0
    assert p.p_saturated == pytest.approx(2 * special.ndtr(-edge), abs=1e-4)


def test_mish_minimum_matches_scipy():
    def mish(x):
        return x * math.tanh(math.log1p(math.exp(x)))

    ref = optimize.minimize_scalar(mish, bounds=(-3, 0), method="bounded", options={"xatol": 1e-9})
    p = properties("mish")
    kind, x, f = p.extremum
    assert p.monotonic == "no" and kind == "min"
    assert x == pytest.approx(ref.x, abs=1e-3) and f == pytest.approx(ref.fun, abs=1e-6)
    assert p.smoothness.startswith("C2")


def test_zero_centred_and_bounded():
    for name in ("tanh", "softsign", "arctan", "isru"):
        p = properties(name)
        assert p.zero_centred and p.bounded_above and p.bounded_below, name
    # softsign approaches 1 like 1 - 1/x: bounded although it still grows at 1e4
    assert properties("softsign").out_max < 1.0
    assert not properties("formula:log1p(abs(x))").bounded_above  # grows without bound


@pytest.mark.parametrize(
    "name, value, deriv, second",
    [
        ("hardshrink", (-0.5, 0.5), (), ()),
        ("relu6", (), (0.0, 6.0), ()),
        ("hardswish", (), (-3.0, 3.0), ()),
        ("smelu", (), (), (-2.0, 2.0)),
        ("squared_relu", (), (), (0.0,)),
        ("elu", (), (), (0.0,)),  # alpha = 1: C1, f'' jumps from 1 to 0
        ("gelu", (), (), ()),
        ("formula:abs(x - 0.3)", (), (0.3,), ()),
        ("formula:where(x > 2, 1, 0)", (2.0,), (), ()),
    ],
)
def test_breaks_are_found(name, value, deriv, second):
    b = find_breaks(name)
    assert b.value == pytest.approx(value, abs=1e-9)
    assert b.derivative == pytest.approx(deriv, abs=1e-9)
    assert b.second == pytest.approx(second, abs=1e-5)


def test_smoothness_labels():
    assert properties("hardshrink").smoothness.startswith("discontinuous")
    assert properties("relu").smoothness.startswith("C0")
    assert properties("smelu").smoothness.startswith("C1")
    assert properties(actlab.get("elu", alpha=0.5)).smoothness.startswith("C0")


def test_as_dict_for_show():
    d = properties("gelu").as_dict()
    assert all("[" not in k for k in d)  # rich would read [..] in keys as markup
    assert all(isinstance(v, str | float) for v in d.values())
    assert d["zero-centred"] == "no" and "min f" in d["monotonic"]


def test_gated_and_callable_and_nan_formula():
    p = properties("swiglu")
    assert p.gated and p.mean == pytest.approx(0.0, abs=1e-12) and p.notes
    assert properties(lambda x: x.clamp(min=0)).p_zero_grad == 0.5
    q = properties("formula:log(x)")
    assert q.nonfinite > 0 and "non-finite outputs" in q.as_dict()
