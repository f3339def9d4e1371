"""matplotlib figures. Every function returns a ``Figure`` (and saves it if asked).

The backend is forced to Agg: figures are written to files or embedded in the report.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from actlab.catalog import Activation, get


def save(fig: Figure, out: str | Path | None) -> Figure:
    """Save ``fig`` to ``out`` (format from the suffix) and return it."""
    if out is not None:
        out = Path(out)
        if out.parent and not out.parent.exists():
            raise FileNotFoundError(f"cannot write {out}: directory {out.parent} does not exist")
        fig.savefig(out, dpi=110, bbox_inches="tight")
    return fig


def to_png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of a figure (for embedding in the HTML report)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _curve(act: Activation, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f and f' on a 1-D grid; gated activations are drawn along the diagonal a = b = x."""
    if act.gated:
        xx = torch.stack([x, x], dim=-1)  # rows (a, b) = (x, x)
        y = act(xx).reshape(-1)
        d = act.derivative(xx)
        return y, d.sum(dim=-1)  # total derivative along a = b = x
    return act(x), act.derivative(x)


def plot_activations(
    activations: Sequence[str | Activation],
    out: str | Path | None = None,
    x_range: tuple[float, float] = (-6.0, 6.0),
    points: int = 1000,
) -> Figure:
    """The seed article's figure for any activations: each function and its derivative.

    One row per activation, the function on the left and f'(x) on the right, labelled
    and on a grid (for two activations this is the article's 2x2 sigmoid/tanh figure).
    """
    acts = [get(a) for a in activations]
    if not acts:
        raise ValueError("plot_activations needs at least one activation")
    lo, hi = x_range
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"x range must be two finite numbers with low < high, got {x_range}")
    x = torch.linspace(lo, hi, points, dtype=torch.float64)
    n = len(acts)
    fig, axes = plt.subplots(n, 2, figsize=(12, 4 * n), squeeze=False)
    for row, act in zip(axes, acts, strict=True):
        y, d = _curve(act, x)
        label = act.name + (" (a = b = x)" if act.gated else "")
        row[0].plot(x.numpy(), y.numpy(), color="C0")
        row[0].set_title(label)
        row[0].set_xlabel("x")
        row[0].set_ylabel("f(x)")
        row[1].plot(x.numpy(), d.numpy(), color="C1")
        row[1].set_title(f"{label} derivative")
        row[1].set_xlabel("x")
        row[1].set_ylabel("f'(x)")
        for ax in row:
            ax.grid(True)
            ax.axhline(0.0, color="0.6", lw=0.6)
            ax.axvline(0.0, color="0.6", lw=0.6)
    fig.tight_layout()
    return save(fig, out)
