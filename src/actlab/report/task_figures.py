"""Figures drawn from the artifacts of task runs (the XOR decision boundary).

The ``xor`` task stores ``artifacts["boundary"] = {"x": [...], "y": [...], "prob": [[...]]}``
(``prob[i][j]`` is p(y = 1) at ``(x[j], y[i])``), the four ``points`` and their ``labels``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from actlab.experiments.base import RunResult
from actlab.report.figures import plt, save


def _artifacts(result: RunResult | Mapping[str, Any]) -> Mapping[str, Any]:
    arts = result.artifacts if isinstance(result, RunResult) else result
    if "boundary" not in arts:
        raise KeyError("this result has no 'boundary' artifact (is it from the xor task?)")
    return arts


def draw_xor_boundary(
    ax: Axes, result: RunResult | Mapping[str, Any], title: str | None = None
) -> Axes:
    """Draw one XOR decision boundary on ``ax``: p(y = 1) shaded, the 0.5 contour, the points.

    Args:
        result: a ``RunResult`` of the ``xor`` task, or its ``artifacts`` dict.
        title: panel title (default: none).
    """
    arts = _artifacts(result)
    b = arts["boundary"]
    x, y = np.asarray(b["x"], dtype=float), np.asarray(b["y"], dtype=float)
    prob = np.asarray(b["prob"], dtype=float)
    if prob.shape != (y.size, x.size):
        raise ValueError(f"boundary grid has shape {prob.shape}, expected {(y.size, x.size)}")
    mesh = ax.contourf(x, y, prob, levels=np.linspace(0, 1, 11), cmap="RdBu_r", vmin=0, vmax=1)
    if prob.min() < 0.5 < prob.max():
        ax.contour(x, y, prob, levels=[0.5], colors="k", linewidths=1.5)
    pts = np.asarray(arts["points"], dtype=float)
    labels = np.asarray(arts["labels"])
    for cls, marker, color in ((0, "o", "#2166ac"), (1, "s", "#b2182b")):
        sel = labels == cls
        ax.scatter(pts[sel, 0], pts[sel, 1], marker=marker, s=90, c=color, edgecolors="white",
                   linewidths=1.5, zorder=3, label=f"y = {cls}")
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y[0], y[-1])
    ax.set_aspect("equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    if title:
        ax.set_title(title, fontsize=10)
    ax._actlab_mesh = mesh  # for a shared colour bar
    return ax


def _panels(
    results: RunResult | Mapping[str, Any] | Sequence[Any],
) -> list[tuple[str, Mapping[str, Any], float | None]]:
    """``(label, artifacts, accuracy)`` per panel, first seed per activation for stored runs."""
    if isinstance(results, RunResult) or (
        isinstance(results, Mapping) and "boundary" in results
    ):
        res = results
        acc = res.metrics.get("accuracy") if isinstance(res, RunResult) else None
        return [("", _artifacts(res), acc)]
    if isinstance(results, Mapping):  # label -> RunResult or artifacts
        items = list(results.items())
    else:
        chosen: dict[str, Any] = {}
        for run in results:
            if isinstance(run, tuple):
                label, res = run
                chosen.setdefault(str(label), res)
                continue
            label, seed = run.spec.activation, run.spec.seed
            if label not in chosen or seed < chosen[label].spec.seed:
                chosen[label] = run
        items = [(k, getattr(v, "result", v)) for k, v in chosen.items()]
    out = []
    for label, res in items:
        acc = res.metrics.get("accuracy") if isinstance(res, RunResult) else None
        out.append((str(label), _artifacts(res), acc))
    if not out:
        raise ValueError("no XOR results to draw")
    return out


def plot_xor_boundaries(
    results: RunResult | Mapping[str, Any] | Sequence[Any],
    out: str | Path | None = None,
    columns: int = 4,
) -> Figure:
    """XOR decision boundaries, one panel per activation.

    Args:
        results: one ``RunResult`` (or artifacts dict); a mapping ``label -> RunResult``;
            a sequence of ``(label, RunResult)``; or stored runs (objects with ``.spec``
            and ``.result``, e.g. from ``ResultsStore``), of which the first seed of each
            activation is drawn.
        out: save the figure there (format from the suffix).
        columns: panels per row.

    Example:
        >>> res = TASKS["xor"].run(RunSpec("xor", "tanh", 0, {}), torch.device("cpu"))
        >>> plot_xor_boundaries({"tanh": res}, out="xor.png")
    """
    panels = _panels(results)
    cols = max(1, min(columns, len(panels)))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols + 0.8, 3.2 * rows), squeeze=False)
    mesh = None
    for i, (ax, (label, arts, acc)) in enumerate(zip(axes.flat, panels, strict=False)):
        title = label + (f" (accuracy {acc:.0%})" if acc is not None else "")
        draw_xor_boundary(ax, arts, title=title or None)
        if i % cols:
            ax.set_ylabel("")
        mesh = ax._actlab_mesh
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if mesh is not None:
        fig.colorbar(mesh, ax=axes.ravel().tolist(), shrink=0.8, label="p(y = 1)")
    return save(fig, out)
