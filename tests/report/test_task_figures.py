"""The XOR decision-boundary figure, drawn from xor task results."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from actlab.experiments.base import TASKS, RunSpec
from actlab.report.task_figures import draw_xor_boundary, plot_xor_boundaries


@pytest.fixture(scope="module")
def xor_results():
    import actlab.experiments.tasks  # noqa: F401  (registers the tasks)

    task = TASKS["xor"]
    out = {}
    for act in ("identity", "tanh"):
        spec = RunSpec("xor", act, 0, {**task.defaults, **task.quick})
        out[act] = task.run(spec, torch.device("cpu"))
    return out


def test_boundary_figure_from_results(tmp_path, xor_results):
    fig = plot_xor_boundaries(xor_results, out=tmp_path / "xor.png")
    assert (tmp_path / "xor.png").stat().st_size > 1000
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    linear = xor_results["identity"].metrics["accuracy"]
    assert titles == [f"identity (accuracy {linear:.0%})", "tanh (accuracy 100%)"]
    # the tanh panel draws the 0.5 contour through the lattice; the shaded values are the grid
    prob = np.asarray(xor_results["tanh"].artifacts["boundary"]["prob"])
    assert prob.min() < 0.5 < prob.max()


def test_boundary_figure_from_stored_runs_uses_the_first_seed(xor_results):
    runs = [
        SimpleNamespace(spec=SimpleNamespace(activation="tanh", seed=s), result=xor_results["tanh"])
        for s in (2, 0, 1)
    ]
    fig = plot_xor_boundaries(runs)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["tanh (accuracy 100%)"]


def test_boundary_figure_errors(xor_results):
    import matplotlib.pyplot as plt

    with pytest.raises(KeyError, match="no 'boundary' artifact"):
        plot_xor_boundaries({"relu": {"points": []}})
    bad = dict(xor_results["tanh"].artifacts)
    bad["boundary"] = {**bad["boundary"], "prob": [[0.5]]}
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="boundary grid has shape"):
        draw_xor_boundary(ax, bad)
