"""Helpers shared by the tasks: configuration checks and FitResult -> RunResult."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

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
