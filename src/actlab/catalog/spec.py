"""The activation spec: the one source of truth for an activation function.

A spec is plain data plus two pure functions written with torch ops:

* ``forward(x, **params)``  -> f(x), stable for extreme inputs;
* ``derivative(x, **params)`` -> f'(x), analytic and also stable (``None`` means
  "differentiate ``forward`` with autograd", used for user activations).

For gated activations (the GLU family) ``forward`` receives the two halves ``(a, b)``
of the last dimension, ``a`` the value and ``b`` the gate, following
``torch.nn.functional.glu``; ``derivative`` returns the pair of partial derivatives
``(df/da, df/db)``.

Learnable parameters are scalars everywhere, except in ``module()`` for those a spec
lists in ``per_channel``: there a parameter holds one value per channel along an input
dimension (DyT's gamma and beta on the last one). Their default is the value every
channel starts from, and every other stage (f, f', gain, propagation, audit, plots,
the report) evaluates the activation at that value, as if it were a scalar.

``param_derivative(x, **params)`` gives the analytic partial derivatives of f with
respect to the learnable parameters, element-wise (``None``: autograd of ``forward``).

Everything else in actlab (plots, checks, audit, gain, benchmarks, studies, the
report) reads specs from the registry; adding an activation is writing one spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

ForwardFn = Callable[..., Any]
NativeFactory = Callable[[Mapping[str, float]], Callable[[Tensor], Tensor] | None]


def _no_kinks(**_params: float) -> Sequence[float]:
    return ()


def _no_check(**_params: float) -> str | None:
    return None


@dataclass(frozen=True)
class ActivationSpec:
    """Everything actlab knows about one activation function.

    Attributes:
        name: canonical name (lower case, ``snake_case``).
        forward: ``f(x, **params)`` with torch ops (``f(a, b, **params)`` when gated).
        derivative: analytic ``f'(x, **params)``; ``None`` to use autograd of ``forward``.
        family: a short family name ("sigmoid", "relu", "gated", ...).
        formula: one-line formula text.
        reference: paper (author, year) or origin.
        aliases: other accepted names.
        params: default hyper-parameters.
        learnable: parameters that may be learned (``nn.Parameter`` in ``module()``).
        learned_by_default: the subset learned unless the caller says otherwise.
        native: name of the native PyTorch equivalent, e.g. ``"F.silu"``.
        native_factory: ``params -> callable`` giving the native op for those
            parameters, or ``None`` when the native op cannot express them.
        gated: True for the GLU family (halves the last dimension).
        kinks: ``(**params) -> points`` where f' jumps (finite differences skip them).
        continuous: False when f itself jumps (e.g. hardshrink).
        param_ranges: ``name -> (low, high)`` accepted values (inclusive; None = open).
        check: ``(**params) -> message or None``: a constraint between parameters
            (e.g. hardtanh's ``min_val < max_val``); the message says what is wrong.
        builtin: False for user activations.
        source: the formula text of a formula activation (lets another process rebuild it).
        per_channel: ``name -> dim``: learnable parameters that ``module()`` learns with
            one value per channel along input dimension ``dim`` (``-1``: the last);
            elsewhere they are the scalar the channels start from.
        param_derivative: analytic ``(x, **params) -> {name: df/dparam}`` for every
            learnable parameter, element-wise (broadcastable to f(x)); ``None`` to use
            autograd of ``forward``.
    """

    name: str
    forward: ForwardFn
    derivative: ForwardFn | None
    family: str
    formula: str
    reference: str
    aliases: tuple[str, ...] = ()
    params: Mapping[str, float] = field(default_factory=dict)
    learnable: tuple[str, ...] = ()
    learned_by_default: tuple[str, ...] = ()
    native: str | None = None
    native_factory: NativeFactory | None = None
    gated: bool = False
    kinks: Callable[..., Sequence[float]] = _no_kinks
    continuous: bool = True
    param_ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    check: Callable[..., str | None] = _no_check
    builtin: bool = True
    source: str | None = None
    per_channel: Mapping[str, int] = field(default_factory=dict)
    param_derivative: Callable[..., Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.learnable) - set(self.params)
        if unknown:
            raise ValueError(
                f"spec {self.name!r}: learnable parameters {sorted(unknown)} are not among "
                f"its parameters {sorted(self.params)}"
            )
        if not set(self.learned_by_default) <= set(self.learnable):
            raise ValueError(f"spec {self.name!r}: learned_by_default must be learnable")
        if not set(self.per_channel) <= set(self.learnable):
            raise ValueError(
                f"spec {self.name!r}: per-channel parameters "
                f"{sorted(set(self.per_channel) - set(self.learnable))} must be learnable"
            )
        for key, dim in self.per_channel.items():
            if isinstance(dim, bool) or not isinstance(dim, int):
                raise TypeError(
                    f"spec {self.name!r}: per_channel[{key!r}] must be an int dimension, "
                    f"got {dim!r}"
                )
        if self.per_channel and self.gated:
            raise ValueError(
                f"spec {self.name!r}: gated activations cannot have per-channel parameters"
            )
