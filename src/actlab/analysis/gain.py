"""Initialisation gain: the weight scale that preserves the second moment through a layer.

For a layer ``h' = W f(h)`` with ``W_ij ~ N(0, g^2 / fan_in)`` and ``h ~ N(0, 1)``,
``E[h'^2] = g^2 E[f(z)^2]``, so the second-moment preserving gain is

    g = 1 / sqrt(E[f(z)^2]),   z ~ N(0, 1),

computed by Gaussian quadrature (:mod:`actlab.analysis.quadrature`). It is the answer to
"what do I pass to ``nn.init`` for GELU / SiLU / Mish?", which
``torch.nn.init.calculate_gain`` does not cover. Where PyTorch has a value it is reported
next to it: for relu (sqrt 2) and leaky_relu (sqrt(2 / (1 + a^2))) PyTorch uses this very
definition; its tanh (5/3), sigmoid (1) and selu (3/4) values are heuristics.

Gated activations (GLU family): ``E[f(a, b)^2]`` over two independent N(0, 1) inputs,
the two halves of the preceding layer's output.

Note that E[f(z)] != 0 (sigmoid: 1/2) adds a mean to the next layer's inputs; the gain
still preserves the second moment E[h^2], which is what the next pre-activation's
variance depends on, but the mean does not vanish; see ``E[f(z)]`` in the table.

Example:
    >>> round(gain("relu"), 6)
    1.414214
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from actlab.analysis._eval import resolve
from actlab.analysis.quadrature import act_moments

DEFAULT_SIGMA_B2 = (0.0, 0.01, 0.1, 1.0)


def gain(activation: Any) -> float:
    """Second-moment preserving gain ``1 / sqrt(E[f(z)^2])``, z ~ N(0, 1).

    Args:
        activation: anything :func:`actlab.get` accepts (name, Activation, ``"formula:..."``,
            callable).

    Raises:
        ValueError: if E[f(z)^2] is zero or not finite (e.g. f gives NaN for some inputs).

    Example:
        >>> w = torch.empty(256, 128)
        >>> torch.nn.init.normal_(w, std=gain("gelu") / 128 ** 0.5)
    """
    act = resolve(activation)
    m2 = act_moments(act).second
    if not (math.isfinite(m2) and m2 > 0):
        raise ValueError(
            f"the gain of {act.name} is undefined: E[f(z)^2] = {m2!r} "
            "(it must be positive and finite; does f give NaN or inf for some inputs?)"
        )
    return 1.0 / math.sqrt(m2)


def torch_gain(activation: Any) -> tuple[str, float] | None:
    """PyTorch's ``calculate_gain`` for this activation, as ``(call, value)``, or ``None``.

    PReLU and RReLU map to ``leaky_relu`` with their (initial / evaluation-mode) slope.
    """
    act = resolve(activation)
    p = act.params
    table: dict[str, tuple[str, float | None]] = {
        "identity": ("linear", None),
        "sigmoid": ("sigmoid", None),
        "tanh": ("tanh", None),
        "relu": ("relu", None),
        "selu": ("selu", None),
        "leaky_relu": ("leaky_relu", p.get("alpha")),
        "prelu": ("leaky_relu", p.get("alpha")),
        "rrelu": ("leaky_relu", 0.5 * (p.get("lower", 0.0) + p.get("upper", 0.0))),
    }
    if not act.spec.builtin or act.name not in table:
        return None
    name, param = table[act.name]
    value = torch.nn.init.calculate_gain(name, param)  # type: ignore[arg-type]
    call = f"calculate_gain('{name}'" + (f", {param:g})" if param is not None else ")")
    return call, float(value)


def gain_table(activations: Iterable[Any], sigma_b2: Sequence[float] = DEFAULT_SIGMA_B2) -> Any:
    """A ``pandas.DataFrame``: gain, E[f(z)], E[f(z)^2], E[f'(z)^2], critical sigma_w^2
    (edge of chaos) at each ``sigma_b2``, and PyTorch's ``calculate_gain`` where it exists.

    Rows whose quantities are undefined hold NaN and an ``error`` message.
    """
    import pandas as pd

    from actlab.analysis.propagation import critical_weight_variance

    rows = []
    for a in activations:
        act = resolve(a)
        row: dict[str, Any] = {"activation": act.name}
        try:
            m = act_moments(act)
            row.update(
                {
                    "gain": gain(act),
                    "E[f(z)]": m.mean,
                    "E[f(z)^2]": m.second,
                    "E[f'(z)^2]": m.deriv2,
                }
            )
            for sb in sigma_b2:
                row[f"crit sigma_w^2 (sigma_b^2={sb:g})"] = critical_weight_variance(act, sb)
            row["error"] = ""
        except ValueError as exc:
            row["error"] = str(exc)
        tg = torch_gain(act)
        row["torch call"] = tg[0] if tg else ""
        row["torch gain"] = tg[1] if tg else math.nan
        rows.append(row)
    return pd.DataFrame(rows)
