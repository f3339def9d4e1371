"""The hand-written formulas (the kernel benchmark's compiled peer) compute the catalog's
functions."""

from __future__ import annotations

import pytest
import torch

import actlab
from actlab.bench.hand import HAND, hand_formula

BUILTINS = actlab.names(builtin_only=True)


def test_every_builtin_has_a_hand_formula():
    assert set(HAND) == set(BUILTINS)
    assert hand_formula(actlab.formula("x * sigmoid(x)")) is None


@pytest.mark.parametrize("name", BUILTINS)
def test_hand_formula_is_the_same_function(name):
    act = actlab.get(name)
    x = torch.linspace(-5.0, 5.0, 101, dtype=torch.float64)
    if act.gated:
        x = torch.stack([x, x.flip(0)], dim=-1)
    torch.testing.assert_close(hand_formula(act)(x), act(x), rtol=1e-9, atol=1e-12)


def test_hand_formula_takes_the_parameters():
    act = actlab.get("softplus", beta=2.0, threshold=5.0)
    x = torch.linspace(-4.0, 4.0, 33, dtype=torch.float64)
    torch.testing.assert_close(hand_formula(act)(x), act(x))


def test_each_compiled_hand_formula_has_its_own_code_object():
    """dynamo caches graphs per code object: shared closures would hit its recompile limit
    and run later activations eagerly without a word."""
    from actlab.bench.kernels import compile_hand

    a = compile_hand(hand_formula(actlab.get("elu")), "elu")[0]
    b = compile_hand(hand_formula(actlab.get("celu")), "celu")[0]
    codes = [getattr(f, "_torchdynamo_orig_callable", f).__code__ for f in (a, b)]
    assert codes[0] is not codes[1]


LEARNABLE = [n for n in BUILTINS if actlab.get(n).learn]


@pytest.mark.parametrize("name", LEARNABLE)
def test_hand_module_learns_what_the_activation_learns(name):
    """The peer of a learnable activation learns the same parameters: its backward
    computes their gradients, equal (float64) to those of actlab's own module."""
    from actlab.bench.hand import HandModule

    act = actlab.get(name)
    hand = HandModule(act, channels=5).double()
    ours = act.module(channels=5).double()
    assert {n for n, _ in hand.named_parameters()} == set(act.learn)
    x = torch.linspace(-3.0, 3.0, 20, dtype=torch.float64).view(4, 5)
    g = torch.linspace(-1.0, 1.0, 20, dtype=torch.float64).view(4, 5)
    torch.testing.assert_close(hand(x), ours(x), rtol=1e-9, atol=1e-12)
    hand(x).backward(g)
    ours(x).backward(g)
    for n, p in hand.named_parameters():
        assert p.grad is not None, n
        torch.testing.assert_close(p.grad, getattr(ours, n).grad, rtol=1e-7, atol=1e-10)


def test_hand_module_needs_the_channels_of_per_channel_parameters():
    from actlab.bench.hand import HandModule

    with pytest.raises(ValueError, match="per channel"):
        HandModule(actlab.get("dyt"))
    with pytest.raises(ValueError, match="no hand-written formula"):
        HandModule(actlab.formula("x * sigmoid(x)"))
