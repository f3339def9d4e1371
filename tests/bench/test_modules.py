"""The training-step benchmark of activation modules: structure and arithmetic, not speed."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import actlab
from actlab.bench.accuracy import path_errors
from actlab.bench.modules import (
    bench_modules,
    function_module,
    markdown,
    nn_module,
    swap_activations,
)
from actlab.catalog import ActivationModule
from actlab.experiments.models import CNN

QUICK = {"min_run_time": 0.01, "rounds": 1}


def test_rows_and_ratios():
    rows = bench_modules(["relu", "swiglu"], models=["mlp"], batch=8, **QUICK)
    relu, swiglu = rows
    assert relu.dispatch and not swiglu.dispatch
    assert relu.native > 0 and relu.actlab > 0 and relu.function > 0
    assert relu.actlab_vs_native == pytest.approx(relu.actlab / relu.native)
    assert math.isnan(swiglu.native)  # torch.nn has no SwiGLU
    text = markdown(rows)
    assert "| mlp | relu | native op |" in text and "| mlp | swiglu | Function | - |" in text
    with pytest.raises(ValueError, match="unknown model"):
        bench_modules(["relu"], models=["resnet"])


def test_swap_reaches_every_activation_layer():
    model = CNN((1, 8, 8), 10, "gelu")
    swapped = swap_activations(model, nn.GELU)
    assert not any(isinstance(m, ActivationModule) for m in swapped.modules())
    assert sum(isinstance(m, nn.GELU) for m in swapped.modules()) == 3
    assert any(isinstance(m, ActivationModule) for m in model.modules())  # a copy
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(swapped(x), model(x))  # same weights, same op


def test_variants():
    assert isinstance(nn_module(actlab.get("leaky_relu", alpha=0.2)), nn.LeakyReLU)
    assert nn_module(actlab.get("leaky_relu", alpha=0.2)).negative_slope == 0.2
    assert nn_module(actlab.get("silu", beta=2.0)) is None
    assert nn_module(actlab.get("swiglu")) is None
    m = function_module(actlab.get("relu"))
    assert not m.native
    x = torch.randn(10, requires_grad=True)
    m(x).sum().backward()
    torch.testing.assert_close(x.grad, (x > 0).float())


def test_path_errors_arguments():
    assert path_errors("swish", "native", lo=-1, hi=1, n=11) is not None
    assert path_errors("serf", "native", lo=-1, hi=1, n=11) is None  # no native op
    e = path_errors("relu", "module", lo=-1, hi=1, n=11)
    assert e.f == 0.0 and e.d == 0.0
    with pytest.raises(ValueError, match="unknown path"):
        path_errors("relu", "cuda")
    with pytest.raises(ValueError, match="gated"):
        path_errors("glu", "native")
