"""The plain formulas a user writes by hand after reading the article or the paper.

The kernel benchmark's second peer (next to the native op) is ``torch.compile`` of these:
what a practitioner does who wants a fused kernel without actlab. Each is the textbook
formula in plain torch ops, with PyTorch's own functions where a user would reach for them
(``torch.sigmoid``, ``torch.tanh``, ``F.softplus``, ``torch.erf``), and no numerical care
beyond that: ``0.5 x (1 + erf(x / sqrt 2))`` for GELU, ``x tanh(softplus(x))`` for Mish,
``alpha (exp(x) - 1)`` for ELU's negative side.

:func:`hand_formula` returns ``x -> f(x)`` for an activation with its parameter values
(gated ones split the last dimension into ``a, b`` like the catalog), or ``None`` for
user activations (their formula is already hand-written).

Example:
    >>> f = hand_formula(actlab.get("mish"))
    >>> round(float(f(torch.tensor(1.0))), 4)
    0.8651
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actlab.catalog import Activation

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_K = math.sqrt(2.0 / math.pi)


def _gelu(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _elu(x: Tensor, alpha: float) -> Tensor:
    return torch.where(x > 0, x, alpha * (torch.exp(x) - 1.0))


_Fn = Callable[..., Tensor]

HAND: dict[str, _Fn] = {
    "identity": lambda x: x * 1.0,
    "sigmoid": lambda x: 1.0 / (1.0 + torch.exp(-x)),
    "tanh": lambda x: torch.tanh(x),
    "hardsigmoid": lambda x: torch.clamp(x + 3.0, 0.0, 6.0) / 6.0,
    "logsigmoid": lambda x: torch.log(torch.sigmoid(x)),
    "hardtanh": lambda x, min_val, max_val: torch.clamp(x, min_val, max_val),
    "softsign": lambda x: x / (1.0 + torch.abs(x)),
    "arctan": lambda x: torch.atan(x),
    "isru": lambda x, alpha: x / torch.sqrt(1.0 + alpha * x * x),
    "relu": lambda x: torch.clamp(x, min=0.0),
    "leaky_relu": lambda x, alpha: torch.where(x > 0, x, alpha * x),
    "prelu": lambda x, alpha: torch.where(x > 0, x, alpha * x),
    "rrelu": lambda x, lower, upper: torch.where(x >= 0, x, 0.5 * (lower + upper) * x),
    "relu6": lambda x: torch.clamp(x, 0.0, 6.0),
    "threshold": lambda x, threshold, value: torch.where(x > threshold, x, value),
    "squared_relu": lambda x: torch.clamp(x, min=0.0) ** 2,
    "elu": _elu,
    "selu": lambda x: SELU_SCALE * _elu(x, SELU_ALPHA),
    "celu": lambda x, alpha: torch.where(x > 0, x, alpha * (torch.exp(x / alpha) - 1.0)),
    "isrlu": lambda x, alpha: torch.where(x >= 0, x, x / torch.sqrt(1.0 + alpha * x * x)),
    "elish": lambda x: torch.where(x >= 0, x, torch.exp(x) - 1.0) * torch.sigmoid(x),
    "gelu": _gelu,
    "gelu_tanh": lambda x: 0.5 * x * (1.0 + torch.tanh(_K * (x + 0.044715 * x**3))),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "silu": lambda x, beta: x * torch.sigmoid(beta * x),
    "mish": lambda x: x * torch.tanh(F.softplus(x)),
    "hardswish": lambda x: x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0,
    "serf": lambda x: x * torch.erf(F.softplus(x)),
    "tanhexp": lambda x: x * torch.tanh(torch.exp(x)),
    "lisht": lambda x: x * torch.tanh(x),
    "smelu": lambda x, beta: torch.where(
        x >= beta, x, torch.where(x <= -beta, 0.0, (x + beta) ** 2 / (4.0 * beta))
    ),
    "softplus": lambda x, beta, threshold: torch.where(
        beta * x > threshold, x, torch.log(1.0 + torch.exp(beta * x)) / beta
    ),
    "tanhshrink": lambda x: x - torch.tanh(x),
    "softshrink": lambda x, lambd: torch.where(
        x > lambd, x - lambd, torch.where(x < -lambd, x + lambd, 0.0)
    ),
    "hardshrink": lambda x, lambd: torch.where(torch.abs(x) > lambd, x, 0.0),
    "bent_identity": lambda x: (torch.sqrt(x * x + 1.0) - 1.0) / 2.0 + x,
    "gaussian": lambda x: torch.exp(-x * x),
    "sine": lambda x, w0: torch.sin(w0 * x),
    "snake": lambda x, alpha: x + torch.sin(alpha * x) ** 2 / alpha,
    # the recent ones, as their reference code writes them
    "xielu": lambda x, a_p, a_n, beta, eps: torch.where(
        x > 0,
        F.softplus(torch.as_tensor(a_p, dtype=x.dtype)) * x * x + beta * x,
        (beta + F.softplus(torch.as_tensor(a_n, dtype=x.dtype)))
        * (torch.expm1(torch.clamp(x, max=eps)) - x)
        + beta * x,
    ),
    "star_relu": lambda x, s, b: s * torch.relu(x) ** 2 + b,
    "pau": lambda x, a0, a1, a2, a3, a4, a5, b1, b2, b3, b4: (
        a0 + a1 * x + a2 * x**2 + a3 * x**3 + a4 * x**4 + a5 * x**5
    ) / (1.0 + torch.abs(b1 * x) + torch.abs(b2 * x**2) + torch.abs(b3 * x**3)
         + torch.abs(b4 * x**4)),
    "dyt": lambda x, alpha, gamma, beta: gamma * torch.tanh(alpha * x) + beta,
    # gated: (a, b) are the two halves of the last dimension
    "glu": lambda a, b: a * torch.sigmoid(b),
    "reglu": lambda a, b: a * torch.clamp(b, min=0.0),
    "geglu": lambda a, b: a * _gelu(b),
    "swiglu": lambda a, b: a * (b * torch.sigmoid(b)),
    "bilinear": lambda a, b: a * b,
}


def hand_formula(
    act: Activation, learned: dict[str, Tensor] | None = None
) -> Callable[[Tensor], Tensor] | None:
    """``x -> f(x)`` written by hand for a built-in activation, or ``None``.

    ``learned`` maps parameter names to tensors used in place of the activation's values
    (see :class:`HandModule`).
    """
    fn = HAND.get(act.spec.name) if act.spec.builtin else None
    if fn is None:
        return None
    params: dict[str, Any] = {**act.params, **(learned or {})}
    if act.gated:

        def gated(x: Tensor) -> Tensor:
            a, b = x.chunk(2, dim=-1)
            return fn(a, b, **params)

        return gated

    def plain(x: Tensor) -> Tensor:
        return fn(x, **params)

    return plain


class HandModule(nn.Module):
    """The hand-written formula as a user's module: the activation's learnable parameters
    (``act.learn``) are ``nn.Parameter``s (per-channel ones of shape ``(channels,)``), so
    that its backward computes their gradients as the fast path's does.

    ``fn`` is the plain function ``x -> f(x)`` over those parameters (what the benchmark
    compiles); the module holds them.

    Example:
        >>> m = HandModule(actlab.get("dyt"), channels=8)
        >>> m(torch.randn(2, 8)).shape, m.gamma.shape
        (torch.Size([2, 8]), torch.Size([8]))
    """

    def __init__(self, act: Activation, channels: int | None = None) -> None:
        super().__init__()
        if act.spec.name not in HAND or not act.spec.builtin:
            raise ValueError(f"{act.name} has no hand-written formula")
        for name in act.learn:
            value = torch.tensor(float(act.params[name]))
            if name in act.spec.per_channel:
                if channels is None:
                    raise ValueError(f"{act.name}'s {name} is per channel: pass channels")
                value = value.repeat(channels)
            self.register_parameter(name, nn.Parameter(value))
        written = hand_formula(act, dict(self.named_parameters()))
        assert written is not None  # a built-in in HAND (checked above)
        self.fn: Callable[[Tensor], Tensor] = written

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)
