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
