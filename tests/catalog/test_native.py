"""Agreement with the native PyTorch op (``Activation.native_fn``) where one exists:
forward, and the memory-efficient module's backward against native autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from catalog_cases import CASES, allowance, case_id, gated_input, get, points

import actlab

NATIVE = [pytest.param(c, id=case_id(c)) for c in CASES if get(c).native_fn is not None]

#: the activations with no native PyTorch equivalent (the report lists these)
WITHOUT_NATIVE = {
    "arctan", "bent_identity", "bilinear", "elish", "gaussian", "geglu", "identity", "isrlu",
    "isru", "lisht", "quick_gelu", "reglu", "serf", "sine", "smelu", "snake", "squared_relu",
    "swiglu", "tanhexp", "xielu", "star_relu", "pau", "dyt",
}


def _inputs(act, dtype):
    # the test points plus the kinks themselves: the conventions there must agree too
    kinks = torch.tensor(list(act.spec.kinks(**act.params)), dtype=torch.float64)
    x = torch.cat([points(), kinks]).to(dtype)
    return gated_input(x) if act.gated else x


def test_native_coverage_is_as_documented():
    have = {n for n in actlab.names(builtin_only=True) if actlab.get(n).native_fn is None}
    assert have == WITHOUT_NATIVE
    assert actlab.get("silu", beta=2.0).native is None  # F.silu has no beta
    assert actlab.get("silu").native == "F.silu"


def _assert_agree(act, x, ours, native, reference, allowance) -> None:
    """Close to the native result; where not, at most as far from float64 (within the
    ``allowance`` for rounding the inputs, see ``test_stability``) as native is.

    Native ops are not always the more accurate: float32 ``F.gelu`` computes
    ``1 + erf(x / sqrt 2)`` (1e-4 relative error at x = -3, where actlab uses erfc),
    float64 ``F.hardsigmoid``'s backward uses 1/6 rounded to float32.
    """
    scale = x.double().abs().amax(-1, keepdim=True) if act.gated else x.double().abs()
    ours, native = ours.double(), native.double()
    if x.dtype == torch.float64:
        torch.testing.assert_close(ours, native, rtol=1e-7, atol=1e-12)
        return
    torch.testing.assert_close(ours, native, rtol=1e-5, atol=1e-6 * scale.clamp(min=1.0).max())
    err_ours, err_native = (ours - reference).abs(), (native - reference).abs()
    slack = 2e-7 * reference.abs() + allowance + 1e-35 * scale.clamp(min=1.0)
    worse = err_ours > err_native + slack
    assert not worse.any(), (x[worse.any(-1) if act.gated else worse], ours[worse], native[worse])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", NATIVE)
def test_forward_and_backward_match_native(case, dtype):
    act = get(case)
    native = act.native_fn
    x = _inputs(act, dtype)
    eps = torch.finfo(torch.float32).eps
    x64 = x.double()
    _assert_agree(act, x, act(x), native(x), act(x64), allowance(act, x64, act.gated, 4 * eps))
    g = torch.randn(act(x).shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    xa = x.clone().requires_grad_(True)
    act.module().to(dtype)(xa).backward(g)
    xn = x.clone().requires_grad_(True)
    native(xn).backward(g)
    g2 = torch.cat([g, g], dim=-1) if act.gated else g
    slack = g2.double().abs() * allowance(act.derivative, x64, act.gated, 4 * eps)
    _assert_agree(act, x, xa.grad, xn.grad, g2.double() * act.derivative(x64), slack)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_prelu_parameter_gradient_matches_native(dtype):
    x = points(dtype)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    module = actlab.get("prelu", alpha=0.3).module().to(dtype)
    module(x).backward(g)
    weight = torch.tensor([0.3], dtype=dtype, requires_grad=True)
    F.prelu(x, weight).backward(g)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(module.alpha.grad.reshape(1), weight.grad, **tol)
