"""``mlp`` and ``cnn``: the article's classifiers trained on real data.

Both train with Adam (batch 128 by default) and record, per epoch, ``train_loss``,
``test_loss``, ``test_accuracy``, ``epoch_time`` and ``dead_fraction``; the primary metric
is the final ``test_accuracy``. ``dataset`` picks the data: ``digits`` (default) and
``mnist1d`` offline, ``fashion_mnist`` from Debian's ``dataset-fashion-mnist`` package (or
``data_dir``), ``mnist`` and ``cifar10`` from ``data_dir``. ``train_size`` / ``test_size``
train and score on a fixed random subset of a split (the same images for every run).

``epochs`` defaults to a per-dataset value (:data:`DEFAULT_EPOCHS`; ``mlp``: 60 on digits,
100 on MNIST-1D, about 3 s and 7 s per run on one CPU thread; 5 on MNIST).

The article's experiments on real images (Fashion-MNIST, the drop-in replacement for
MNIST): ``mlp/fashion_mnist`` is the article's ``train_with_activation`` (784-256-128-10,
Adam lr 1e-3, batch 128, 5 epochs) and ``cnn/fashion_mnist`` its CNN (conv 32, conv 64,
each with a 2x2 max-pool, fc 128, fc 10) on 1x28x28 images for 3 epochs. The ``short``
presets (``mlp/fashion_mnist/short``, ``cnn/fashion_mnist/short``; :data:`SHORT_RECIPES`)
are the default study's shorter schedules on a fixed subset of the training images.

MNIST-1D paper recipe (Greydanus & Kobak, 2024; task ids ``mlp/mnist1d/paper``,
``cnn/mnist1d/paper`` and ``mlp/mnist1d/logistic``): Adam lr 1e-2, batch 100, 6000 steps
(150 epochs of 4000) on the default 4000/1000 split, with the authors' three baselines: their
``MLPBase`` (40-100-100-10, the second layer residual: ``h + act(W h)``), their 1-D
``ConvBase`` (``arch="mnist1d_paper"``, 5210 parameters) and logistic regression (no hidden
layer). Table 1 of the paper reports 32 %, 68 % and 94 %; the authors' own notebooks print
31.5 % (logistic), 64.6 % / 65.1 % (MLP) and 92.3 % (CNN) for these models at step 6000.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from actlab.experiments.base import RunResult, RunSpec, Task, register_task
from actlab.experiments.data import DATASETS, Dataset, load_dataset
from actlab.experiments.models import CNN, MLP, MNIST1DCNN, count_params
from actlab.experiments.tasks._common import (
    DIVERGE_FACTOR,
    Rule,
    check_config,
    check_group,
    choice,
    flag,
    int_list,
    integer,
    number,
    optional,
    peak_memory_metrics,
    reset_peak_memory,
    resolve_config,
    stackable,
    text,
    to_run_result,
)
from actlab.experiments.train import fit_classifier, seed_everything

DATA_KEYS = {
    "dataset": "digits", "split_seed": 0, "data_dir": None, "download": False,
    "train_size": None, "test_size": None,
}
TRAIN_KEYS = {
    "lr": 1e-3, "batch": 128, "optimizer": "adam", "weight_decay": 0.0, "diverge_factor": 1e3
}

# ``epochs: None`` means the dataset's default below (the resolved value is in the
# artifacts' config); chosen for about 5 s (digits) and 10 s (MNIST-1D) per run on one thread
DEFAULT_EPOCHS = {
    "mlp": {"spirals": 100, "digits": 60, "mnist1d": 100, "mnist": 5, "fashion_mnist": 5,
            "cifar10": 10},
    "cnn": {"digits": 20, "mnist1d": 40, "mnist": 3, "fashion_mnist": 3, "cifar10": 10},
}
MLP_DEFAULTS = {
    **DATA_KEYS, **TRAIN_KEYS, "epochs": None, "hidden": [256, 128], "residual": False
}
CNN_DEFAULTS = {
    **DATA_KEYS,
    **TRAIN_KEYS,
    "epochs": None,
    "arch": "article",
    "channels": [32, 64],
    "hidden": 128,
}
# --quick: a smoke-test setting (a few seconds per run even on 60,000-image datasets)
QUICK = {"epochs": 2, "train_size": 5000, "test_size": 2000}
CNN_QUICK = {"epochs": 1, "train_size": 2000, "test_size": 1000}
MLP_DATASETS = tuple(d for d in DATASETS if d != "xor")  # the xor task covers XOR
CNN_DATASETS = ("digits", "mnist1d", "mnist", "fashion_mnist", "cifar10")
CNN_ARCHS = ("article", "mnist1d_paper")

PAPER_RECIPES: dict[str, dict[str, Any]] = {
    "mlp": {
        "dataset": "mnist1d",
        "hidden": [100, 100],
        "residual": True,
        "lr": 1e-2,
        "batch": 100,
        "epochs": 150,
    },
    "cnn": {
        "dataset": "mnist1d",
        "arch": "mnist1d_paper",
        "lr": 1e-2,
        "batch": 100,
        "epochs": 150,
    },
}

LOGISTIC_RECIPE: dict[str, Any] = {**PAPER_RECIPES["mlp"], "hidden": [], "residual": False}

# The default study's schedules on Fashion-MNIST (task ids ``mlp/fashion_mnist/short`` and
# ``cnn/fashion_mnist/short``): the article's models and optimiser, fewer images and
# epochs, so that the default study fits in 10 minutes on 2 cores; see the README's
# "Evidence" section for how their rankings compare with the full recipes'.
SHORT_RECIPES: dict[str, dict[str, Any]] = {
    "mlp": {"dataset": "fashion_mnist", "train_size": 20000, "epochs": 2},
    "cnn": {"dataset": "fashion_mnist", "train_size": 5000, "test_size": 5000, "epochs": 2},
}

OPTIMIZERS = ("adam", "adamw", "sgd")
DATA_SCHEMA: dict[str, Rule] = {
    "split_seed": integer(0), "data_dir": text, "download": flag,
    "train_size": optional(integer(1), "all of the split"),
    "test_size": optional(integer(1), "all of the split"),
}
TRAIN_SCHEMA: dict[str, Rule] = {
    "lr": number(0.0, strict=True), "batch": integer(1), "optimizer": choice(*OPTIMIZERS),
    "weight_decay": number(0.0), "diverge_factor": DIVERGE_FACTOR,
}
_EPOCHS = optional(integer(1), "the dataset's default")
MLP_SCHEMA: dict[str, Rule] = {
    **DATA_SCHEMA, **TRAIN_SCHEMA, "dataset": choice(*MLP_DATASETS), "epochs": _EPOCHS,
    "hidden": int_list(1, nonempty=False), "residual": flag,
}
CNN_SCHEMA: dict[str, Rule] = {
    **DATA_SCHEMA, **TRAIN_SCHEMA, "dataset": choice(*CNN_DATASETS), "epochs": _EPOCHS,
    "arch": choice(*CNN_ARCHS), "channels": int_list(1), "hidden": integer(1),
}


def check_mlp(cfg: dict[str, Any]) -> None:
    """Raise ``ValueError`` for an ``mlp`` configuration that cannot run."""
    check_config("mlp", cfg, MLP_SCHEMA)


def check_cnn(cfg: dict[str, Any]) -> None:
    """Raise ``ValueError`` for a ``cnn`` configuration that cannot run."""
    check_config("cnn", cfg, CNN_SCHEMA)


def load_task_data(task: str, cfg: dict[str, Any], accepted: tuple[str, ...],
                   device: torch.device) -> Dataset:
    """The configured dataset on ``device`` (checks that the task accepts it)."""
    name = str(cfg["dataset"])
    if name not in accepted:
        raise ValueError(
            f"task {task!r} cannot use dataset {name!r}; accepted: {', '.join(accepted)}"
        )
    options = {"split_seed": int(cfg["split_seed"])} if name == "digits" else {}
    data = load_dataset(name, data_dir=cfg["data_dir"], download=bool(cfg["download"]), **options)
    data = data.subset(cfg.get("train_size"), cfg.get("test_size"), seed=int(cfg["split_seed"]))
    return data.to(device)


def _factor(cfg: dict[str, Any]) -> float | None:
    f = cfg.get("diverge_factor")
    return None if f is None else float(f)


def resolve_epochs(task: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with ``epochs: None`` replaced by the dataset's default."""
    if cfg["epochs"] is None:
        cfg = {**cfg, "epochs": DEFAULT_EPOCHS[task][str(cfg["dataset"])]}
    return cfg


def _artifacts(cfg: dict[str, Any], model: torch.nn.Module, data: Dataset) -> dict[str, Any]:
    return {
        "config": cfg,
        "params": count_params(model),
        "dataset": {
            "name": data.name,
            "train": len(data.y_train),
            "test": len(data.y_test),
            "input_shape": list(data.input_shape),
        },
    }


def _train_options(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "epochs": int(cfg["epochs"]),
        "lr": float(cfg["lr"]),
        "batch_size": int(cfg["batch"]),
        "optimizer": str(cfg["optimizer"]),
        "weight_decay": float(cfg["weight_decay"]),
        "diverge_factor": _factor(cfg),
    }


def _fit(spec: RunSpec, cfg: dict[str, Any], model: torch.nn.Module, data: Dataset,
         device: torch.device, start: float, cpu_start: float) -> RunResult:
    model = model.to(device)
    memory_baseline = reset_peak_memory(device)
    fit = fit_classifier(model, data, seed=spec.seed, **_train_options(cfg))
    result = to_run_result(fit, _artifacts(cfg, model, data))
    if result.metrics:
        result.metrics.update(peak_memory_metrics(device, memory_baseline))
    result.wall_time = time.perf_counter() - start
    # CPU seconds of this process: the cost of the run even on a shared, busy machine
    result.artifacts["cpu_time"] = time.process_time() - cpu_start
    return result


def _fit_group(specs: list[RunSpec], cfg: dict[str, Any], models: list[torch.nn.Module],
               data: Dataset, device: torch.device, start: float,
               cpu_start: float) -> list[RunResult]:
    """Train the seeds of ``specs`` (one model each) as one stacked model."""
    from actlab.experiments.train_stacked import fit_classifier_stacked

    models = [m.to(device) for m in models]
    fits = fit_classifier_stacked(
        models, data, [s.seed for s in specs], **_train_options(cfg)
    )
    wall = (time.perf_counter() - start) / len(specs)
    cpu = (time.process_time() - cpu_start) / len(specs)
    results = []
    for fit, model in zip(fits, models, strict=True):
        result = to_run_result(fit, _artifacts(cfg, model, data))
        result.wall_time = wall
        result.artifacts["cpu_time"] = cpu  # each seed's share of the group's CPU time
        results.append(result)
    return results


def _mlp_setup(spec: RunSpec, device: torch.device) -> tuple[dict[str, Any], Dataset]:
    cfg = resolve_config(spec, MLP_DEFAULTS, MLP_SCHEMA)
    data = load_task_data("mlp", cfg, MLP_DATASETS, device)
    return resolve_epochs("mlp", cfg), data


def _mlp_arch(spec: RunSpec, cfg: dict[str, Any], shape: tuple[int, ...],
              classes: int) -> torch.nn.Module:
    return MLP(
        math.prod(shape),
        [int(h) for h in cfg["hidden"]],
        classes,
        spec.activation,
        residual=bool(cfg["residual"]),
    )


def _mlp_model(spec: RunSpec, cfg: dict[str, Any], data: Dataset) -> torch.nn.Module:
    seed_everything(spec.seed)
    return _mlp_arch(spec, cfg, data.input_shape, data.num_classes)


def run_mlp(spec: RunSpec, device: torch.device) -> RunResult:
    start, cpu_start = time.perf_counter(), time.process_time()
    cfg, data = _mlp_setup(spec, device)
    return _fit(spec, cfg, _mlp_model(spec, cfg, data), data, device, start, cpu_start)


def run_mlp_group(specs: list[RunSpec], device: torch.device) -> list[RunResult]:
    """Seeds of one ``mlp`` cell as one stacked model (see :func:`run_mlp`)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    check_group(specs)
    cfg, data = _mlp_setup(specs[0], device)
    models = [_mlp_model(spec, cfg, data) for spec in specs]
    return _fit_group(specs, cfg, models, data, device, start, cpu_start)


def _cnn_setup(spec: RunSpec, device: torch.device) -> tuple[dict[str, Any], Dataset]:
    cfg = resolve_config(spec, CNN_DEFAULTS, CNN_SCHEMA)
    data = load_task_data("cnn", cfg, CNN_DATASETS, device)
    return resolve_epochs("cnn", cfg), data


def _cnn_arch(spec: RunSpec, cfg: dict[str, Any], shape: tuple[int, ...], classes: int,
              name: str) -> torch.nn.Module:
    if cfg["arch"] == "mnist1d_paper":
        if len(shape) > 2 or (len(shape) == 2 and shape[0] != 1):
            raise ValueError(
                f"arch 'mnist1d_paper' takes 1-D signals; dataset {name!r} has inputs "
                f"of shape {shape}"
            )
        return MNIST1DCNN(shape[-1], classes, spec.activation)
    return CNN(
        shape,
        classes,
        spec.activation,
        channels=[int(c) for c in cfg["channels"]],
        hidden=int(cfg["hidden"]),
    )


def _cnn_model(spec: RunSpec, cfg: dict[str, Any], data: Dataset) -> torch.nn.Module:
    seed_everything(spec.seed)
    return _cnn_arch(spec, cfg, data.input_shape, data.num_classes, data.name)


def run_cnn(spec: RunSpec, device: torch.device) -> RunResult:
    start, cpu_start = time.perf_counter(), time.process_time()
    cfg, data = _cnn_setup(spec, device)
    return _fit(spec, cfg, _cnn_model(spec, cfg, data), data, device, start, cpu_start)


def run_cnn_group(specs: list[RunSpec], device: torch.device) -> list[RunResult]:
    """Seeds of one ``cnn`` cell as one stacked model (see :func:`run_cnn`)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    check_group(specs)
    cfg, data = _cnn_setup(specs[0], device)
    models = [_cnn_model(spec, cfg, data) for spec in specs]
    return _fit_group(specs, cfg, models, data, device, start, cpu_start)


#: input shape and classes of each dataset (to size a stack without loading the data)
INPUT_SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "spirals": ((2,), 2),
    "digits": ((1, 8, 8), 10),
    "mnist1d": ((40,), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}


def _stack_limit(spec: RunSpec, defaults: dict[str, Any], arch: Any) -> int:
    """Seeds per stack: 1 for an activation that cannot stack or an unknown dataset, else
    as many as fit :data:`~actlab.experiments.stacked.STACK_BUDGET` (shapes only)."""
    from actlab.experiments.stacked import activation_volume, seeds_within_budget

    cfg = resolve_config(spec, defaults)
    if not stackable(spec) or str(cfg["dataset"]) not in INPUT_SHAPES:
        return 1
    shape, classes = INPUT_SHAPES[str(cfg["dataset"])]
    with torch.device("meta"):
        model = arch(spec, cfg, shape, classes, str(cfg["dataset"]))
        example = torch.empty(int(cfg["batch"]), *shape)
    return seeds_within_budget(activation_volume(model, example))


def mlp_stack_limit(spec: RunSpec) -> int:
    """How many seeds of an ``mlp`` run may train as one stack."""
    return _stack_limit(spec, MLP_DEFAULTS,
                        lambda spec, cfg, shape, classes, name: _mlp_arch(spec, cfg, shape,
                                                                          classes))


def cnn_stack_limit(spec: RunSpec) -> int:
    """How many seeds of a ``cnn`` run may train as one stack."""
    return _stack_limit(spec, CNN_DEFAULTS, _cnn_arch)


MLP_TASK = register_task(
    Task(
        name="mlp",
        run=run_mlp,
        run_group=run_mlp_group,
        stack_limit=mlp_stack_limit,
        metric="test_accuracy",
        higher_is_better=True,
        defaults=MLP_DEFAULTS,
        quick=QUICK,
        description="the article's MLP (in-256-128-classes), Adam, per-epoch curves",
        architecture="mlp",
        check=check_mlp,
    )
)

CNN_TASK = register_task(
    Task(
        name="cnn",
        run=run_cnn,
        run_group=run_cnn_group,
        stack_limit=cnn_stack_limit,
        metric="test_accuracy",
        higher_is_better=True,
        defaults=CNN_DEFAULTS,
        quick=CNN_QUICK,
        description="the article's CNN (conv32, conv64, pool, fc128), 2-D or 1-D inputs",
        architecture="cnn",
        check=check_cnn,
    )
)
