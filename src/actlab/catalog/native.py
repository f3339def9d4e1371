"""Where actlab's modules run PyTorch's own kernels, and how accurate those are.

An :class:`~actlab.catalog.activation.ActivationModule` calls the native op directly
(plain PyTorch autograd, no custom ``autograd.Function``) when all of these hold:

* PyTorch has the op for the activation's parameter values, and no parameter is learned;
* its autograd saves no more than actlab's memory-efficient backward does: one tensor of
  the input's size (its input, or its output: ``relu``, ``sigmoid`` and ``tanh`` keep the
  output, which the next layer keeps anyway);
* it is at least as fast (``benchmarks/modules.py`` times a real training step).

It keeps its own memory-efficient path otherwise: no native op (``mish`` has one,
``swiglu`` does not), learned parameters, or a native op that saves more (``softsign`` and
``tanhshrink`` are composites that keep intermediates; CPU ``logsigmoid`` keeps a
second buffer of the input's size).

:data:`NATIVE_MODULE` maps an activation to a factory ``params -> callable or None``
(``None`` when the op cannot express those values). The callables are PyTorch functions
or ``functools.partial`` s of them, so modules stay picklable.

Accuracy. Most native ops pass the catalog's float32 tolerance (1e-5 relative to float64
beyond the inputs' rounding, ``tests/catalog``). Those in :data:`APPROXIMATE` do not, in a
tail where the value is tiny next to the function's scale; they are the default anyway
(a model runs as fast as with ``torch.nn``), and ``precise=True`` selects actlab's own
accurate path. Measured with ``python benchmarks/accuracy.py`` (float32, largest relative
error beyond the inputs' rounding against the float64 catalog; 200001 points per
interval; ``tests/catalog/test_native_dispatch.py`` holds them to these bounds):

===========  ====================================================  ========================
activation   native float32 (the default module)                   ``precise=True``
===========  ====================================================  ========================
gelu         f 6.2e-5 on [-3, 3] (AVX2; 2.1e-4 on AVX-512, where    f <= 5.1e-6, f' <= 2.1e-6
             Linux runs oneDNN's kernel); 100% below x = -5.5,      on [-10, -3]
             where 1 + erf(x/sqrt2) rounds to 0; absolute error
             < 4e-7 (AVX-512: < 1.1e-6)
             (float64: 1.8e-2 at x = -8, 100% below -9)
gelu_tanh    f 1.2e-5 on [-3, 3]; 100% below x = -5.1 (1 + tanh     f, f' <= 1.3e-5 on
             cancels); absolute error < 1.1e-6                      [-10, -3]
             (float64: 6.9e-3 at x = -7, 100% below -8)
sigmoid      f' 100% above x = 16.6 (y (1 - y) with y = 1);         f' <= 2.2e-7
             absolute error < 9e-8
tanh         f' 2.4e-3 at |x| = 6, 100% above |x| = 9 (1 - y^2);    f' <= 2.2e-7
             absolute error < 7e-8
glu          df/db as sigmoid' (the gate b's upper tail)            as sigmoid
hardsigmoid  float64 only: f' is 1/6 rounded to float32 (3e-8)      exact
===========  ====================================================  ========================

Example:
    >>> native_module_fn(actlab.get("leaky_relu", alpha=0.2))
    functools.partial(<function leaky_relu at ...>, negative_slope=0.2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from actlab.catalog.builtins import SELU_ALPHA, SELU_SCALE

if TYPE_CHECKING:
    from actlab.catalog.activation import Activation

NativeFn = Callable[[Tensor], Tensor]


def _leaky(slope: float) -> NativeFn:
    return partial(F.leaky_relu, negative_slope=slope)


NATIVE_MODULE: dict[str, Callable[[Mapping[str, float]], NativeFn | None]] = {
    "relu": lambda p: F.relu,
    "leaky_relu": lambda p: _leaky(p["alpha"]),
    "prelu": lambda p: _leaky(p["alpha"]),  # alpha fixed (learn=[]): PReLU is Leaky ReLU
    "rrelu": lambda p: _leaky(0.5 * (p["lower"] + p["upper"])),  # evaluation mode
    "relu6": lambda p: F.relu6,
    "hardtanh": lambda p: partial(F.hardtanh, min_val=p["min_val"], max_val=p["max_val"]),
    "threshold": lambda p: partial(F.threshold, threshold=p["threshold"], value=p["value"]),
    "hardsigmoid": lambda p: F.hardsigmoid,
    "hardswish": lambda p: F.hardswish,
    "softshrink": lambda p: partial(F.softshrink, lambd=p["lambd"]),
    "hardshrink": lambda p: partial(F.hardshrink, lambd=p["lambd"]),
    "elu": lambda p: partial(F.elu, alpha=p["alpha"]),
    "celu": lambda p: partial(F.celu, alpha=p["alpha"]),
    "selu": lambda p: F.selu,
    "softplus": lambda p: partial(F.softplus, beta=p["beta"], threshold=p["threshold"]),
    "silu": lambda p: F.silu if p["beta"] == 1.0 else None,
    "mish": lambda p: F.mish,
    "sigmoid": lambda p: torch.sigmoid,
    "tanh": lambda p: torch.tanh,
    "gelu": lambda p: F.gelu,
    "gelu_tanh": lambda p: partial(F.gelu, approximate="tanh"),
    "glu": lambda p: partial(F.glu, dim=-1),
}

#: native ops outside the catalog's float32 tolerance somewhere (see the module docstring)
APPROXIMATE: dict[str, str] = {
    "gelu": "float32: 6e-5 relative error at x = -3 (2e-4 on AVX-512 CPUs), all digits "
    "lost below x = -5.5 (float64: below -9)",
    "gelu_tanh": "float32: 1e-5 relative error at x = -3, all digits lost below x = -5.1 "
    "(float64: below -8)",
    "sigmoid": "float32 f' is 0 above x = 16.6 (y (1 - y) with y = 1)",
    "tanh": "float32 f' loses all digits above |x| = 9 (1 - y^2)",
    "glu": "float32 df/db is 0 for gates above b = 16.6 (as sigmoid')",
    "hardsigmoid": "float64 f' is 1/6 rounded to float32",
}


def _if(ok: bool, fn: NativeFn) -> NativeFn | None:
    return fn if ok else None


#: the native ops that can overwrite their input at no cost: their in-place autograd
#: keeps only the output, as the out-of-place op does or instead of the input (PyTorch
#: refuses the in-place backward of leaky_relu and elu with a negative slope or alpha).
#: Ops whose backward needs the input (silu, gelu, mish, hardswish, ...) are absent: in
#: place, autograd would have to keep a copy of it. Used by ``ActivationModule(...,
#: inplace=True)``.
NATIVE_INPLACE: dict[str, Callable[[Mapping[str, float]], NativeFn | None]] = {
    "relu": lambda p: torch.relu_,
    "leaky_relu": lambda p: _if(p["alpha"] >= 0, partial(F.leaky_relu_, negative_slope=p["alpha"])),
    "prelu": lambda p: _if(p["alpha"] >= 0, partial(F.leaky_relu_, negative_slope=p["alpha"])),
    "relu6": lambda p: partial(F.hardtanh_, min_val=0.0, max_val=6.0),
    "hardtanh": lambda p: partial(F.hardtanh_, min_val=p["min_val"], max_val=p["max_val"]),
    "elu": lambda p: _if(p["alpha"] >= 0, partial(F.elu_, alpha=p["alpha"])),
    "celu": lambda p: _if(p["alpha"] > 0, partial(F.celu_, alpha=p["alpha"])),
    "selu": lambda p: F.selu_,
    "sigmoid": lambda p: torch.sigmoid_,
    "tanh": lambda p: torch.tanh_,
}


GradFn = Callable[[Tensor, Tensor], Tensor]
_aten = torch.ops.aten

#: for the ops of :data:`NATIVE_INPLACE`: ``(g, y) -> g * f'(x)`` from the output
#: ``y = f(x)``, the kernel their in-place autograd runs. Training loops that write a
#: model's backward out (``actlab.experiments.train_stacked``) call it directly.
NATIVE_OUTPUT_GRAD: dict[str, Callable[[Mapping[str, float]], GradFn]] = {
    "relu": lambda p: partial(_aten.threshold_backward, threshold=0.0),
    "leaky_relu": lambda p: partial(_aten.leaky_relu_backward, negative_slope=p["alpha"],
                                    self_is_result=True),
    "prelu": lambda p: partial(_aten.leaky_relu_backward, negative_slope=p["alpha"],
                               self_is_result=True),
    "relu6": lambda p: partial(_aten.hardtanh_backward, min_val=0.0, max_val=6.0),
    "hardtanh": lambda p: partial(_aten.hardtanh_backward, min_val=p["min_val"],
                                  max_val=p["max_val"]),
    "elu": lambda p: _elu_grad(p["alpha"], 1.0, 1.0),
    "celu": lambda p: _elu_grad(p["alpha"], 1.0, 1.0 / p["alpha"]),
    "selu": lambda p: _elu_grad(SELU_ALPHA, SELU_SCALE, 1.0),
    "sigmoid": lambda p: _aten.sigmoid_backward,
    "tanh": lambda p: _aten.tanh_backward,
}


def _elu_grad(alpha: float, scale: float, input_scale: float) -> GradFn:
    def grad(g: Tensor, y: Tensor) -> Tensor:
        return _aten.elu_backward(g, alpha, scale, input_scale, True, y)

    return grad


def native_output_grad_fn(act: Activation, learned: tuple[str, ...] = ()) -> GradFn | None:
    """``(g, y) -> g * f'(x)`` from ``y = f(x)`` where ``act`` runs in place, or ``None``."""
    if native_inplace_fn(act, learned) is None:
        return None
    return NATIVE_OUTPUT_GRAD[act.spec.name](act.params)


def native_module_fn(act: Activation, learned: tuple[str, ...] = ()) -> NativeFn | None:
    """The native callable an activation module runs for ``act``, or ``None``.

    ``None`` for user activations, learned parameters, activations without a native op
    (or whose op cannot express these parameter values) and those whose native autograd
    would save more than the input.
    """
    return _lookup(NATIVE_MODULE, act, learned)


def native_inplace_fn(act: Activation, learned: tuple[str, ...] = ()) -> NativeFn | None:
    """The native in-place callable for ``act`` (:data:`NATIVE_INPLACE`), or ``None``."""
    if native_module_fn(act, learned) is None:
        return None
    return _lookup(NATIVE_INPLACE, act, learned)


def _lookup(table: Mapping[str, Callable[[Mapping[str, float]], NativeFn | None]],
            act: Activation, learned: tuple[str, ...]) -> NativeFn | None:
    if learned or not act.spec.builtin:
        return None
    factory = table.get(act.spec.name)
    return factory(act.params) if factory is not None else None


def describe(act: Activation) -> dict[str, Any]:
    """What ``act.module()`` runs: ``{"native": bool, "approximate": str | None}``."""
    fn = native_module_fn(act, tuple(act.learn))
    return {
        "native": fn is not None,
        "approximate": APPROXIMATE.get(act.spec.name) if fn is not None else None,
    }
