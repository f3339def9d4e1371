"""The contract between tasks, studies and executors.

A *task* is one of the seed article's experiments (``xor``, ``mlp``, ``cnn``, ...).
A *run* is one task with one activation, one seed and one configuration; it is
described by a :class:`RunSpec` (plain, picklable, JSON-able data) and produces a
:class:`RunResult`. Studies build grids of ``RunSpec`` s, executors call
:func:`execute` on them (in this process, in worker processes, or on Ray), and the
store writes each ``RunResult`` to SQLite under ``RunSpec.key``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from actlab.catalog.runtime import resolve_device

STATUS_OK = "ok"
STATUS_DIVERGED = "diverged"
STATUS_FAILED = "failed"


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable 12-hex-digit hash of a JSON-able configuration."""
    text = json.dumps(dict(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunSpec:
    """One cell of a study grid.

    Attributes:
        task: task name, e.g. ``"mlp"``.
        activation: an activation key (registered name, or ``"formula:<text>"``).
        seed: the random seed (torch, numpy and data shuffling).
        config: the task's full configuration (defaults merged with overrides),
            JSON-able; e.g. ``{"dataset": "digits", "epochs": 10, "lr": 1e-3}``.
    """

    task: str
    activation: str
    seed: int
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    @property
    def key(self) -> str:
        """Stable identity of the run: ``task|activation|seed|config-hash``."""
        return f"{self.task}|{self.activation}|{self.seed}|{self.config_hash}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


@dataclass
class RunResult:
    """What a run produced (JSON-able).

    Attributes:
        status: ``"ok"``, ``"diverged"`` (NaN/inf loss; ``diverged_step`` says when) or
            ``"failed"`` (an exception; ``error`` holds its message).
        metrics: final scalar metrics, e.g. ``{"test_accuracy": 0.93, "test_loss": 0.2}``.
        curves: per-epoch series, e.g. ``{"train_loss": [...], "test_accuracy": [...],
            "dead_fraction": [...], "epoch_time": [...]}``.
        wall_time: seconds the run took.
        artifacts: other JSON-able outputs (decision-boundary grid, timing tables...).
    """

    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)
    wall_time: float = 0.0
    diverged_step: int | None = None
    error: str | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """An experiment that studies can run.

    Attributes:
        name: the task name used on the command line.
        run: ``run(spec, device) -> RunResult``; must be a module-level function
            (picklable) and must set every seed from ``spec.seed``.
        metric: the primary metric in ``RunResult.metrics`` used to rank activations.
        higher_is_better: direction of ``metric``.
        defaults: the default configuration.
        quick: overrides that make the task fast (``--quick``, tests).
        description: one line for ``actlab study --help`` and the report.
        check: ``check(config)`` raises ``ValueError`` (one sentence) for a configuration
            the task cannot run; studies call it on every run before starting any.
        architecture: the architecture whose choice of activation the task informs
            (``"mlp"``, ``"cnn"``, ``"transformer"``), or ``None`` for diagnostics
            (gradient flow, timing, XOR); answers are given per architecture.
    """

    name: str
    run: Callable[[RunSpec, torch.device], RunResult]
    metric: str
    higher_is_better: bool
    defaults: Mapping[str, Any]
    quick: Mapping[str, Any]
    description: str
    architecture: str | None = None
    check: Callable[[Mapping[str, Any]], None] | None = None


TASKS: dict[str, Task] = {}


ARCHITECTURES = ("mlp", "cnn", "transformer")


def register_task(task: Task) -> Task:
    if task.architecture is not None and task.architecture not in ARCHITECTURES:
        raise ValueError(
            f"task {task.name!r}: architecture {task.architecture!r} is not one of "
            f"{', '.join(ARCHITECTURES)} (or None for a diagnostic)"
        )
    TASKS[task.name] = task
    return task


def actlab_version() -> str:
    """The installed actlab's version (from its package metadata; ``"unknown"`` if absent).

    Read from the metadata rather than the package root, which no stage imports.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("actlab")
    except PackageNotFoundError:
        return "unknown"


def default_device() -> torch.device:
    """``$ACTLAB_DEVICE`` if set, else CUDA when available, else CPU (checked: a device that
    does not exist here is a ``ValueError``; see :func:`actlab.catalog.runtime.resolve_device`)."""
    return resolve_device(None)
