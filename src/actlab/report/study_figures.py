"""Comparison figures for the report: activations overlaid, training curves over seeds,
wall time, and the depth experiment.

Every function takes plain data (names -> arrays), returns a ``Figure`` and saves it when
``out`` is given, so it can be used without a study database.

Example:
    >>> fig = plot_seed_curves({"relu": [[1.0, 0.5], [0.9, 0.4]]}, ylabel="train loss")
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from actlab.catalog import Activation, get
from actlab.report.figures import _curve, save


def _colors(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def plot_overlay(
    activations: Sequence[str | Activation],
    out: str | Path | None = None,
    x_range: tuple[float, float] = (-5.0, 5.0),
    points: int = 600,
) -> Figure:
    """All activations on one pair of axes: f(x) on the left, f'(x) on the right.

    Gated activations are drawn along the diagonal a = b = x, as in ``plot_activations``.
    """
    acts = [get(a) for a in activations]
    if not acts:
        raise ValueError("plot_overlay needs at least one activation")
    x = torch.linspace(x_range[0], x_range[1], points, dtype=torch.float64)
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(12, 4.2))
    for act, color in zip(acts, _colors(len(acts)), strict=True):
        y, d = _curve(act, x)
        ax_f.plot(x.numpy(), y.numpy(), color=color, label=act.name, lw=1.6)
        ax_d.plot(x.numpy(), d.numpy(), color=color, label=act.name, lw=1.6)
    ax_f.set_title("f(x)")
    ax_d.set_title("f'(x)")
    for ax in (ax_f, ax_d):
        ax.set_xlabel("x")
        ax.grid(True, alpha=0.5)
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.axvline(0.0, color="0.6", lw=0.6)
    ax_f.set_ylim(max(ax_f.get_ylim()[0], -3.0), min(ax_f.get_ylim()[1], x_range[1] + 0.5))
    ax_d.set_ylim(max(ax_d.get_ylim()[0], -0.6), min(ax_d.get_ylim()[1], 2.0))
    ax_d.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    fig.tight_layout()
    return save(fig, out)


def _stack(runs: Sequence[Sequence[float]]) -> np.ndarray:
    """Seeds x epochs array; shorter runs (a diverged run) are padded with NaN."""
    n = max((len(r) for r in runs), default=0)
    arr = np.full((len(runs), n), np.nan)
    for i, r in enumerate(runs):
        vals = np.asarray(r, dtype=float)
        vals[~np.isfinite(vals)] = np.nan
        arr[i, : len(vals)] = vals
    return arr


def plot_seed_curves(
    series: Mapping[str, Sequence[Sequence[float]]],
    ylabel: str,
    title: str = "",
    out: str | Path | None = None,
    logy: bool = False,
    xlabel: str = "epoch",
    ax: plt.Axes | None = None,
    xstep: float = 1.0,
) -> Figure:
    """Per-epoch curves, one line per activation: the mean over seeds and a +-1 std band.

    Args:
        series: ``activation -> [seed_1_curve, seed_2_curve, ...]`` (per-epoch values;
            NaN/inf and missing epochs are ignored in the mean).
        ylabel: what the curves measure, e.g. ``"test accuracy"``.
        logy: log scale on the y axis (for losses).
        xstep: x distance between consecutive values (e.g. 10 when a loss was kept every
            10 steps); the first value is at x = xstep.
    """
    if not series:
        raise ValueError("plot_seed_curves needs at least one activation's curves")
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
    else:
        fig = ax.figure
    for (name, runs), color in zip(series.items(), _colors(len(series)), strict=True):
        arr = _stack(runs)
        if arr.size == 0:
            continue
        with warnings.catch_warnings():  # an epoch where every seed is NaN: mean is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(arr, axis=0)
            std = np.nanstd(arr, axis=0)
        epochs = np.arange(1, arr.shape[1] + 1) * xstep
        ax.plot(epochs, mean, color=color, lw=1.7, label=f"{name} (n={arr.shape[0]})")
        if arr.shape[0] > 1:
            lo, hi = mean - std, mean + std
            if logy:  # a log axis cannot show lo <= 0: clip the band at the lowest seed
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    lowest = np.nanmin(np.where(arr > 0, arr, np.nan), axis=0)
                lo = np.where(lo > 0, lo, lowest)
            ax.fill_between(epochs, lo, hi, color=color, alpha=0.18, lw=0)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.5)
    ax.legend(fontsize=8, frameon=False, loc="best")
    fig.tight_layout()
    return save(fig, out)


def plot_bars(
    values: Mapping[str, Sequence[float]],
    xlabel: str,
    title: str = "",
    out: str | Path | None = None,
) -> Figure:
    """Horizontal bars: the mean over seeds per activation with +-1 std error bars."""
    if not values:
        raise ValueError("plot_bars needs at least one value")
    names = list(values)
    means = [float(np.mean(values[n])) if len(values[n]) else np.nan for n in names]
    stds = [float(np.std(values[n])) if len(values[n]) > 1 else 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(names) + 1.2))
    y = np.arange(len(names))
    ax.barh(y, means, xerr=stds, color=_colors(len(names)), alpha=0.85, capsize=3)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.5)
    fig.tight_layout()
    return save(fig, out)


def plot_depth(
    results: Mapping[str, Mapping[int, Sequence[float]]],
    ylabel: str = "test accuracy",
    out: str | Path | None = None,
) -> Figure:
    """The depth experiment: metric against number of layers, mean over seeds +- 1 std.

    Args:
        results: ``activation -> {depth: [value per seed]}``.
    """
    if not results:
        raise ValueError("plot_depth needs at least one activation")
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for (name, by_depth), color in zip(results.items(), _colors(len(results)), strict=True):
        depths = sorted(by_depth)
        vals = [np.asarray(by_depth[d], dtype=float) for d in depths]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.array([np.nanmean(v) if v.size else np.nan for v in vals])
            std = np.array([np.nanstd(v) if v.size > 1 else 0.0 for v in vals])
        ax.errorbar(depths, mean, yerr=std, color=color, marker="o", ms=4, capsize=3,
                    lw=1.6, label=name)
    ax.set_xlabel("hidden layers")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.5)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save(fig, out)


def plot_layer_norms(
    norms: Mapping[str, Sequence[float]],
    ylabel: str = "gradient norm ||dL/dW_l||",
    out: str | Path | None = None,
) -> Figure:
    """One line per activation: a per-layer quantity against the layer index (log scale)."""
    if not norms:
        raise ValueError("plot_layer_norms needs at least one activation")
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for (name, vals), color in zip(norms.items(), _colors(len(norms)), strict=True):
        v = np.asarray(vals, dtype=float)
        ax.plot(np.arange(1, v.size + 1), v, color=color, lw=1.6, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("layer (1 = next to the input)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.4)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save(fig, out)
