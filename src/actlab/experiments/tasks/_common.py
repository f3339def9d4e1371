"""Helpers shared by the tasks: configuration checks, FitResult -> RunResult, and the
checks of stacked (grouped) runs."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from actlab.experiments.base import RunResult, RunSpec
from actlab.experiments.train import FitResult

#: a rule checks one setting's value: ``None`` if it is fine, else what it must be
Rule = Callable[[Any], str | None]


def integer(low: int = 1) -> Rule:
    """An integer >= ``low`` (bools refused)."""

    def rule(v: Any) -> str | None:
        ok = isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= low
        return None if ok else f"must be an integer >= {low}"

    return rule


def number(low: float | None = None, strict: bool = False) -> Rule:
    """A finite number, optionally > ``low`` (``strict``) or >= ``low``."""

    def rule(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int | float | np.number):
            return "must be a number"
        if not math.isfinite(float(v)):
            return "must be finite"
        if low is not None and (v < low or (strict and v == low)):
            return f"must be {'>' if strict else '>='} {low:g}"
        return None

    return rule


def choice(*options: Any) -> Rule:
    """One of ``options``."""

    def rule(v: Any) -> str | None:
        return None if v in options else f"must be one of {', '.join(map(str, options))}"

    return rule


def optional(inner: Rule, meaning: str = "the default") -> Rule:
    """``None`` (meaning ``meaning``) or what ``inner`` accepts."""

    def rule(v: Any) -> str | None:
        problem = None if v is None else inner(v)
        return None if problem is None else f"{problem} (or None for {meaning})"

    return rule


def int_list(low: int = 1, nonempty: bool = True) -> Rule:
    """A list of integers >= ``low`` (empty allowed unless ``nonempty``)."""
    item = integer(low)

    def rule(v: Any) -> str | None:
        ok = isinstance(v, list | tuple) and (v or not nonempty)
        ok = ok and all(item(x) is None for x in v)
        return None if ok else (
            f"must be a {'non-empty ' if nonempty else ''}list of integers >= {low}"
        )

    return rule


def flag(v: Any) -> str | None:
    """A bool."""
    return None if isinstance(v, bool) else "must be true or false"


def text(v: Any) -> str | None:
    """A string or None."""
    return None if v is None or isinstance(v, str) else "must be text"


#: the divergence threshold: a factor above 1, or None (only NaN/inf diverge)
DIVERGE_FACTOR = optional(number(1.0, strict=True), "NaN/inf only")


def check_config(task: str, cfg: Mapping[str, Any], schema: Mapping[str, Rule]) -> None:
    """Check every setting of ``cfg`` that ``schema`` has a rule for.

    Raises:
        ValueError: ``task 'mlp': setting lr=-1 must be > 0``.
    """
    for key, rule in schema.items():
        if key in cfg:
            problem = rule(cfg[key])
            if problem:
                raise ValueError(f"task {task!r}: setting {key}={cfg[key]!r} {problem}")


def resolve_config(
    spec: RunSpec, defaults: Mapping[str, Any], schema: Mapping[str, Rule] | None = None
) -> dict[str, Any]:
    """The task's defaults overridden by ``spec.config``, checked against ``schema``;
    unknown keys are an error."""
    unknown = sorted(set(spec.config) - set(defaults))
    if unknown:
        raise ValueError(
            f"task {spec.task!r} has no setting {', '.join(map(repr, unknown))}; accepted: "
            f"{', '.join(sorted(defaults))}"
        )
    cfg = {**defaults, **spec.config}
    if schema is not None:
        check_config(spec.task, cfg, schema)
    return cfg


def to_run_result(fit: FitResult, artifacts: dict[str, Any]) -> RunResult:
    """A ``RunResult`` carrying the fit's status, metrics, curves and step counts."""
    return RunResult(
        status=fit.status,
        metrics=dict(fit.metrics),
        curves={k: list(v) for k, v in fit.curves.items()},
        wall_time=fit.wall_time,
        diverged_step=fit.diverged_step,
        artifacts={**artifacts, **fit.extra, "steps": fit.steps},
    )


def check_group(specs: list[RunSpec]) -> None:
    """Check that ``specs`` are seeds of one cell: same task, activation and configuration,
    different seeds (what a task's ``run_group`` trains as one stacked model)."""
    if not specs:
        raise ValueError("a group of runs needs at least one run")
    first = specs[0]
    for spec in specs[1:]:
        if (spec.task, spec.activation, spec.config_hash) != (
            first.task, first.activation, first.config_hash
        ):
            raise ValueError(
                f"runs {first.key} and {spec.key} differ in more than their seed and cannot "
                "be stacked"
            )
    seeds = [s.seed for s in specs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a group of stacked runs needs distinct seeds, got {seeds}")


def stackable(spec: RunSpec) -> bool:
    """Whether the run's activation can be stacked (see
    :func:`actlab.experiments.stacked.stack_problem`)."""
    from actlab.experiments.stacked import can_stack

    return can_stack(spec.activation)


def reset_peak_memory(device: torch.device) -> int:
    """Start measuring peak memory on ``device``; returns the bytes allocated now (the data
    and the model), the baseline for :func:`peak_memory_metrics`. CUDA only (0 elsewhere)."""
    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    return int(torch.cuda.memory_allocated(device))


def peak_memory_metrics(device: torch.device, baseline: int = 0) -> dict[str, float]:
    """``{"peak_memory_mb": ...}``: the most memory allocated on ``device`` since
    :func:`reset_peak_memory`, above ``baseline`` (activations saved for backward,
    gradients, optimiser state). CUDA only: the CPU allocator keeps no such count, so there
    the result is empty rather than a guess."""
    if device.type != "cuda":
        return {}
    return {"peak_memory_mb": (torch.cuda.max_memory_allocated(device) - baseline) / 2**20}
