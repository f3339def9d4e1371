"""Independent high-precision definitions (mpmath) of the built-in activations.

Written from each activation's formula in its paper, not from actlab's torch code, so that
float64 values and derivatives can be checked against them to ~1e-13, tails included.
Gated activations are ``f(a, b)`` with ``a`` the value and ``b`` the gate.
"""

from __future__ import annotations

from collections.abc import Callable

import mpmath as mp

SQRT2 = mp.sqrt(2)
SELU_ALPHA = mp.mpf("1.6732632423543772848170429916717")
SELU_SCALE = mp.mpf("1.0507009873554804934193349852946")
GELU_K = mp.sqrt(2 / mp.pi)


def sig(x):
    return 1 / (1 + mp.exp(-x))


def softplus(x):
    return mp.log1p(mp.exp(x)) if x < 0 else x + mp.log1p(mp.exp(-x))


def Phi(x):
    # |x| > 40: Phi is 0 or 1 to within e^-800 < 10^-340 (and mpmath's erfc is slow there)
    if abs(x) > 40:
        return mp.mpf(0) if x < 0 else mp.mpf(1)
    return mp.erfc(-x / SQRT2) / 2


def erf(z):
    # erf(z) = 1 - erfc(z) and erfc(40) < 10^-690: exactly 1 at any precision used here
    return mp.mpf(1) if z > 40 else mp.erf(z)


def gelu(x):
    return x * Phi(x)


def elu(x, alpha):
    return x if x > 0 else alpha * mp.expm1(x)


def xielu(x, a_p, a_n, beta, eps):
    # Huang & Schlag 2024, with the reference code's parametrisation of alpha_p, alpha_n
    if x > 0:
        return softplus(a_p) * x * x + beta * x
    return (beta + softplus(a_n)) * (mp.expm1(min(x, eps)) - x) + beta * x


def pau(x, a0, a1, a2, a3, a4, a5, b1, b2, b3, b4):
    # Molina et al. 2020, "safe" PAU: P(x) / (1 + |b1 x| + |b2 x^2| + |b3 x^3| + |b4 x^4|)
    num = a0 + a1 * x + a2 * x**2 + a3 * x**3 + a4 * x**4 + a5 * x**5
    den = 1 + abs(b1 * x) + abs(b2 * x**2) + abs(b3 * x**3) + abs(b4 * x**4)
    return num / den


def clamp(x, lo, hi):
    return min(max(x, lo), hi)


REF: dict[str, Callable[..., mp.mpf]] = {
    "identity": lambda x: x,
    "sigmoid": sig,
    "tanh": mp.tanh,
    "hardsigmoid": lambda x: clamp(x + 3, 0, 6) / 6,
    "logsigmoid": lambda x: -softplus(-x),
    "hardtanh": lambda x, min_val, max_val: clamp(x, min_val, max_val),
    "softsign": lambda x: x / (1 + abs(x)),
    "arctan": mp.atan,
    "isru": lambda x, alpha: x / mp.sqrt(1 + alpha * x * x),
    "relu": lambda x: max(x, 0),
    "leaky_relu": lambda x, alpha: x if x > 0 else alpha * x,
    "prelu": lambda x, alpha: x if x > 0 else alpha * x,
    "rrelu": lambda x, lower, upper: x if x > 0 else (lower + upper) / 2 * x,
    "relu6": lambda x: clamp(x, 0, 6),
    "threshold": lambda x, threshold, value: x if x > threshold else value,
    "squared_relu": lambda x: max(x, 0) ** 2,
    "elu": elu,
    "selu": lambda x: SELU_SCALE * elu(x, SELU_ALPHA),
    "celu": lambda x, alpha: x if x > 0 else alpha * mp.expm1(x / alpha),
    "isrlu": lambda x, alpha: x if x >= 0 else x / mp.sqrt(1 + alpha * x * x),
    "elish": lambda x: (x if x >= 0 else mp.expm1(x)) * sig(x),
    "gelu": gelu,
    "gelu_tanh": lambda x: x / 2 * (1 + mp.tanh(GELU_K * (x + mp.mpf("0.044715") * x**3))),
    "quick_gelu": lambda x: x * sig(mp.mpf("1.702") * x),
    "silu": lambda x, beta: x * sig(beta * x),
    "mish": lambda x: x * mp.tanh(softplus(x)),
    "hardswish": lambda x: x * clamp(x + 3, 0, 6) / 6,
    "serf": lambda x: x * erf(softplus(x)),
    "tanhexp": lambda x: x * mp.tanh(mp.exp(x)),
    "lisht": lambda x: x * mp.tanh(x),
    "smelu": lambda x, beta: (
        x if x >= beta else (0 if x <= -beta else (x + beta) ** 2 / (4 * beta))
    ),
    "softplus": lambda x, beta, threshold: (
        x if beta * x > threshold else softplus(beta * x) / beta
    ),
    "tanhshrink": lambda x: x - mp.tanh(x),
    "softshrink": lambda x, lambd: x - lambd if x > lambd else (x + lambd if x < -lambd else 0),
    "hardshrink": lambda x, lambd: x if abs(x) > lambd else 0,
    "bent_identity": lambda x: (mp.sqrt(x * x + 1) - 1) / 2 + x,
    "gaussian": lambda x: mp.exp(-x * x),
    "sine": lambda x, w0: mp.sin(w0 * x),
    "snake": lambda x, alpha: x + mp.sin(alpha * x) ** 2 / alpha,
    "xielu": xielu,
    "star_relu": lambda x, s, b: s * max(x, 0) ** 2 + b,
    "pau": pau,
    "dyt": lambda x, alpha, gamma, beta: gamma * mp.tanh(alpha * x) + beta,
}

#: GLU family (Shazeer 2020): f(a, b) = a g(b); the gate function g of each
GATES: dict[str, Callable[..., mp.mpf]] = {
    "glu": sig,
    "reglu": lambda b: max(b, 0),
    "geglu": gelu,
    "swiglu": lambda b: b * sig(b),
    "bilinear": lambda b: b,
}
