"""Numerical stability: finite results in float32, float16 and bfloat16 wherever the true
value is finite, and float32 / half-precision accuracy against the float64 result.

The float64 values are themselves checked against mpmath in ``test_derivatives.py``.
"""

from __future__ import annotations

import pytest
import torch
from catalog_cases import assert_accurate, cases, finite_within, gated_input, get, points

LOW = [torch.float32, torch.float16, torch.bfloat16]


def _inputs(act, dtype: torch.dtype) -> torch.Tensor:
    """The test points rounded to ``dtype`` (rows [a, b] for gated activations)."""
    x = points(dtype)
    return gated_input(x) if act.gated else x


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("case", cases())
def test_finite_in_low_precision(case, dtype):
    act = get(case)
    x = _inputs(act, dtype)
    ref_f, ref_d = act(x.double()), act.derivative(x.double())
    y, d = act(x), act.derivative(x)
    assert y.dtype == dtype and d.dtype == dtype
    need_f, need_d = finite_within(ref_f, dtype), finite_within(ref_d, dtype)
    assert need_f.float().mean() > 0.5 and need_d.float().mean() > 0.5
    assert torch.isfinite(y[need_f]).all(), x[need_f.all(-1) if act.gated else need_f]
    assert torch.isfinite(d[need_d]).all()
    # the module: forward, and backward with an upstream gradient of ones
    xr = x.clone().requires_grad_(True)
    out = act.module()(xr)
    out.backward(torch.ones_like(out))
    assert out.dtype == dtype and xr.grad.dtype == dtype
    assert torch.isfinite(out[need_f]).all()
    assert torch.isfinite(xr.grad[need_d]).all()


@pytest.mark.parametrize("case", cases())
def test_float32_relative_accuracy(case):
    """float32 within 1e-5 (relative) of float64, beyond the inputs' own rounding."""
    act = get(case)
    assert_accurate(act, _inputs(act, torch.float32), rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", cases())
def test_half_precision_is_correctly_rounded(case, dtype):
    """float16 / bfloat16 results are the float64 value rounded (within one unit)."""
    act = get(case)
    assert_accurate(act, _inputs(act, dtype), rtol=torch.finfo(dtype).eps)
