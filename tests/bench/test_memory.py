"""Bytes saved for backward: known cases, counted once per storage."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import actlab
from actlab.bench.memory import saved_bytes, saved_bytes_per_element


def test_relu_saves_one_tensor():
    x = torch.randn(1000)
    assert saved_bytes(torch.relu, x) == 4000  # its output, float32
    assert saved_bytes_per_element(torch.relu, x.double()) == 8.0


def test_naive_mish_saves_intermediates():
    """x * tanh(softplus(x)): softplus saves x, tanh saves t, the product x and t: 2 tensors."""
    x = torch.randn(1000)
    assert saved_bytes_per_element(lambda t: t * torch.tanh(F.softplus(t)), x) == 8.0
    # the catalog's stable composite keeps more (relu, exp, log1p intermediates)
    assert saved_bytes_per_element(actlab.get("mish").spec.forward, x) > 8.0


def test_memory_efficient_modules_save_only_the_input():
    x = torch.randn(512)
    for name in ("mish", "gelu", "elish"):
        assert saved_bytes_per_element(actlab.get(name).module(), x) == 4.0


def test_shared_storage_counts_once():
    x = torch.randn(100)

    def twice(t):
        return t * t + t.sin()  # saves t (mul, both operands) and t (sin): one storage

    assert saved_bytes(twice, x) == 400


def test_nothing_saved_without_a_graph():
    assert saved_bytes(lambda t: t.detach() + 1, torch.randn(10)) == 0
