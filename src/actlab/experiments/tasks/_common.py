"""Helpers shared by the tasks: configuration checks and FitResult -> RunResult."""

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
