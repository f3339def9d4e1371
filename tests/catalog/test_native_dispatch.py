"""``act.module()`` runs PyTorch's native op where that costs no memory and no accuracy
(or, for the ops in ``APPROXIMATE``, a documented amount of accuracy), and its own
memory-efficient Function everywhere else."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from catalog_cases import CASES, assert_accurate, case_id, gated_input, get, points
from torch import nn

import actlab
from actlab.bench.accuracy import path_errors
from actlab.catalog import ActivationModule
from actlab.catalog.native import (
    APPROXIMATE,
    NATIVE_INPLACE,
    NATIVE_MODULE,
    NATIVE_OUTPUT_GRAD,
    describe,
    native_inplace_fn,
    native_module_fn,
)

DISPATCHED = [pytest.param(c, id=case_id(c)) for c in CASES if get(c).module().native]
IN_PLACE = [pytest.param(c, id=case_id(c)) for c in CASES
            if native_inplace_fn(get(c), tuple(get(c).learn))]


class ModuleView:
    """An activation seen through a module: f is its forward, f' its backward."""

    def __init__(self, act: actlab.Activation, module: nn.Module) -> None:
        self.act, self.module, self.gated, self.name = act, module, act.gated, act.name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float64:
            return self.act(x)
        with torch.no_grad():
            return self.module(x)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float64:
            return self.act.derivative(x)
        xr = x.detach().clone().requires_grad_(True)
        y = self.module(xr)
        (g,) = torch.autograd.grad(y, xr, torch.ones_like(y))
        return g


def _inputs(act: actlab.Activation, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    x = points(dtype)
    return gated_input(x) if act.gated else x


def test_table_names_builtins_with_a_native_op():
    for name in NATIVE_MODULE:
        act = actlab.get(name)
        assert act.spec.builtin and act.spec.native is not None, name
    assert set(APPROXIMATE) <= set(NATIVE_MODULE)
    # the composites that keep intermediates, and CPU logsigmoid's second buffer, stay out
    for name in ("softsign", "tanhshrink", "logsigmoid"):
        assert not actlab.get(name).module().native


def test_what_keeps_the_memory_efficient_function():
    assert not actlab.get("swiglu").module().native  # no native op
    assert not actlab.get("silu", beta=1.5).module().native  # F.silu has no beta
    assert not actlab.get("prelu").module().native  # alpha learned
    assert actlab.get("prelu", learn=[]).module().native
    assert not actlab.get("silu", learn=["beta"]).module().native
    assert not actlab.formula("x * sigmoid(x)").module().native
    assert not actlab.get("gelu").module(precise=True).native
    assert actlab.get("relu").module(precise=True).native  # exact: precise changes nothing
    assert native_module_fn(actlab.get("relu"), learned=("alpha",)) is None
    assert describe(actlab.get("gelu")) == {"native": True, "approximate": APPROXIMATE["gelu"]}
    assert describe(actlab.get("relu")) == {"native": True, "approximate": None}
    assert describe(actlab.get("swiglu")) == {"native": False, "approximate": None}


@pytest.mark.parametrize("case", DISPATCHED)
def test_dispatched_module_is_the_native_op(case):
    """Bit for bit PyTorch's result and gradient (the spec's own native factory)."""
    act = get(case)
    module = act.module()
    x = _inputs(act) * 0.5
    g = torch.randn(act(x).shape, generator=torch.Generator().manual_seed(0))
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = module(xa), act.native_fn(xb)
    ya.backward(g)
    yb.backward(g)
    assert torch.equal(ya, yb)
    assert torch.equal(xa.grad, xb.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", DISPATCHED)
def test_dispatched_module_within_catalog_tolerance(case, dtype):
    """Native ops not listed as approximate meet the catalog's own accuracy criterion;
    the approximate ones fail it somewhere in float32 (so the list is needed), and
    their precise module meets it."""
    act = get(case)
    x = _inputs(act, dtype)
    rtol = 1e-5 if dtype == torch.float32 else torch.finfo(dtype).eps
    view = ModuleView(act, act.module())
    if act.name not in APPROXIMATE:
        assert_accurate(view, x, rtol=rtol)
        return
    precise = act.module(precise=True)
    assert not precise.native
    assert_accurate(ModuleView(act, precise), x, rtol=rtol)
    if dtype == torch.float32 and act.name != "hardsigmoid":  # hardsigmoid: float64 only
        with pytest.raises(AssertionError):
            assert_accurate(view, x, rtol=rtol)


def test_hardsigmoid_float64_native_derivative_is_rounded():
    x = torch.linspace(-2, 2, 9, dtype=torch.float64, requires_grad=True)
    F.hardsigmoid(x).sum().backward()
    assert (x.grad - 1 / 6).abs().max() > 1e-9  # 1/6 in float32
    xp = x.detach().clone().requires_grad_(True)
    actlab.get("hardsigmoid").module(precise=True).double()(xp).sum().backward()
    torch.testing.assert_close(xp.grad, torch.full_like(xp, 1 / 6), rtol=1e-15, atol=0)


# the error figures documented in actlab.catalog.native (measured by benchmarks/accuracy.py)
DOCUMENTED = [
    # name, path, interval, bound on the relative error of f, of f', on the absolute errors
    # gelu's native float32 op depends on the CPU (oneDNN's kernel): 6.2e-5 relative and
    # 4e-7 absolute error on AVX2, 2.1e-4 and 1.1e-6 on AVX-512
    ("gelu", "native", (-3.0, 3.0), 2.5e-4, None, 1.2e-6),
    ("gelu", "precise", (-10.0, -3.0), 1e-5, 1e-5, None),
    ("gelu", "fast_precise", (-10.0, -3.0), 1e-5, 1e-5, None),
    ("gelu_tanh", "native", (-3.0, 3.0), 2e-5, None, 1.1e-6),
    ("gelu_tanh", "precise", (-10.0, -3.0), 2e-5, 2e-5, None),
    ("gelu_tanh", "fast_precise", (-10.0, -3.0), 2e-5, 2e-5, None),
    ("sigmoid", "native", (-10.0, 30.0), 2e-7, None, 1e-7),
    ("sigmoid", "precise", (-10.0, 30.0), 2e-7, 3e-7, None),
    ("tanh", "native", (-30.0, 30.0), 1e-7, None, 1e-7),
    ("tanh", "precise", (-30.0, 30.0), 1e-7, 3e-7, None),
]


@pytest.mark.parametrize("name, path, interval, rel_f, rel_d, abs_err", DOCUMENTED,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_documented_error_figures(name, path, interval, rel_f, rel_d, abs_err):
    e = path_errors(name, path, lo=interval[0], hi=interval[1], n=20001)
    assert e.f <= rel_f, e
    if rel_d is not None:
        assert e.d <= rel_d, e
    if abs_err is not None:
        assert e.abs_f <= abs_err and e.abs_d <= abs_err, e


def test_approximate_natives_lose_their_tails():
    """What the documentation says the native ops lose, they do lose."""
    assert path_errors("gelu", "native", lo=-6.0, hi=-5.6, n=101).f > 0.5
    assert path_errors("sigmoid", "native", lo=17.0, hi=20.0, n=101).d > 0.5
    assert path_errors("tanh", "native", lo=9.5, hi=12.0, n=101).d > 0.5
    x = torch.tensor([[1.0, 18.0]], requires_grad=True)  # glu's gate b = 18
    F.glu(x, dim=-1).sum().backward()
    assert x.grad[0, 1] == 0.0  # true value 1.5e-8
    xp = x.detach().clone().requires_grad_(True)
    actlab.get("glu").module(precise=True)(xp).sum().backward()
    assert xp.grad[0, 1].item() == pytest.approx(1.523e-8, rel=1e-3)


def test_dispatched_modules_pickle_and_copy():
    for name, params in [("leaky_relu", {"alpha": 0.2}), ("gelu_tanh", {}), ("glu", {}),
                         ("softplus", {"beta": 2.0})]:
        m = actlab.get(name, **params).module()
        x = torch.randn(4, 6)
        for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
            assert clone.native and torch.equal(clone(x), m(x))


def test_gated_native_module_keeps_actlabs_error():
    with pytest.raises(ValueError, match=r"last dimension .* even; got a tensor of shape"):
        actlab.get("glu").module()(torch.randn(3, 5))


def test_model_trains_exactly_as_with_torch_nn():
    """An MLP with actlab's gelu takes the same steps as one with nn.GELU, bit for bit."""
    from actlab.experiments.models import MLP

    torch.manual_seed(0)
    ours = MLP(16, (32, 32), 4, "gelu")
    theirs = copy.deepcopy(ours)
    for i, _ in enumerate(theirs.acts):
        theirs.acts[i] = nn.GELU()
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    losses = []
    for model in (ours, theirs):
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        trace = []
        for _ in range(20):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            trace.append(loss.item())
        losses.append(trace)
    assert losses[0] == losses[1]
    assert losses[0][-1] < losses[0][0]


def test_in_place_ops_are_native_ops_that_keep_only_their_output():
    assert set(NATIVE_INPLACE) <= set(NATIVE_MODULE)
    assert set(NATIVE_OUTPUT_GRAD) == set(NATIVE_INPLACE)
    assert {"relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh"} <= {
        case_id(c.values[0]).split("(")[0] for c in IN_PLACE}
    # their backward needs the input: in place, autograd would keep a copy of it
    assert not {"silu", "gelu", "mish", "hardswish", "softplus", "glu"} & set(NATIVE_INPLACE)
    # PyTorch refuses these in-place backwards: out of place
    assert native_inplace_fn(actlab.get("leaky_relu", alpha=-0.5)) is None
    assert native_inplace_fn(actlab.get("elu", alpha=-1.0)) is None
    assert native_inplace_fn(actlab.get("relu")) is torch.relu_
    assert native_inplace_fn(actlab.get("prelu"), ("alpha",)) is None  # learned: not native


@pytest.mark.parametrize("case", IN_PLACE)
def test_an_in_place_module_overwrites_a_fresh_output_and_keeps_the_gradient(case):
    act = get(case)
    torch.manual_seed(0)
    w = torch.randn(6, 6, dtype=torch.float64, requires_grad=True)
    x = torch.randn(256, 6, dtype=torch.float64) * 4
    runs = []
    for inplace in (False, True):
        z = x @ w  # a layer's fresh output, as a model's activation gets it
        y = ActivationModule(act, inplace=inplace)(z)
        assert (y.data_ptr() == z.data_ptr()) == inplace
        (g,) = torch.autograd.grad(y, w, torch.linspace(-1, 1, y.numel()).view_as(y).double())
        runs.append((y.detach(), g))
    (y0, g0), (y1, g1) = runs
    assert torch.equal(y1, y0)
    torch.testing.assert_close(g1, g0, rtol=1e-12, atol=1e-12)


def test_in_place_falls_back_out_of_place():
    z = torch.randn(8, 4)
    cases = [
        ActivationModule(actlab.get("gelu"), inplace=True),  # its backward needs the input
        ActivationModule(actlab.get("tanh"), precise=True, inplace=True),  # not native
        ActivationModule(actlab.get("leaky_relu", alpha=-0.5), inplace=True),
        ActivationModule(actlab.get("swiglu"), inplace=True),
    ]
    for m in cases:
        zz = (z.repeat(1, 2) if m.act.gated else z).clone().requires_grad_(True)
        y = m(zz * 1.0)
        y.sum().backward()  # no in-place autograd error
        assert zz.grad is not None and y.data_ptr() != zz.data_ptr()
    m = ActivationModule(actlab.get("relu"), inplace=True)
    assert "inplace" in repr(m)
    with actlab.low_memory():  # recomputation registers the output: out of place
        zz = z.clone()
        assert m(zz).data_ptr() != zz.data_ptr()
    assert m(z).data_ptr() == z.data_ptr()
    clone = pickle.loads(pickle.dumps(m))
    zz = z.clone()
    assert clone.inplace and clone(zz).data_ptr() == zz.data_ptr()


@pytest.mark.parametrize("case", IN_PLACE)
def test_the_output_grad_is_the_in_place_backward(case):
    act = get(case)
    x = (torch.linspace(-12, 12, 4001, dtype=torch.float64)).requires_grad_(True)
    m = ActivationModule(act, inplace=True)
    y = m(x * 1.0)
    g = torch.cos(torch.arange(x.numel(), dtype=torch.float64))
    (expected,) = torch.autograd.grad(y, x, g)
    assert ActivationModule(act).output_grad is None  # out of place: no such backward
    torch.testing.assert_close(m.output_grad(g, y.detach()), expected, rtol=1e-15, atol=0)
