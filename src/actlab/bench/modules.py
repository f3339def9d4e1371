"""Activation modules in a real training step: actlab's against ``torch.nn``'s.

:func:`bench_modules` times one optimisation step (forward, cross-entropy, backward,
Adam) of a real model whose activation layers are, in turn:

* ``native``: ``torch.nn``'s module (``nn.ReLU``, ``nn.GELU``, ...) where PyTorch has one;
* ``actlab``: ``act.module()``, which runs the native op where that saves no more memory
  (:mod:`actlab.catalog.native`) and its memory-efficient custom ``autograd.Function``
  otherwise;
* ``function``: the memory-efficient custom ``autograd.Function`` for every activation
  (what ``act.module()`` ran for all of them before it called native ops).

Models (:data:`MODELS`): ``"mlp"``, the ``mlp/mnist1d`` task's ``MLP(40, (256, 128), 10)``
at batch 128, and ``"cnn"``, the article's CNN on 1 x 28 x 28 images
(``cnn/fashion_mnist``'s shape) at batch 128. Every variant starts from the same weights
and trains on the same batch (random values: the cost does not depend on them); the
variants are timed interleaved, best of rounds (:func:`actlab.bench.timing.measure`).

Example:
    >>> rows = bench_modules(["relu"], models=["mlp"], min_run_time=0.01, rounds=1)
    >>> rows[0].actlab_vs_native > 0
    True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actlab.bench.timing import measure
from actlab.catalog import Activation, ActivationModule, get
from actlab.experiments.models import CNN, MLP

#: ``torch.nn`` module for an activation's parameter values (``None``: PyTorch has none)
NN_MODULES: dict[str, Callable[[Mapping[str, float]], nn.Module | None]] = {
    "relu": lambda p: nn.ReLU(),
    "leaky_relu": lambda p: nn.LeakyReLU(p["alpha"]),
    "relu6": lambda p: nn.ReLU6(),
    "hardtanh": lambda p: nn.Hardtanh(p["min_val"], p["max_val"]),
    "threshold": lambda p: nn.Threshold(p["threshold"], p["value"]),
    "hardsigmoid": lambda p: nn.Hardsigmoid(),
    "hardswish": lambda p: nn.Hardswish(),
    "softshrink": lambda p: nn.Softshrink(p["lambd"]),
    "hardshrink": lambda p: nn.Hardshrink(p["lambd"]),
    "elu": lambda p: nn.ELU(p["alpha"]),
    "celu": lambda p: nn.CELU(p["alpha"]),
    "selu": lambda p: nn.SELU(),
    "softplus": lambda p: nn.Softplus(p["beta"], p["threshold"]),
    "silu": lambda p: nn.SiLU() if p["beta"] == 1.0 else None,
    "mish": lambda p: nn.Mish(),
    "sigmoid": lambda p: nn.Sigmoid(),
    "tanh": lambda p: nn.Tanh(),
    "logsigmoid": lambda p: nn.LogSigmoid(),
    "softsign": lambda p: nn.Softsign(),
    "tanhshrink": lambda p: nn.Tanhshrink(),
    "gelu": lambda p: nn.GELU(),
    "gelu_tanh": lambda p: nn.GELU(approximate="tanh"),
    "glu": lambda p: nn.GLU(dim=-1),
}

BATCH = 128


def _mlp(activation: Activation) -> tuple[nn.Module, tuple[int, ...]]:
    return MLP(40, (256, 128), 10, activation), (40,)


def _cnn(activation: Activation) -> tuple[nn.Module, tuple[int, ...]]:
    return CNN((1, 28, 28), 10, activation), (1, 28, 28)


#: model name -> (activation -> (model, input shape without the batch))
MODELS: dict[str, Callable[[Activation], tuple[nn.Module, tuple[int, ...]]]] = {
    "mlp": _mlp,
    "cnn": _cnn,
}


def nn_module(act: Activation) -> nn.Module | None:
    """``torch.nn``'s module for ``act`` (its parameter values), or ``None``."""
    factory = NN_MODULES.get(act.spec.name) if act.spec.builtin else None
    return factory(act.params) if factory is not None else None


def function_module(act: Activation) -> ActivationModule:
    """``act``'s module forced onto the memory-efficient custom ``autograd.Function``."""
    m = ActivationModule(act, precise=True)
    m._native = None
    return m


def swap_activations(model: nn.Module, make: Callable[[], nn.Module]) -> nn.Module:
    """A copy of ``model`` with every :class:`ActivationModule` replaced by ``make()``."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ActivationModule):
                setattr(parent, name, make())
    return model


@dataclass
class ModuleRow:
    """Seconds per training step of one model with one activation, three ways.

    ``native``: ``torch.nn``'s module (``nan`` without one); ``actlab``: ``act.module()``;
    ``function``: the custom ``autograd.Function`` path. ``dispatch``: whether
    ``act.module()`` runs the native op.
    """

    model: str
    activation: str
    dispatch: bool
    threads: int
    batch: int
    native: float
    actlab: float
    function: float

    @property
    def actlab_vs_native(self) -> float:
        return self.actlab / self.native

    @property
    def function_vs_native(self) -> float:
        return self.function / self.native

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["actlab_vs_native"] = self.actlab_vs_native
        out["function_vs_native"] = self.function_vs_native
        return out


def _stepper(model: nn.Module, x: Tensor, y: Tensor) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def bench_modules(
    activations: Iterable[str | Activation] = ("relu", "gelu", "silu", "mish", "elu", "tanh"),
    *,
    models: Sequence[str] = ("mlp", "cnn"),
    batch: int = BATCH,
    device: str | torch.device = "cpu",
    min_run_time: float = 0.5,
    rounds: int = 5,
    clock: str = "wall",
    seed: int = 0,
    progress: Callable[[ModuleRow], None] | None = None,
) -> list[ModuleRow]:
    """Time a training step per model and activation (see the module docstring).

    ``clock="cpu"`` measures the process's CPU time (for one thread on a busy machine:
    the time other processes hold the core is left out).
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; accepted: {', '.join(MODELS)}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    dev = torch.device(device)
    rows = []
    for model_name in models:
        for a in activations:
            act = get(a)
            torch.manual_seed(seed)
            base, shape = MODELS[model_name](act)
            base = base.to(dev)
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(batch, *shape, generator=g).to(dev)
            y = torch.randint(0, 10, (batch,), generator=g).to(dev)
            makers: dict[str, Callable[[], nn.Module]] = {
                "actlab": act.module,
                "function": lambda act=act: function_module(act),
            }
            if nn_module(act) is not None:
                makers["native"] = lambda act=act: nn_module(act)
            fns = {k: _stepper(swap_activations(base, make).to(dev), x, y)
                   for k, make in makers.items()}
            t = measure(fns, min_run_time=min_run_time, rounds=rounds, clock=clock)
            row = ModuleRow(
                model=model_name, activation=act.name, dispatch=act.module().native,
                threads=torch.get_num_threads(), batch=batch,
                native=t.get("native", math.nan), actlab=t["actlab"], function=t["function"],
            )
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def markdown(rows: Sequence[ModuleRow]) -> str:
    """A markdown table: ms per step and the ratios to ``torch.nn``'s module."""

    def ms(v: float) -> str:
        return "-" if math.isnan(v) else f"{1e3 * v:.2f}"

    def r(v: float) -> str:
        return "-" if math.isnan(v) else f"{v:.2f}"

    lines = [
        "| model | activation | act.module() runs | torch.nn ms | actlab ms | custom Function ms "
        "| actlab / torch.nn | Function / torch.nn |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.model} | {row.activation} | {'native op' if row.dispatch else 'Function'} "
            f"| {ms(row.native)} | {ms(row.actlab)} | {ms(row.function)} "
            f"| {r(row.actlab_vs_native)} | {r(row.function_vs_native)} |"
        )
    return "\n".join(lines)

