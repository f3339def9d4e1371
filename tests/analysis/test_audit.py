"""Stability audit: built-ins pass, naive formulas fail, the reference is exact."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import torch

import actlab
from actlab.analysis import audit
from actlab.analysis.audit import DTYPES, sweep
from actlab.analysis.reference import REFERENCE_FORMULAS, ReferenceFormula


def test_every_builtin_passes():
    failed = {}
    for name in actlab.names(builtin_only=True):
        r = audit(name)
        if name in REFERENCE_FORMULAS:  # a new built-in without one is judged against float64
            assert r.reference.startswith("mpmath"), name
        if not r.passed:
            failed[name] = r.frame[~r.frame["passed"]].to_dict("records")
    assert not failed


def test_naive_sigmoid_is_unstable():
    r = audit("formula:1 / (1 + exp(-x))")
    assert not r.passed
    f = r.frame.set_index(["dtype", "quantity"])
    # d/dx of 1/(1+e^-x) by autograd: (1+u)^-2 u with u = e^-x loses everything once
    # (1+u)^-2 is subnormal (x < -44 in float32), and is inf * 0 = NaN once u overflows
    assert f.loc[("float32", "f'"), "nan"] > 0
    assert f.loc[("float32", "f'"), "worst_x"] < -44
    assert not r.verdicts()["float32"]


def test_naive_mish_is_unstable():
    r = audit("formula:x * tanh(log(1 + exp(x)))")
    f = r.frame.set_index(["dtype", "quantity"])
    # log(1 + e^x) is 0 in float32 once e^x < eps: f(-20) = 0 instead of -4e-8
    assert f.loc[("float32", "f"), "error_in_eps"] > 1e4
    assert not r.passed


def test_stable_formulas_pass():
    assert audit("formula:x * tanh(softplus(x))").passed
    assert audit("formula:x * sigmoid(x)").passed
    assert not audit("formula:x - tanh(x)").passed  # cancellation near 0


def test_callable_uses_float64_reference():
    r = audit(actlab.from_callable(lambda x: x * torch.sigmoid(x)))
    assert r.reference.startswith("float64")
    f = r.frame
    assert not f[f["dtype"] == "float64"]["judged"].any()
    assert r.passed


def test_sweep_is_exact_in_every_dtype():
    x = sweep()
    assert np.abs(x).max() <= 1e4 and 0.0 in x and len(x) > 500
    for dt in DTYPES.values():
        np.testing.assert_array_equal(torch.tensor(x).to(dt).double().numpy(), x)


@pytest.mark.parametrize("name", ["gelu", "mish", "selu", "tanhexp", "bent_identity", "glu"])
def test_reference_jets_match_mpmath_diff(name):
    act = actlab.get(name)
    variables = ("a", "b") if act.gated else ("x",)
    ref = ReferenceFormula(REFERENCE_FORMULAS[name], variables, act.params)
    rng = np.random.default_rng(0)
    for p in rng.uniform(-4, 4, size=(5, len(variables))):
        jet, _ = ref.evaluate(p)

        def f(*v):
            return ref.evaluate([float(t) for t in v])[0].v

        with mpmath.workdps(30):
            for i in range(len(variables)):
                order = [0] * len(variables)
                order[i] = 1
                d = mpmath.diff(f, tuple(p), tuple(order), h=mpmath.mpf("1e-8"))
                assert float(jet.g[i]) == pytest.approx(float(d), rel=1e-6, abs=1e-12)


def test_reference_values_match_torch_float64():
    x = torch.linspace(-5, 5, 11, dtype=torch.float64)
    for name in ("silu", "softplus", "hardswish", "smelu", "celu"):
        act = actlab.get(name)
        ref = ReferenceFormula(REFERENCE_FORMULAS[name], ("x",), act.params)
        vals = [float(ref.evaluate([v])[0].v) for v in x.tolist()]
        np.testing.assert_allclose(act(x).numpy(), vals, rtol=1e-14, atol=1e-15)


def test_bad_dtype():
    with pytest.raises(ValueError, match="float8"):
        audit("relu", dtypes=["float8"])
