"""The transformer FFN block with each activation: fused kernels against the composite.

``Linear(d_model, k * h) -> activation -> Linear(h, d_model)`` on ``(batch, seq,
d_model)`` inputs, the seed article's ``TransformerFFN``; gated activations (the GLU
family, ``k = 2``) use ``h = round(2/3 d_ff)`` so that the parameter count matches the
plain block with ``h = d_ff`` (Shazeer, 2020). Each activation runs as

* ``fast``: the compiled fused module (one kernel forward, one backward, saves x);
* ``composite``: the spec's forward as plain torch ops under autograd (for the GLU
  family: split, gate activation, product: the unfused gate);
* ``native``: the native PyTorch op, where there is one,

and the block is timed forward (no graph) and forward + backward (input and weight
gradients), with :func:`actlab.bench.timing.measure`.

Example:
    >>> rows = bench_ffn(["swiglu"], d_model=32, d_ff=64, batch=2, seq=8,
    ...                  min_run_time=0.01, rounds=1)
    >>> rows[0].name
    'swiglu'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from actlab.bench.kernels import _composite
from actlab.bench.timing import measure
from actlab.catalog import Activation, get
from actlab.catalog.fast import FastActivationModule


class _Fn(nn.Module):
    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)


class FFNBlock(nn.Module):
    """``linear2(act(linear1(x)))`` with any activation module.

    Shape: ``(*, d_model)`` -> ``(*, d_model)``.
    """

    def __init__(self, d_model: int, hidden: int, act: nn.Module, gated: bool) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, (2 if gated else 1) * hidden)
        self.act = act
        self.linear2 = nn.Linear(hidden, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.act(self.linear1(x)))


@dataclass
class FFNRow:
    """Block times (seconds) per variant; ``nan`` where there is no native op."""

    name: str
    hidden: int
    fwd_fast: float
    fwd_composite: float
    fwd_native: float
    fb_fast: float
    fb_composite: float
    fb_native: float

    @property
    def fwd_speedup(self) -> float:
        """Composite forward time / fused forward time."""
        return self.fwd_composite / self.fwd_fast

    @property
    def fb_speedup(self) -> float:
        """Composite forward+backward time / fused forward+backward time."""
        return self.fb_composite / self.fb_fast

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fwd_speedup": self.fwd_speedup, "fb_speedup": self.fb_speedup}


def bench_ffn(
    activations: Iterable[str | Activation] = ("relu", "gelu", "silu", "glu", "reglu", "geglu",
                                               "swiglu"),
    *,
    d_model: int = 512,
    d_ff: int = 2048,
    batch: int = 8,
    seq: int = 128,
    device: str | torch.device = "cpu",
    min_run_time: float = 0.2,
    rounds: int = 3,
    clock: str = "wall",
    seed: int = 0,
) -> list[FFNRow]:
    """Time the FFN block with each activation (see the module docstring)."""
    if min(d_model, d_ff, batch, seq) < 1:
        raise ValueError(
            f"d_model, d_ff, batch and seq must be >= 1, got {d_model}, {d_ff}, {batch}, {seq}"
        )
    dev = torch.device(device)
    rows = []
    for a in activations:
        act = get(a)
        hidden = max(1, round(2 * d_ff / 3)) if act.gated else d_ff
        torch.manual_seed(seed)
        variants: dict[str, nn.Module] = {
            "fast": FastActivationModule(act),
            "composite": _Fn(_composite(act)),
        }
        if act.native_fn is not None:
            variants["native"] = _Fn(act.native_fn)
        x = torch.randn(batch, seq, d_model, device=dev)
        grad = torch.randn(batch, seq, d_model, device=dev)
        fns: dict[str, Callable[[], Any]] = {}
        for key, module in variants.items():
            torch.manual_seed(seed)
            block = FFNBlock(d_model, hidden, module, act.gated).to(dev)
            fns[f"fwd_{key}"] = _forward(block, x)
            fns[f"fb_{key}"] = _forward_backward(block, x, grad)
        t = measure(fns, min_run_time=min_run_time, rounds=rounds, clock=clock)
        nan = float("nan")
        rows.append(FFNRow(
            name=act.name, hidden=hidden,
            fwd_fast=t["fwd_fast"], fwd_composite=t["fwd_composite"],
            fwd_native=t.get("fwd_native", nan),
            fb_fast=t["fb_fast"], fb_composite=t["fb_composite"],
            fb_native=t.get("fb_native", nan),
        ))
    return rows


def _forward(block: nn.Module, x: Tensor) -> Callable[[], Any]:
    def call() -> Any:
        with torch.no_grad():
            return block(x)

    return call


def _forward_backward(block: nn.Module, x: Tensor, grad: Tensor) -> Callable[[], Any]:
    xg = x.detach().clone().requires_grad_(True)
    params = [xg, *block.parameters()]

    def call() -> Any:
        return torch.autograd.grad(block(xg), params, grad)

    return call
