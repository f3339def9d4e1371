"""``actlab.swap`` on models actlab did not write: nested blocks, shared modules, functional
activations, a model fx cannot trace, user activation classes, gated targets."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import actlab
from actlab.catalog import ActivationModule
from actlab.catalog.swap import as_activation, swap


class Block(nn.Module):
    """A user block: residual MLP with an activation module and a functional one."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(F.silu(x))))


class Net(nn.Module):
    """Nested containers: Sequential, ModuleList of user blocks, ModuleDict, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(6, 16), nn.GELU())
        self.blocks = nn.ModuleList([Block(16), Block(16)])
        self.extra = nn.ModuleDict({"gate": nn.Sigmoid(), "proj": nn.Linear(16, 16)})
        self.head = nn.Sequential(nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        h = self.extra["proj"](h) * self.extra["gate"](h)
        return self.head(h)


class Untraceable(Net):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return super().forward(x)
        return super().forward(-x)


class MyAct(nn.Module):
    """A user's own activation class (not a torch.nn one)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(2.0 * x)


def _reference(model: Net, x: torch.Tensor, f, keep_head: bool = False) -> torch.Tensor:
    """The forward pass written out by hand, with ``f`` for every activation module."""
    h = f(model.stem[0](x))
    for b in model.blocks:
        h = h + b.fc2(f(b.fc1(F.silu(h))))
    h = model.extra["proj"](h) * f(h)
    return model.head[1](torch.tanh(h) if keep_head else f(h))


def test_swap_replaces_every_activation_module_in_nested_blocks():
    torch.manual_seed(0)
    model = Net().double()
    x = torch.randn(5, 6, dtype=torch.float64)
    done = swap(model, "mish")
    assert [s.name for s in done.replaced] == [
        "stem.1", "blocks.0.act", "blocks.1.act", "extra.gate", "head.0"]
    assert [type(s.old).__name__ for s in done.replaced] == [
        "GELU", "ReLU", "ReLU", "Sigmoid", "Tanh"]
    for s in done.replaced:
        assert isinstance(s.new, ActivationModule) and s.new.act.name == "mish"
        assert model.get_submodule(s.name) is s.new
    # independent reference: F.mish on the same weights
    expected = _reference(model, x, F.mish)
    torch.testing.assert_close(model(x), expected, rtol=1e-12, atol=1e-12)


def test_functional_activations_are_reported_not_replaced():
    model = Net()
    done = swap(model, "gelu")
    left = done.not_replaced
    assert [(s.name, s.old) for s in left] == [("blocks.0", F.silu), ("blocks.1", F.silu)]
    assert all(s.new is None and "F.silu is called as a function" in s.note for s in left)
    assert "in the forward of blocks.0 (Block)" in left[0].note
    assert "blocks.0: F.silu not replaced" in str(done)
    assert done.trace_error == ""


def test_untraceable_model_still_swaps_its_modules_and_says_why():
    model = Untraceable()
    done = swap(model, "elu", alpha=0.5)
    assert len(done.replaced) == 5 and not done.not_replaced
    assert done.trace_error.startswith("TraceError")
    assert "does not trace with torch.fx" in str(done)
    assert model.head[0].act.params == {"alpha": 0.5}


def test_only_and_exclude_select_by_name_pattern():
    torch.manual_seed(1)
    model = Net().double()
    x = torch.randn(4, 6, dtype=torch.float64)
    done = swap(model, "relu", exclude="head")
    assert "head.0" not in [s.name for s in done]
    assert isinstance(model.head[0], nn.Tanh)
    torch.testing.assert_close(model(x), _reference(model, x, F.relu, keep_head=True))
    model = Net()
    done = swap(model, "silu", only="blocks.*")
    assert [s.name for s in done.replaced] == ["blocks.0.act", "blocks.1.act"]
    assert isinstance(model.stem[1], nn.GELU)


@pytest.mark.parametrize("kw", [{"only": "blokcs"}, {"exclude": ["head", "haed"]}])
def test_a_pattern_that_matches_nothing_is_an_error(kw):
    model = Net()
    before = copy.deepcopy(model)
    with pytest.raises(ValueError, match=r"pattern '(blokcs|haed)' matches no module"):
        swap(model, "gelu", **kw)
    assert str(model) == str(before)  # nothing changed


def test_a_shared_module_is_replaced_by_one_shared_module():
    act = nn.ReLU()
    model = nn.Sequential(nn.Linear(4, 4), act, nn.Linear(4, 4), act)
    done = swap(model, "prelu")
    assert [s.name for s in done] == ["1", "3"]
    assert model[1] is model[3] and isinstance(model[1], ActivationModule)
    # one learned slope, shared, registered once
    assert sum(1 for n, _ in model.named_parameters() if n.endswith("alpha")) == 1


def test_user_classes_are_swapped_when_named_in_match():
    model = nn.Sequential(nn.Linear(4, 4), MyAct(), nn.Linear(4, 2))
    done = swap(model, "gelu")  # MyAct is not known: the sigmoid in its forward is reported
    assert not done.replaced and isinstance(model[1], MyAct)
    assert [(s.name, s.old) for s in done] == [("1", torch.sigmoid)]
    assert "in the forward of 1 (MyAct)" in done[0].note and "match=(MyAct,)" in done[0].note
    done = swap(model, "gelu", match=(MyAct,))
    assert [s.name for s in done] == ["1"] and isinstance(model[1], ActivationModule)


def test_actlab_modules_are_swapped_too():
    model = nn.Sequential(nn.Linear(4, 4), actlab.get("swish").module(fast=True), nn.Linear(4, 2))
    done = swap(model, "formula:x * tanh(softplus(x))")
    assert done[0].old.act.name == "silu"
    assert model[1].act.key == "formula:x * tanh(softplus(x))"


def test_new_modules_take_device_dtype_and_mode_of_the_old_ones():
    model = nn.Sequential(nn.Linear(4, 4), nn.PReLU(), nn.Linear(4, 2)).to(torch.float64)
    model.eval()
    swap(model, "silu", learn=["beta"])
    assert model[1].beta.dtype == torch.float64 and not model[1].training
    assert model[1].beta.device == model[0].weight.device
    y = model(torch.randn(3, 4, dtype=torch.float64))
    assert y.dtype == torch.float64


def test_gated_target_is_refused_in_one_sentence():
    model = Net()
    with pytest.raises(ValueError, match=r"gated activation 'swiglu'.*twice its output width"):
        swap(model, "swiglu")
    assert isinstance(model.stem[1], nn.GELU)


def test_a_gated_activation_of_the_model_is_not_replaced_by_an_elementwise_one():
    model = nn.Sequential(nn.Linear(4, 8), nn.GLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"1 is a gated activation .* exclude='1'"):
        swap(model, "relu")
    assert swap(model, "relu", exclude="1") == []


def test_bad_arguments():
    with pytest.raises(KeyError, match=r"unknown activation 'gelly'"):
        swap(Net(), "gelly")
    with pytest.raises(TypeError, match=r"swap expects a torch.nn.Module, got str"):
        swap("model", "relu")
    with pytest.raises(TypeError, match=r"match takes nn.Module subclasses"):
        swap(Net(), "relu", match=(int,))
    with pytest.raises(ValueError, match=r"the model is itself an activation module"):
        swap(nn.ReLU(), "gelu")


@pytest.mark.parametrize(
    ("module", "name", "params"),
    [
        (nn.LeakyReLU(0.2), "leaky_relu", {"alpha": 0.2}),
        (nn.ELU(alpha=0.7), "elu", {"alpha": 0.7}),
        (nn.GELU(approximate="tanh"), "gelu_tanh", {}),
        (nn.Softplus(beta=2.0), "softplus", {"beta": 2.0, "threshold": 20.0}),
        (nn.ReLU6(), "relu6", {}),  # a subclass of Hardtanh: the exact class wins
        (nn.Hardtanh(-2.0, 2.0), "hardtanh", {"min_val": -2.0, "max_val": 2.0}),
    ],
)
def test_torch_modules_map_to_the_same_function(module, name, params):
    act = as_activation(module)
    assert (act.name, act.params) == (name, params)
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    torch.testing.assert_close(act(x), module(x), rtol=1e-6, atol=1e-7)


def test_functional_calls_map_with_their_arguments():
    act = as_activation(F.leaky_relu, (None, 0.3))
    assert (act.name, act.params) == ("leaky_relu", {"alpha": 0.3})
    assert as_activation(F.gelu, (), {"approximate": "tanh"}).name == "gelu_tanh"
    assert as_activation("sigmoid").name == "sigmoid"
    assert as_activation(nn.GLU(dim=1)) is None
    assert as_activation(nn.Linear(2, 2)) is None
