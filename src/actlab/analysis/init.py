"""Initialise any model's layers with the gain of the activation they read.

``init_(model)`` sets every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` weight Kaiming-style,

    W ~ N(0, std^2),   std = gain / sqrt(fan),   fan = fan_in (default) or fan_out,

with ``gain = 1 / sqrt(E[f(z)^2])`` (:func:`actlab.analysis.gain`, by quadrature) of the
activation ``f`` whose output the layer reads, and its bias to zero. This is He et al.'s
(2015) derivation: ``E[h_l^2] = fan_in Var(W_l) E[f(h_{l-1})^2]`` keeps the second moment
of the pre-activations at one when ``Var(W_l) = gain(f)^2 / fan_in``. In the chain
``Linear -> f -> Linear -> f -> ... -> Linear`` the activation a layer reads is the one
that follows the layer before it, so every layer but the first gets ``gain(f)``; a layer
that reads no activation (the model's input, a normalisation, a residual sum, another
layer) gets gain 1.

Pairing each layer with the activation *after* it instead (PyTorch's habit with
``calculate_gain``) also gives the first layer ``gain(f)``: its pre-activations start at
``E[h^2] = gain^2``, off the fixed point, and for GELU, SiLU and Mish, whose variance map
has slope above one there (1.14, 1.17, 1.08), the second moment then grows layer after
layer (mean-field: x189, x3e4, x24 after 30 layers); :func:`init_` does not do that.

Every layer then keeps ``E[h^2] = 1``: ``q = 1`` is a fixed point of the variance map
``q -> gain^2 E[f(sqrt(q) z)^2]``, but whether it is stable depends on the activation. Its
slope there is 0.46 (tanh), 0.89 (ELU), 1 (ReLU), 1.08 (Mish), 1.14 (GELU), 1.17 (SiLU);
above one, deviations grow with depth, and through 32 plain layers GELU and SiLU nets
spread to inputs that collapse and inputs that explode (``benchmarks/init_depth.py``):
there, normalisation or residual connections keep the scale, not the gain.

Which activation a layer reads is found from a ``torch.fx`` trace of the model (activation
modules kept whole; functional calls such as ``F.silu(x)`` count too), following the input
back through shape-only and pooling steps (flatten, view, dropout, max/avg pooling, mean).
Where the model does not trace, or for layers the trace does not reach (inside a leaf
module), the module order is used instead: the last activation module registered since the
previous layer or normalisation. ``LayerInit.source`` says which.

Learnable activations count at their current (initial) parameters: an actlab module's
``current()``, ``nn.PReLU`` at the mean of its slopes. GLU-family activations use the
gain of their gated output ``E[f(a, b)^2]``, a and b the two halves of the layer before.
Classes named in ``match`` are activations too; their gain comes from calling the module.

Example:
    >>> model = nn.Sequential(nn.Linear(784, 256), nn.GELU(), nn.Linear(256, 10))
    >>> for row in init_(model): print(row.name, row.activation, round(row.gain, 4))
    0 None 1.0
    2 gelu 1.5335
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actlab.analysis.gain import gain as activation_gain
from actlab.catalog import Activation, from_callable
from actlab.catalog.swap import (
    METHODS,
    TORCH_FUNCTIONS,
    as_activation,
    is_activation_module,
    trace,
)

LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
    *([nn.RMSNorm] if hasattr(nn, "RMSNorm") else []),
)  # fmt: skip
#: modules a layer's input passes through on its way from an activation (shape, pooling)
PASS_MODULES: tuple[type[nn.Module], ...] = (
    nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.Dropout3d, nn.AlphaDropout, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d,
    nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)  # fmt: skip
PASS_FUNCTIONS = {
    torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.permute,
    torch.transpose, torch.mean, F.dropout, F.max_pool1d, F.max_pool2d, F.max_pool3d,
    F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d, F.adaptive_max_pool1d, F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
}  # fmt: skip
PASS_METHODS = {
    "view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze",
    "unsqueeze", "mean", "to", "float", "view_as", "reshape_as",
}  # fmt: skip
MODES = ("fan_in", "fan_out")
DISTRIBUTIONS = ("normal", "uniform")


@dataclass(frozen=True)
class LayerInit:
    """What :func:`init_` set for one layer.

    Attributes:
        name: the layer's qualified name in the model.
        layer: its type and shape, e.g. ``"Linear(256->128)"``.
        activation: the activation whose output it reads (actlab name), or ``None``.
        gain: the gain used (1 without an activation).
        fan: fan_in or fan_out (see ``mode``).
        std: the weights' standard deviation, ``gain / sqrt(fan)``.
        source: how the activation was found: ``"fx"`` (a trace) or ``"module order"``.
    """

    name: str
    layer: str
    activation: str | None
    gain: float
    fan: int
    std: float
    source: str


class Inits(list[LayerInit]):
    """What :func:`init_` set: a list of :class:`LayerInit`, in module order.

    Attributes:
        mode: ``"fan_in"`` or ``"fan_out"``.
        trace_error: why the model could not be traced (``""`` when it traced).
    """

    mode: str = "fan_in"
    trace_error: str = ""

    def __str__(self) -> str:
        head = ("layer", "type", "reads", "gain", self.mode, "std", "found by")
        rows = [head] + [
            (r.name, r.layer, r.activation or "-", f"{r.gain:.4f}", str(r.fan), f"{r.std:.4g}",
             r.source)
            for r in self
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]
        if self.trace_error:
            lines.append(f"(no fx trace: {self.trace_error}; the module order was used)")
        return "\n".join(lines)


def _describe(layer: nn.Module) -> str:
    if isinstance(layer, nn.Linear):
        return f"Linear({layer.in_features}->{layer.out_features})"
    conv: Any = layer
    kernel = "x".join(str(k) for k in conv.kernel_size)
    return f"{type(layer).__name__}({conv.in_channels}->{conv.out_channels}, {kernel})"


def _fans(weight: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a Linear ``(out, in)`` or Conv ``(out, in/groups, *k)`` weight."""
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return int(weight.shape[1]) * receptive, int(weight.shape[0]) * receptive


class _ModuleFunction:
    """A module of a ``match`` class as a function (its gain is computed by calling it)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.__name__ = type(module).__name__

    def __call__(self, x: Tensor) -> Tensor:
        dtype = next((p.dtype for p in self.module.parameters()), x.dtype)
        return self.module(x.to(dtype)).to(x.dtype)


def _activation_of(module: nn.Module) -> Activation:
    act = as_activation(module)
    if act is not None:
        return act
    return from_callable(_ModuleFunction(module), name=type(module).__name__)


def _first_input(node: torch.fx.Node) -> torch.fx.Node | None:
    arg = node.args[0] if node.args else node.kwargs.get("input")
    return arg if isinstance(arg, torch.fx.Node) else None


def _reads_fx(
    node: torch.fx.Node, modules: dict[str, nn.Module], match: Sequence[type],
    gm_attr: Any,
) -> Activation | None:
    """The activation whose output the layer called at ``node`` reads, or None."""
    src = _first_input(node)
    while src is not None:
        if src.op == "call_module":
            m = modules.get(str(src.target))
            if m is not None and is_activation_module(m, match):
                return _activation_of(m)
            if isinstance(m, PASS_MODULES):
                src = _first_input(src)
                continue
            return None
        if src.op == "call_function" and src.target in TORCH_FUNCTIONS:
            args = [None, *(gm_attr(a) for a in src.args[1:])]
            kwargs = {k: gm_attr(v) for k, v in src.kwargs.items()}
            return as_activation(src.target, args, kwargs)
        if src.op == "call_method" and src.target in METHODS:
            return as_activation(str(src.target))
        passing = (src.op == "call_function" and src.target in PASS_FUNCTIONS) or (
            src.op == "call_method" and src.target in PASS_METHODS
        )
        if not passing:
            return None
        src = _first_input(src)
    return None


def _reads_by_order(model: nn.Module, match: Sequence[type]) -> dict[int, Activation | None]:
    """``id(layer) -> activation``: the last activation module registered since the
    previous layer or normalisation (the module order)."""
    out: dict[int, Activation | None] = {}
    last: nn.Module | None = None
    for _, m in model.named_modules():
        if is_activation_module(m, match):
            last = m
        elif isinstance(m, LAYER_TYPES):
            out.setdefault(id(m), None if last is None else _activation_of(last))
            last = None
        elif isinstance(m, NORM_TYPES):
            last = None
    return out


def init_(
    model: nn.Module,
    *,
    mode: str = "fan_in",
    distribution: str = "normal",
    match: Sequence[type] = (),
    zero_bias: bool = True,
    generator: torch.Generator | None = None,
) -> Inits:
    r"""Initialise every Linear/Conv layer of ``model`` for the activation it reads.

    ``W ~ N(0, (gain / sqrt(fan))^2)`` (or the uniform law with that standard deviation),
    ``gain = 1 / sqrt(E[f(z)^2])`` of the activation ``f`` whose output the layer reads
    (1 when it reads none), bias zero. See the module docstring for how ``f`` is found.

    Args:
        model: any ``nn.Module``; its ``nn.Linear`` and ``nn.Conv1d/2d/3d`` layers are set,
            in place, on their own device.
        mode: ``"fan_in"`` keeps the forward second moment (default), ``"fan_out"`` the
            backward one (exactly so where ``E[f'(z)^2] = E[f(z)^2]``, e.g. ReLU).
        distribution: ``"normal"`` or ``"uniform"``.
        match: more classes to treat as activations (gain from calling the module).
        zero_bias: set biases to zero (else leave them as they are).
        generator: a ``torch.Generator`` on the weights' device, for reproducible weights.

    Returns:
        :class:`Inits`, one :class:`LayerInit` per layer (name, activation read, gain, fan,
        std, how it was found); ``print`` it for a table.

    Raises:
        ValueError: a bad ``mode`` or ``distribution``, a layer whose weights are not
            initialised yet (lazy modules), or an activation with no finite gain.

    Example:
        >>> model = MyResNet()                       # doctest: +SKIP
        >>> actlab.swap(model, "mish")               # doctest: +SKIP
        >>> print(actlab.init_(model))               # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"init_ expects a torch.nn.Module, got {type(model).__name__}")
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not known; accepted: {', '.join(MODES)}")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"distribution {distribution!r} is not known; accepted: {', '.join(DISTRIBUTIONS)}"
        )
    match = tuple(match)
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, LAYER_TYPES)]
    for name, layer in layers:
        if isinstance(layer.weight, nn.parameter.UninitializedParameter):
            raise ValueError(
                f"layer {name} ({type(layer).__name__}) has no weights yet (a lazy module); "
                "run one forward pass before init_"
            )
    graph, why = trace(model, match)
    found: dict[int, Activation | None] = {}
    if graph is not None:
        modules = dict(model.named_modules())

        def gm_attr(a: Any) -> Any:
            if isinstance(a, torch.fx.Node) and a.op == "get_attr":
                return operator.attrgetter(str(a.target))(model)
            return a

        for node in graph.nodes:
            if node.op != "call_module":
                continue
            m = modules.get(str(node.target))
            if isinstance(m, LAYER_TYPES) and id(m) not in found:
                found[id(m)] = _reads_fx(node, modules, match, gm_attr)
    by_order = _reads_by_order(model, match)
    gains: dict[Any, float] = {}
    out = Inits()
    out.mode, out.trace_error = mode, why
    for name, layer in layers:
        if id(layer) in found:
            act, source = found[id(layer)], "fx"
        else:
            act, source = by_order.get(id(layer)), "module order"
        if act is None:
            g = 1.0
        else:
            if act not in gains:
                gains[act] = activation_gain(act)
            g = gains[act]
        weight = layer.weight
        fan_in, fan_out = _fans(weight)
        fan = fan_in if mode == "fan_in" else fan_out
        std = g / math.sqrt(fan)
        with torch.no_grad():
            if distribution == "normal":
                weight.normal_(0.0, std, generator=generator)
            else:
                bound = math.sqrt(3.0) * std
                weight.uniform_(-bound, bound, generator=generator)
            if zero_bias and layer.bias is not None:
                layer.bias.zero_()
        out.append(LayerInit(name, _describe(layer), None if act is None else act.name, g, fan,
                             std, source))
    return out
