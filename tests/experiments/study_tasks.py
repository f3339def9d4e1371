"""Tiny tasks for the study, store, executor and resume tests (registered on import).

They are module-level functions so that spawned worker processes and Ray can run them:

- ``tiny_fit``: a real 2-8-1 network trained full-batch on XOR for a few Adam steps
  (deterministic per seed and activation; metric ``accuracy``);
- ``tiny_env``: reports the worker's pid and torch thread count;
- ``tiny_slow``: sleeps ``config["sleep"]`` seconds, appending one line per execution to
  ``config["log"]`` (to count executions across processes);
- ``tiny_diverge``: gradient descent on ``w**2`` with step size ``config["lr"]``;
  diverges (inf/NaN) when lr > 1 and records the step;
- ``tiny_fail``: raises ``ValueError``, or fails until a marker file exists;
- ``tiny_crash``: kills its own worker process (SIGKILL, or ``os._exit(3)`` with
  ``how="exit"``) when the seed is in ``config["crash"]``, else returns after a short sleep.

- ``tiny_group``: ``tiny_fit`` with a ``run_group`` that trains the seeds one after the
  other in its worker and marks each result (``artifacts["grouped"]``), records the
  seeds of each group in ``config["log"]``, raises when ``config["fail_group"]``, and kills
  its worker when a seed is in ``config["crash"]``.

``cube`` is a module-level activation function (workers can unpickle it by reference).
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import torch

import actlab
from actlab.experiments.base import (
    STATUS_DIVERGED,
    STATUS_OK,
    RunResult,
    RunSpec,
    Task,
    register_task,
)


def fit_run(spec: RunSpec, device: torch.device) -> RunResult:
    torch.manual_seed(spec.seed)
    act = actlab.get(spec.activation)
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0.0, 1.0, 1.0, 0.0])
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), act.module(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(net.parameters(), lr=spec.config.get("lr", 0.05))
    losses = []
    for _ in range(int(spec.config.get("steps", 40))):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x).squeeze(1), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    acc = float(((net(x).squeeze(1) > 0).float() == y).float().mean())
    return RunResult(
        status=STATUS_OK,
        metrics={"accuracy": acc, "loss": losses[-1]},
        curves={"loss": losses},
        artifacts={"n_params": sum(p.numel() for p in net.parameters())},
    )


def env_run(spec: RunSpec, device: torch.device) -> RunResult:
    return RunResult(
        status=STATUS_OK,
        metrics={"pid": float(os.getpid()), "threads": float(torch.get_num_threads())},
    )


def slow_run(spec: RunSpec, device: torch.device) -> RunResult:
    log = spec.config.get("log")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{spec.key}\t{os.getpid()}\n")
    time.sleep(float(spec.config.get("sleep", 0.2)))
    return RunResult(status=STATUS_OK, metrics={"score": float(spec.seed)})


def diverge_run(spec: RunSpec, device: torch.device) -> RunResult:
    w = torch.tensor(3.0)
    lr = float(spec.config.get("lr", 0.1))
    losses = []
    for step in range(1, 2001):
        loss = w * w
        if not math.isfinite(float(loss)):
            return RunResult(
                status=STATUS_DIVERGED, diverged_step=step, curves={"loss": losses},
                metrics={"loss": float(loss)},
            )
        losses.append(float(loss))
        w = w - lr * 2 * w
    return RunResult(status=STATUS_OK, metrics={"loss": losses[-1]}, curves={"loss": losses})


def fail_run(spec: RunSpec, device: torch.device) -> RunResult:
    marker = spec.config.get("unless")
    if marker and Path(marker).exists():
        return RunResult(status=STATUS_OK, metrics={"score": 1.0})
    raise ValueError(f"deliberate failure for seed {spec.seed}")


def crash_run(spec: RunSpec, device: torch.device) -> RunResult:
    if spec.seed in spec.config.get("crash", ()):
        if spec.config.get("how") == "exit":
            os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(spec.config.get("sleep", 0.3)))
    return RunResult(status=STATUS_OK, metrics={"score": float(spec.seed)})


def group_run(specs: list[RunSpec], device: torch.device) -> list[RunResult]:
    cfg = specs[0].config
    if cfg.get("log"):
        with open(cfg["log"], "a") as fh:
            fh.write(",".join(str(s.seed) for s in specs) + f"\t{os.getpid()}\n")
    if cfg.get("fail_group"):
        raise RuntimeError("deliberate group failure")
    out = []
    for spec in specs:
        if spec.seed in cfg.get("crash", ()):
            os.kill(os.getpid(), signal.SIGKILL)
        result = fit_run(spec, device)
        result.artifacts["grouped"] = len(specs)
        out.append(result)
    return out


def group_limit(spec: RunSpec) -> int:
    """tanh runs alone; else ``config["limit"]`` seeds per stack (default 16)."""
    return 1 if spec.activation == "tanh" else int(spec.config.get("limit", 16))


def group_single_run(spec: RunSpec, device: torch.device) -> RunResult:
    if spec.seed in spec.config.get("crash", ()):
        os.kill(os.getpid(), signal.SIGKILL)
    return fit_run(spec, device)


def cube(x: torch.Tensor) -> torch.Tensor:
    return x * x * x + x


def _task(name: str, run, metric: str, hib: bool, defaults: dict, quick: dict | None = None):
    return register_task(
        Task(name=name, run=run, metric=metric, higher_is_better=hib, defaults=defaults,
             quick=quick or {}, description=f"test task {name}")
    )


_task("tiny_fit", fit_run, "accuracy", True, {"steps": 40, "lr": 0.05}, {"steps": 5})
_task("tiny_env", env_run, "threads", True, {})
_task("tiny_slow", slow_run, "score", True, {"sleep": 0.2, "log": "", "data_dir": None})
_task("tiny_diverge", diverge_run, "loss", False, {"lr": 0.1})
_task("tiny_fail", fail_run, "score", True, {"unless": ""})
_task("tiny_crash", crash_run, "score", True, {"crash": [], "how": "kill", "sleep": 0.3})
register_task(
    Task(name="tiny_group", run=group_single_run, run_group=group_run,
         stack_limit=group_limit, metric="accuracy",
         higher_is_better=True, description="test task tiny_group",
         defaults={"steps": 20, "lr": 0.05, "log": "", "fail_group": False, "crash": [],
                   "limit": 16},
         quick={})
)
