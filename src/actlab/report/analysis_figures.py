"""Figures of the analysis stage: gradient norm per layer through depth.

Every function returns a matplotlib ``Figure`` (and saves it if asked), like
:mod:`actlab.report.figures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from actlab.report.figures import plt, save


def plot_gradient_flow(
    results: Sequence[Any], out: str | Path | None = None, quantity: str = "grad_norm"
) -> Figure:
    """Gradient norm against layer index (log scale), one line per activation.

    Args:
        results: :class:`actlab.analysis.gradflow.GradientFlow` results; one panel per
            distinct depth, one line per activation.
        out: file to write (format from the suffix), or ``None``.
        quantity: ``"grad_norm"`` (``||dL/dW_l||``) or ``"delta_norm"`` (``||dL/dh_l||``).

    Example:
        >>> flows = [gradient_flow(a, 50) for a in ("sigmoid", "tanh", "relu")]
        >>> plot_gradient_flow(flows, "gradflow.png")
    """
    if not results:
        raise ValueError("plot_gradient_flow needs at least one gradient-flow result")
    if quantity not in ("grad_norm", "delta_norm"):
        raise ValueError(f"quantity must be 'grad_norm' or 'delta_norm', got {quantity!r}")
    depths = sorted({r.depth for r in results})
    ncols = min(2, len(depths))
    nrows = -(-len(depths) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 4.2 * nrows), squeeze=False)
    flat = axes.ravel()
    for ax in flat[len(depths) :]:
        ax.set_visible(False)
    colours: dict[str, str] = {}
    for ax, depth in zip(flat, depths, strict=False):
        for r in (r for r in results if r.depth == depth):
            c = colours.setdefault(r.activation, f"C{len(colours) % 10}")
            y = np.asarray(getattr(r, quantity), dtype=float)
            layers = np.arange(1, len(y) + 1)
            ax.semilogy(layers, y, marker="o", ms=3, color=c, label=f"{r.activation} ({r.init})")
        ax.set_title(f"depth {depth}")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("layer (1 = next to the input)")
        ax.set_ylabel("||dL/dW_l||" if quantity == "grad_norm" else "||dL/dh_l||")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Gradient norm per layer at initialisation")
    fig.tight_layout()
    return save(fig, out)
