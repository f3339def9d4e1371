"""The seed article's experiments as tasks, registered into ``base.TASKS`` on import.

========== ========================================================== ==================
task       what it runs                                               metric
========== ========================================================== ==================
xor        2-8-1 network on the article's four XOR points             accuracy (max)
mlp        the article's MLP on ``dataset``                           test_accuracy (max)
cnn        the article's CNN (2-D or 1-D) on ``dataset``              test_accuracy (max)
ffn_timing transformer FFN block, forward and forward+backward        fwd_bwd_ms (min)
depth      deep MLPs of 2..30 layers (Mish paper)                     mean_accuracy (max)
char_lm    character transformer LM on the pydoc text                 val_loss (min)
gradflow   gradient-norm ratio through depth at initialisation        abs_log10_ratio (min)
========== ========================================================== ==================

Task ids on the command line: ``TASK`` or ``TASK/DATASET`` (``mlp/mnist1d``), and
``mlp/mnist1d/paper`` / ``cnn/mnist1d/paper`` / ``mlp/mnist1d/logistic`` for the MNIST-1D
paper's recipe and baselines; ``mlp/fashion_mnist/short``, ``cnn/fashion_mnist/short`` and
``char_lm/short`` for the default study's shorter schedules; see :func:`parse_task_id`.
"""

from __future__ import annotations

from typing import Any

from actlab.experiments.base import TASKS
from actlab.experiments.tasks import (  # importing a module registers its task
    char_lm,
    classify,
    depth,
    gradflow,
    timing,
    xor,
)

DATASET_TASKS: dict[str, tuple[str, ...]] = {
    "mlp": classify.MLP_DATASETS,
    "cnn": classify.CNN_DATASETS,
    "depth": classify.MLP_DATASETS,
}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": classify.PAPER_RECIPES,
    "logistic": {"mlp": classify.LOGISTIC_RECIPE},
    "short": {**classify.SHORT_RECIPES, "char_lm": char_lm.SHORT},
}


def preset_ids() -> list[str]:
    """Every preset task id, e.g. ``mlp/mnist1d/paper``, ``char_lm/short``."""
    out = []
    for preset, recipes in PRESETS.items():
        for task, recipe in recipes.items():
            ds = recipe.get("dataset")
            out.append(f"{task}/{ds}/{preset}" if ds else f"{task}/{preset}")
    return out


def task_ids() -> list[str]:
    """Every id :func:`parse_task_id` accepts (without presets), e.g. ``mlp/digits``."""
    out = []
    for name in (xor.TASK.name, "mlp", "cnn", timing.TASK.name, depth.TASK.name, char_lm.TASK.name,
                 gradflow.TASK.name):
        out += [f"{name}/{d}" for d in DATASET_TASKS[name]] if name in DATASET_TASKS else [name]
    return out


def parse_task_id(task_id: str) -> tuple[str, dict[str, Any]]:
    """Split a task id into the task name and its configuration overrides.

    ``"xor"`` -> ``("xor", {})``; ``"mlp/digits"`` -> ``("mlp", {"dataset": "digits"})``;
    ``"cnn/mnist1d/paper"`` -> ``("cnn", {"dataset": "mnist1d", "arch": "mnist1d_paper",
    "lr": 0.01, "batch": 100, "epochs": 150})`` (the MNIST-1D paper's recipe);
    ``"char_lm/short"`` -> ``("char_lm", {...})`` (a preset of a task without a dataset).

    Raises:
        ValueError: unknown task, dataset or preset (the message lists the accepted ones).
    """
    parts = [p.strip() for p in str(task_id).strip().split("/")]
    name = parts[0].lower()
    if name not in TASKS:
        raise ValueError(f"unknown task {task_id!r}; accepted: {', '.join(task_ids())}")
    if len(parts) == 1:
        return name, {}
    if name not in DATASET_TASKS:
        recipe = PRESETS.get(parts[1].lower(), {}).get(name)
        if len(parts) == 2 and recipe is not None and "dataset" not in recipe:
            return name, dict(recipe)
        raise ValueError(
            f"task {name!r} takes no dataset; use {name!r} alone or one of its presets "
            f"({', '.join(p for p in preset_ids() if p.startswith(name + '/')) or 'none'}); "
            f"got {task_id!r}"
        )
    dataset = parts[1].lower().replace("-", "_")
    if dataset not in DATASET_TASKS[name]:
        raise ValueError(
            f"task {name!r} cannot use dataset {parts[1]!r}; accepted: "
            f"{', '.join(DATASET_TASKS[name])}"
        )
    overrides: dict[str, Any] = {"dataset": dataset}
    if len(parts) == 2:
        return name, overrides
    preset = parts[2].lower()
    recipe = PRESETS.get(preset, {}).get(name)
    if len(parts) > 3 or recipe is None or recipe.get("dataset") != dataset:
        raise ValueError(f"unknown task id {task_id!r}; presets: {', '.join(preset_ids())}")
    return name, {**overrides, **recipe}


__all__ = ["DATASET_TASKS", "PRESETS", "parse_task_id", "preset_ids", "task_ids"]
