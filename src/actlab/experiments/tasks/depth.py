"""``depth``: test accuracy against network depth (the Mish paper's depth experiment).

For each depth in ``depths`` (number of hidden layers, 2 to 30 by default) a fresh
:class:`~actlab.experiments.models.DeepMLP` of ``width`` units per layer (PyTorch's
default initialisation, no normalisation or residuals) is trained on ``dataset`` and
scored on its test split. Activations whose gradients vanish or explode through depth
lose accuracy as layers are added; Misra (2019, Fig. 2) shows this for Swish/ReLU/Mish.

Metrics: ``mean_accuracy`` (mean test accuracy over the depths, primary) and
``accuracy_at_max_depth``. A depth whose training diverged (NaN/inf loss) counts at chance
accuracy (1 / classes) and is listed in the artifacts; the run itself stays ``ok``.
Artifacts: ``depths``, ``test_accuracy``, ``test_loss`` (``None`` if diverged), ``status``,
``diverged_step`` and mean ``epoch_time`` per depth.
"""

from __future__ import annotations

import time

import torch

from actlab.experiments.base import STATUS_OK, RunResult, RunSpec, Task, register_task
from actlab.experiments.models import DeepMLP
from actlab.experiments.tasks._common import check_config, choice, int_list, integer, resolve_config
from actlab.experiments.tasks.classify import (
    DATA_KEYS,
    DATA_SCHEMA,
    MLP_DATASETS,
    TRAIN_KEYS,
    TRAIN_SCHEMA,
    _factor,
    load_task_data,
)
from actlab.experiments.train import fit_classifier, seed_everything

DEFAULTS = {
    **DATA_KEYS,
    **TRAIN_KEYS,
    "depths": [2, 6, 10, 14, 18, 22, 26, 30],
    "width": 64,
    "epochs": 15,
    "init": "default",
}
QUICK = {"depths": [2, 8], "epochs": 2, "width": 32}
SCHEMA = {**DATA_SCHEMA, **TRAIN_SCHEMA, "dataset": choice(*MLP_DATASETS), "depths": int_list(1),
          "width": integer(1), "epochs": integer(1),
          "init": choice("default", "kaiming", "xavier")}


def check(cfg: dict) -> None:
    """Raise ``ValueError`` for a ``depth`` configuration that cannot run."""
    check_config("depth", cfg, SCHEMA)


def run(spec: RunSpec, device: torch.device) -> RunResult:
    start = time.perf_counter()
    cfg = resolve_config(spec, DEFAULTS, SCHEMA)
    depths = [int(d) for d in cfg["depths"]]
    data = load_task_data("depth", cfg, MLP_DATASETS, device)
    chance = 1.0 / data.num_classes
    table: dict[str, list] = {"depths": depths, "test_accuracy": [], "test_loss": [],
                              "status": [], "diverged_step": [], "epoch_time": []}
    for depth in depths:
        seed_everything(spec.seed)
        model = DeepMLP(
            data.in_features, int(cfg["width"]), depth, data.num_classes, spec.activation,
            init=str(cfg["init"]),
        ).to(device)
        fit = fit_classifier(
            model, data, epochs=int(cfg["epochs"]), lr=float(cfg["lr"]),
            batch_size=int(cfg["batch"]), seed=spec.seed, optimizer=str(cfg["optimizer"]),
            weight_decay=float(cfg["weight_decay"]), monitor_dead=False,
            diverge_factor=_factor(cfg),
        )
        ok = fit.status == STATUS_OK
        table["status"].append(fit.status)
        table["diverged_step"].append(fit.diverged_step)
        table["test_accuracy"].append(fit.metrics["test_accuracy"] if ok else chance)
        table["test_loss"].append(fit.metrics["test_loss"] if ok else None)
        times = fit.curves["epoch_time"]
        table["epoch_time"].append(sum(times) / max(len(times), 1))
    accs = table["test_accuracy"]
    return RunResult(
        status=STATUS_OK,
        metrics={
            "mean_accuracy": float(sum(accs) / len(accs)),
            "accuracy_at_max_depth": float(accs[depths.index(max(depths))]),
            "min_accuracy": float(min(accs)),
        },
        wall_time=time.perf_counter() - start,
        artifacts={"config": cfg, **table},
    )


TASK = register_task(
    Task(
        name="depth",
        run=run,
        metric="mean_accuracy",
        higher_is_better=True,
        defaults=DEFAULTS,
        quick=QUICK,
        description="test accuracy against depth (2-30 hidden layers), as in the Mish paper",
        architecture="mlp",
        check=check,
    )
)
