"""Swap the activations of any ``nn.Module`` for actlab's, in place.

``swap(model, "gelu")`` walks the module tree (nested containers and the user's own blocks
included) and replaces every *activation module* by actlab's module of the target
activation. An activation module is

* an instance of a ``torch.nn`` activation class (:data:`TORCH_ACTIVATIONS`: ReLU,
  LeakyReLU, PReLU, GELU, SiLU, Mish, Tanh, Sigmoid, ELU, Softplus, ... and subclasses);
* an actlab activation module (``Activation.module()``, also ``fast=True``);
* an instance of a class the caller names with ``match=(MyAct,)``.

A module registered at several places (one ``nn.ReLU()`` reused) is replaced by one new
module at all of them, so that sharing (and shared learned parameters) is kept. The new
module takes the old one's device, floating dtype and train/eval mode.

Activations called as functions inside a ``forward`` (``F.relu(x)``, ``x.sigmoid()``)
are not modules and cannot be replaced in place: :func:`swap` finds them with a
``torch.fx`` trace (activation modules kept as leaves) and lists them in its result as
*not replaced*, with the module whose ``forward`` calls them. Where the model does not
trace (data-dependent control flow, ...), ``Swaps.trace_error`` says why and functional
calls were not looked for.

A gated target (GLU family: glu, reglu, geglu, swiglu, bilinear) halves the last dimension,
so the layer before it would need twice its output width: swap refuses it. The same holds
the other way round: a gated activation of the model (``nn.GLU``) is never replaced by a
non-gated one.

This module also maps ``torch.nn`` activation modules and functions to actlab activations
(:func:`as_activation`), and traces models with activation modules as leaves
(:func:`trace`); the analysis stage's :func:`actlab.analysis.init_` uses both.

Example:
    >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> done = swap(model, "gelu")
    >>> [(s.name, type(s.old).__name__, s.new) for s in done]
    [('1', 'ReLU', ActivationModule(gelu))]
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from actlab.catalog.activation import Activation, ActivationModule
from actlab.catalog.registry import get

Params = dict[str, float]


def _one(name: str) -> Callable[[nn.Module], tuple[str, Params] | None]:
    return lambda _m: (name, {})


def _gelu(m: Any) -> tuple[str, Params] | None:
    approximate = getattr(m, "approximate", "none")
    return ("gelu_tanh", {}) if approximate == "tanh" else ("gelu", {})


def _glu(m: Any) -> tuple[str, Params] | None:
    return ("glu", {}) if getattr(m, "dim", -1) == -1 else None


#: ``torch.nn`` activation class -> ``module -> (actlab name, parameters)`` (None: no match)
TORCH_ACTIVATIONS: dict[type[nn.Module], Callable[[Any], tuple[str, Params] | None]] = {
    nn.ReLU: _one("relu"),
    nn.ReLU6: _one("relu6"),
    nn.LeakyReLU: lambda m: ("leaky_relu", {"alpha": float(m.negative_slope)}),
    nn.PReLU: lambda m: ("prelu", {"alpha": float(m.weight.detach().float().mean())}),
    nn.RReLU: lambda m: ("rrelu", {"lower": float(m.lower), "upper": float(m.upper)}),
    nn.ELU: lambda m: ("elu", {"alpha": float(m.alpha)}),
    nn.CELU: lambda m: ("celu", {"alpha": float(m.alpha)}),
    nn.SELU: _one("selu"),
    nn.GELU: _gelu,
    nn.SiLU: _one("silu"),
    nn.Mish: _one("mish"),
    nn.Sigmoid: _one("sigmoid"),
    nn.Tanh: _one("tanh"),
    nn.Softplus: lambda m: ("softplus", {"beta": float(m.beta), "threshold": float(m.threshold)}),
    nn.Softsign: _one("softsign"),
    nn.Hardtanh: lambda m: ("hardtanh", {"min_val": float(m.min_val), "max_val": float(m.max_val)}),
    nn.Hardswish: _one("hardswish"),
    nn.Hardsigmoid: _one("hardsigmoid"),
    nn.Hardshrink: lambda m: ("hardshrink", {"lambd": float(m.lambd)}),
    nn.Softshrink: lambda m: ("softshrink", {"lambd": float(m.lambd)}),
    nn.Tanhshrink: _one("tanhshrink"),
    nn.LogSigmoid: _one("logsigmoid"),
    nn.Threshold: lambda m: (
        "threshold", {"threshold": float(m.threshold), "value": float(m.value)}
    ),
    nn.GLU: _glu,
}

#: the activation classes :func:`swap` finds by itself (plus actlab's modules)
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = tuple(TORCH_ACTIVATIONS)


def _kw(**names: str) -> Callable[[Mapping[str, Any]], Params]:
    """A functional call's bound arguments -> actlab parameters (``alpha=negative_slope``)."""
    return lambda bound: {
        ours: float(bound[theirs]) for ours, theirs in names.items() if theirs in bound
    }


def _gelu_fn(bound: Mapping[str, Any]) -> tuple[str, Params]:
    return ("gelu_tanh", {}) if bound.get("approximate") == "tanh" else ("gelu", {})


_NO_PARAMS = _kw()
#: activation functions (``torch.*`` and ``torch.nn.functional.*``) -> (actlab name, params)
TORCH_FUNCTIONS: dict[Callable[..., Any], tuple[str, Callable[[Mapping[str, Any]], Any]]] = {
    F.relu: ("relu", _NO_PARAMS), torch.relu: ("relu", _NO_PARAMS),
    F.relu_: ("relu", _NO_PARAMS), torch.relu_: ("relu", _NO_PARAMS),
    F.relu6: ("relu6", _NO_PARAMS),
    F.leaky_relu: ("leaky_relu", _kw(alpha="negative_slope")),
    F.rrelu: ("rrelu", _kw(lower="lower", upper="upper")),
    F.elu: ("elu", _kw(alpha="alpha")), F.celu: ("celu", _kw(alpha="alpha")),
    F.selu: ("selu", _NO_PARAMS), torch.selu: ("selu", _NO_PARAMS),
    F.gelu: ("gelu", _NO_PARAMS),
    F.silu: ("silu", _NO_PARAMS), F.mish: ("mish", _NO_PARAMS),
    torch.sigmoid: ("sigmoid", _NO_PARAMS), F.sigmoid: ("sigmoid", _NO_PARAMS),
    torch.tanh: ("tanh", _NO_PARAMS), F.tanh: ("tanh", _NO_PARAMS),
    F.softplus: ("softplus", _kw(beta="beta", threshold="threshold")),
    F.softsign: ("softsign", _NO_PARAMS),
    F.hardtanh: ("hardtanh", _kw(min_val="min_val", max_val="max_val")),
    F.hardswish: ("hardswish", _NO_PARAMS), F.hardsigmoid: ("hardsigmoid", _NO_PARAMS),
    F.hardshrink: ("hardshrink", _kw(lambd="lambd")),
    F.softshrink: ("softshrink", _kw(lambd="lambd")),
    F.tanhshrink: ("tanhshrink", _NO_PARAMS), F.logsigmoid: ("logsigmoid", _NO_PARAMS),
    F.threshold: ("threshold", _kw(threshold="threshold", value="value")),
    F.glu: ("glu", _NO_PARAMS),
    F.prelu: ("prelu", _NO_PARAMS),
}  # fmt: skip
#: ``Tensor`` methods that are activations (``x.relu()``)
METHODS: dict[str, str] = {
    "relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
    "tanh": "tanh", "tanh_": "tanh",
}  # fmt: skip


def function_label(fn: Any) -> str:
    """How a function reads: ``"F.relu"``, ``"torch.tanh"``, ``"Tensor.relu"`` (a method)."""
    if isinstance(fn, str):
        return f"Tensor.{fn}"
    name = getattr(fn, "__name__", repr(fn))
    functional = getattr(fn, "__module__", "") == "torch.nn.functional"
    return f"F.{name}" if functional else f"torch.{name}"


def _bind(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict:
    """A functional call's arguments by name (defaults included); {} when unknown."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return dict(kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def as_activation(
    obj: Any, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> Activation | None:
    """The actlab activation that a module, function or ``Tensor`` method computes.

    Args:
        obj: an activation module (``torch.nn`` or actlab), a function of
            :data:`TORCH_FUNCTIONS` (``F.leaky_relu``), or a method name of :data:`METHODS`.
        args, kwargs: the call's arguments, for functions with parameters
            (``F.leaky_relu(x, 0.2)`` -> leaky_relu with alpha 0.2); tensor arguments
            (``F.prelu``'s weight) must be tensors, not graph nodes.

    Returns:
        The :class:`Activation` (learning nothing; an actlab module's learned parameters
        at their current values, ``nn.PReLU`` at the mean of its slopes), or ``None`` when
        ``obj`` is not one actlab knows (``nn.GLU`` over a dimension other than the last).

    Example:
        >>> as_activation(nn.LeakyReLU(0.2))
        Activation(leaky_relu, alpha=0.2)
    """
    if isinstance(obj, ActivationModule):
        act = obj.current()
        return get(act, learn=()) if act.learn else act
    if isinstance(obj, nn.Module):
        for cls in type(obj).__mro__:
            convert = TORCH_ACTIVATIONS.get(cls)  # type: ignore[arg-type]
            if convert is not None:
                found = convert(obj)
                return None if found is None else get(found[0], learn=(), **found[1])
        return None
    if isinstance(obj, str):
        return get(METHODS[obj]) if obj in METHODS else None
    entry = TORCH_FUNCTIONS.get(obj) if callable(obj) else None
    if entry is None:
        return None
    name, params = entry
    bound = _bind(obj, args, kwargs or {})
    if obj is F.gelu:
        name = _gelu_fn(bound)[0]
        return get(name)
    if obj is F.glu and bound.get("dim", -1) != -1:
        return None
    if obj is F.prelu:
        weight = bound.get("weight")
        alpha = float(weight.detach().float().mean()) if isinstance(weight, torch.Tensor) else 0.25
        return get("prelu", learn=(), alpha=alpha)
    values = {k: v for k, v in params(bound).items() if v is not None}
    return get(name, learn=(), **values)


def is_activation_module(module: nn.Module, match: Sequence[type] = ()) -> bool:
    """Whether ``module`` is a ``torch.nn`` activation, an actlab one, or of a ``match`` type."""
    return isinstance(module, (*ACTIVATION_TYPES, ActivationModule, *match))


class _Tracer(torch.fx.Tracer):
    """An fx tracer that keeps activation modules (and ``match`` types) as leaves."""

    def __init__(self, match: Sequence[type]) -> None:
        super().__init__()
        self.match = tuple(match)

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_activation_module(m, self.match) or super().is_leaf_module(
            m, module_qualified_name
        )


def trace(model: nn.Module, match: Sequence[type] = ()) -> tuple[torch.fx.Graph | None, str]:
    """``(graph, "")`` from a ``torch.fx`` trace of ``model`` (activation modules as
    leaves), or ``(None, why)`` when the model does not trace."""
    try:
        return _Tracer(match).trace(model), ""
    except Exception as exc:  # fx raises many kinds (TraceError, TypeError, assertions...)
        text = str(exc).strip().splitlines()
        return None, f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def call_site(node: torch.fx.Node) -> str:
    """The qualified name of the module whose ``forward`` made this call ('' for the root)."""
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.keys()), "") if stack else ""


def functional_calls(graph: torch.fx.Graph) -> list[tuple[torch.fx.Node, Any]]:
    """``(node, function or method name)`` of every activation called as a function."""
    out = []
    for node in graph.nodes:
        functional = node.op == "call_function" and node.target in TORCH_FUNCTIONS
        if functional or (node.op == "call_method" and node.target in METHODS):
            out.append((node, node.target))
    return out


@dataclass(frozen=True, eq=False)
class Swap:
    """One activation site of a model, replaced or not.

    Attributes:
        name: qualified module name (``"layer1.0.act"``); for an activation called as a
            function, the module whose ``forward`` calls it (``""``: the model itself).
        old: the module replaced, or the function called (``F.relu``, or a ``Tensor``
            method name such as ``"sigmoid"``).
        new: the new module; ``None`` when nothing was replaced.
        note: why it was not replaced.
    """

    name: str
    old: Any
    new: nn.Module | None
    note: str = ""

    @property
    def replaced(self) -> bool:
        return self.new is not None

    def __str__(self) -> str:
        where = self.name or "(model)"
        if self.replaced:
            return f"{where}: {self.old!r} -> {self.new!r}"
        return f"{where}: {function_label(self.old)} not replaced ({self.note})"


class Swaps(list[Swap]):
    """What :func:`swap` did: a list of :class:`Swap` (replaced modules first, then the
    activations called as functions, which were not replaced).

    Attributes:
        trace_error: why the model could not be traced with ``torch.fx`` (then functional
            calls were not looked for); ``""`` when it traced.
    """

    trace_error: str = ""

    @property
    def replaced(self) -> list[Swap]:
        return [s for s in self if s.replaced]

    @property
    def not_replaced(self) -> list[Swap]:
        return [s for s in self if not s.replaced]

    def __str__(self) -> str:
        lines = [str(s) for s in self]
        if self.trace_error:
            lines.append(
                f"the model does not trace with torch.fx ({self.trace_error}): activations "
                "called as functions in forward, if any, were not looked for"
            )
        return "\n".join(lines) if lines else "no activation found"


def _patterns(value: str | Iterable[str] | None, what: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    for p in items:
        if not isinstance(p, str) or not p:
            raise TypeError(f"{what} takes name patterns (strings such as 'head' or 'layer1.*'), "
                            f"got {p!r}")
    return items


def _matches(name: str, patterns: list[str]) -> bool:
    """``name`` or one of its parents (``a.b`` of ``a.b.c``) matches a shell-style pattern."""
    parts = name.split(".") if name else []
    prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(p, pat) for p in prefixes for pat in patterns)


def _check_patterns(model: nn.Module, patterns: list[str], what: str) -> None:
    names = [n for n, _ in model.named_modules(remove_duplicate=False) if n]
    for pat in patterns:
        if not any(_matches(n, [pat]) for n in names):
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise ValueError(
                f"{what} pattern {pat!r} matches no module of the model; its modules are "
                f"named {shown or 'nothing (it has no submodules)'}"
            )


def _placement(*modules: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    """Device and floating dtype of the first module that has parameters or buffers."""
    for m in modules:
        for t in [*m.parameters(recurse=False), *m.buffers(recurse=False)] or [
            *m.parameters(), *m.buffers()
        ]:
            return t.device, (t.dtype if t.is_floating_point() else None)
    return None, None


def _gated(module: nn.Module) -> bool:
    act = as_activation(module)
    return isinstance(module, nn.GLU) or (act is not None and act.gated)


def swap(
    model: nn.Module,
    to: Any,
    *,
    match: Sequence[type] = (),
    only: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    learn: Iterable[str] | None = None,
    fast: bool = False,
    trace_functions: bool = True,
    **params: float,
) -> Swaps:
    r"""Replace, in place, every activation module of ``model`` by actlab's ``to``.

    Args:
        model: any ``nn.Module`` (its containers and the user's own blocks are searched).
        to: the new activation: anything :func:`actlab.get` accepts (a name, an
            :class:`Activation`, ``"formula:..."``, a callable).
        match: more classes to treat as activation modules (e.g. ``(MyAct,)``).
        only: replace only modules whose qualified name, or a parent's, matches one of
            these shell-style patterns (``"layer1"``, ``"blocks.*.act"``).
        exclude: leave these alone (e.g. ``exclude="head"`` keeps the output layer's
            activation). A pattern that matches no module is an error (a typo would
            otherwise go unnoticed).
        learn: parameters of ``to`` to learn (``learn=["beta"]`` for a learned SiLU); by
            default those of the activation's spec.
        fast: use the compiled fused kernels (``Activation.module(fast=True)``).
        trace_functions: look for activations called as functions with ``torch.fx``.
        **params: hyper-parameters of ``to`` (``alpha=0.1``).

    Returns:
        :class:`Swaps`, a list of :class:`Swap`: each replaced module (qualified name, old,
        new), then each activation called as a function (not replaced), and
        ``trace_error`` when the model does not trace.

    Raises:
        ValueError: a gated target, a gated activation of the model (``nn.GLU``) selected
            for a non-gated one, a pattern matching no module, or ``model`` itself being
            an activation module. KeyError: an unknown activation name.

    Build the optimiser *after* swapping: learned parameters of the new modules (PReLU's
    slope, ...) are new ``nn.Parameter`` s.

    Example:
        >>> model = torchvision.models.resnet18()                       # doctest: +SKIP
        >>> done = actlab.swap(model, "mish", exclude="fc")             # doctest: +SKIP
        >>> print(done)                                                 # doctest: +SKIP
        relu: ReLU(inplace=True) -> ActivationModule(mish)
        layer1.0.relu: ReLU(inplace=True) -> ActivationModule(mish)
        ...
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"swap expects a torch.nn.Module, got {type(model).__name__}")
    match = tuple(match)
    for cls in match:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"match takes nn.Module subclasses, got {cls!r}")
    act = get(to, learn=learn, **params)
    if act.gated:
        raise ValueError(
            f"swap cannot put the gated activation {act.name!r} in place of element-wise "
            "ones: it splits the last dimension into value and gate halves, so the layer "
            "before each activation would need twice its output width; build the model with "
            "doubled layers for it, or swap to a non-gated activation"
        )
    if is_activation_module(model, match):
        raise ValueError(
            f"the model is itself an activation module ({type(model).__name__}); nothing "
            "holds it to replace it in: use actlab.get(...).module() to build the new one"
        )
    only_p, excl_p = _patterns(only, "only"), _patterns(exclude, "exclude")
    _check_patterns(model, only_p, "only")
    _check_patterns(model, excl_p, "exclude")

    def selected(name: str) -> bool:
        return (not only_p or _matches(name, only_p)) and not _matches(name, excl_p)

    graph, trace_error = trace(model, match) if trace_functions else (None, "")
    sites: list[tuple[str, nn.Module, str, nn.Module]] = []  # (name, parent, attr, old)
    seen: set[tuple[int, str]] = set()
    for parent_name, parent in model.named_modules(remove_duplicate=False):
        for attr, child in parent._modules.items():
            if child is None or (id(parent), attr) in seen:
                continue
            name = f"{parent_name}.{attr}" if parent_name else attr
            if is_activation_module(child, match) and selected(name):
                seen.add((id(parent), attr))
                sites.append((name, parent, attr, child))
    for name, _, _, old in sites:
        if _gated(old):
            raise ValueError(
                f"{name} is a gated activation ({old!r}) that halves its input; replacing it "
                f"by the element-wise {act.name!r} would change the model's shapes: leave it "
                f"out with exclude={name!r}"
            )
    fallback = _placement(model)
    new_of: dict[int, nn.Module] = {}
    out = Swaps()
    for name, parent, attr, old in sites:
        new = new_of.get(id(old))
        if new is None:
            new = act.module(fast=fast)
            device, dtype = _placement(old, parent)
            if device is None:
                device, dtype = fallback
            if device is not None:
                new.to(device=device, dtype=dtype)
            new.train(old.training)
            new_of[id(old)] = new
        setattr(parent, attr, new)
        out.append(Swap(name, old, new))
    if graph is not None:
        for node, fn in functional_calls(graph):
            owner = call_site(node)
            if not selected(owner):
                continue
            cls = type(model.get_submodule(owner)).__name__
            where = f"the forward of {owner} ({cls})" if owner else f"the forward of {cls}"
            out.append(Swap(owner, fn, None, note=(
                f"{function_label(fn)} is called as a function in {where}; only modules can "
                "be swapped: make it a module attribute (e.g. self.act = nn.ReLU()), or, if "
                f"{cls} is itself an activation, pass match=({cls},)"
            )))
    out.trace_error = trace_error
    return out
