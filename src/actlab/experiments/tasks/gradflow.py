"""``gradflow``: gradient flow through depth at initialisation (the analysis stage's table).

Runs :func:`actlab.analysis.gradflow.gradient_flow` (a deep MLP at initialisation, a real
forward and backward pass, float64) for each depth in ``depths`` and reports the ratio of
first-layer to last-layer weight-gradient norms: below 1 the gradient vanishes towards
the input, above 1 it explodes; 1 is ideal.

Metrics: ``abs_log10_ratio`` (|log10 ratio| at the depth ``metric_depth``, primary, lower is
better), ``log10_ratio`` (signed, same depth) and ``log10_ratio_d<depth>`` for each depth.
A first-layer gradient of exactly 0 (underflow, or every unit dead) counts as log10 = -324.
Artifacts: per depth the ratio, the per-layer factor and the per-layer gradient norms.
"""

from __future__ import annotations

import math
import time

import torch

from actlab.experiments.base import STATUS_OK, RunResult, RunSpec, Task, register_task
from actlab.experiments.tasks._common import check_config, choice, int_list, integer, resolve_config

DEFAULTS = {
    "depths": [5, 10, 20, 50],
    "metric_depth": 20,
    "width": 128,
    "batch": 256,
    "init": "default",
    "inner_seeds": 1,
}
QUICK = {"depths": [5, 20], "width": 32, "batch": 64}
SCHEMA = {"depths": int_list(1), "metric_depth": integer(1), "width": integer(1),
          "batch": integer(2), "init": choice("default", "kaiming", "gain", "critical"),
          "inner_seeds": integer(1)}


def check(cfg: dict) -> None:
    """Raise ``ValueError`` for a ``gradflow`` configuration that cannot run."""
    check_config("gradflow", cfg, SCHEMA)
    if cfg["metric_depth"] not in cfg["depths"]:
        raise ValueError(
            f"task 'gradflow': setting metric_depth={cfg['metric_depth']} must be one of "
            f"depths {list(cfg['depths'])}"
        )


UNDERFLOW_LOG10 = -324.0  # below float64's smallest subnormal (~4.9e-324)


def _log10(x: float) -> float | None:
    """log10 of a ratio; an exact 0 (gradients underflowed) maps to -324; NaN/inf -> None."""
    if x == 0:
        return UNDERFLOW_LOG10
    return math.log10(x) if x > 0 and math.isfinite(x) else None


def run(spec: RunSpec, device: torch.device) -> RunResult:
    from actlab.analysis.gradflow import gradient_flow

    start = time.perf_counter()
    cfg = resolve_config(spec, DEFAULTS)
    check(cfg)
    depths = [int(d) for d in cfg["depths"]]
    seeds = [spec.seed * 1000 + i for i in range(int(cfg["inner_seeds"]))]
    table: dict[str, list] = {"depths": depths, "ratio": [], "log10_ratio": [],
                              "per_layer_factor": [], "grad_norm": []}
    metrics: dict[str, float] = {}
    for depth in depths:
        flow = gradient_flow(
            spec.activation, depth, width=int(cfg["width"]), init=str(cfg["init"]),
            seeds=seeds, batch=int(cfg["batch"]), device=device,
        )
        log_ratio = _log10(flow.ratio)
        table["ratio"].append(flow.ratio if math.isfinite(flow.ratio) else None)
        table["log10_ratio"].append(log_ratio)
        table["per_layer_factor"].append(flow.per_layer_factor)
        table["grad_norm"].append([float(g) for g in flow.grad_norm])
        if log_ratio is None:
            raise ValueError(
                f"gradient ratio at depth {depth} is {flow.ratio}: the gradients are not "
                "finite even in float64"
            )
        metrics[f"log10_ratio_d{depth}"] = log_ratio
    target = metrics[f"log10_ratio_d{cfg['metric_depth']}"]
    metrics["log10_ratio"] = target
    metrics["abs_log10_ratio"] = abs(target)
    return RunResult(
        status=STATUS_OK,
        metrics=metrics,
        wall_time=time.perf_counter() - start,
        artifacts={"config": cfg, **table},
    )


TASK = register_task(
    Task(
        name="gradflow",
        run=run,
        metric="abs_log10_ratio",
        higher_is_better=False,
        defaults=DEFAULTS,
        quick=QUICK,
        description="first/last-layer gradient norm ratio of a deep MLP at initialisation",
        check=check,
    )
)
