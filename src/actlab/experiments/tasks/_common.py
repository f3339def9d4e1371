"""Helpers shared by the tasks: configuration checks, FitResult -> RunResult, and the
checks of stacked (grouped) runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actlab.experiments.base import RunResult, RunSpec
from actlab.experiments.train import FitResult


def resolve_config(spec: RunSpec, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The task's defaults overridden by ``spec.config``; unknown keys are an error."""
    unknown = sorted(set(spec.config) - set(defaults))
    if unknown:
        raise ValueError(
            f"task {spec.task!r} has no setting {', '.join(map(repr, unknown))}; accepted: "
            f"{', '.join(sorted(defaults))}"
        )
    return {**defaults, **spec.config}


def positive_int(cfg: Mapping[str, Any], *keys: str) -> None:
    """Check that ``cfg[key]`` is an integer >= 1 for each key."""
    for key in keys:
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"setting {key} must be an integer >= 1, got {value!r}")


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
