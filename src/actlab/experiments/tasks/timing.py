"""``ffn_timing``: forward and forward+backward time of the transformer FFN block.

The article's ``TransformerFFN`` (``d_model`` 512, ``d_ff`` 2048) built with each
activation's memory-efficient module; GLU-family activations get the gated block with
the same parameter count (hidden width ``round(2/3 d_ff)``). Times are medians of
``torch.utils.benchmark`` (``blocked_autorange``, which synchronises CUDA) on an input of
shape ``(batch, seq, d_model)``, in the executor's thread setting.

Metrics: ``fwd_bwd_ms`` (primary, lower is better), ``fwd_ms`` (inference, no autograd
graph) and ``tokens_per_s`` for forward+backward. Defaults use batch 8 x seq 128 (the
article's 32 x 128 is 4x slower on one CPU thread); set ``batch=32`` to match it.
"""

from __future__ import annotations

import time

import torch
from torch.utils import benchmark

from actlab.experiments.base import STATUS_OK, RunResult, RunSpec, Task, register_task
from actlab.experiments.models import FeedForward, count_params
from actlab.experiments.tasks._common import check_config, choice, integer, number, resolve_config
from actlab.experiments.train import seed_everything

DEFAULTS = {"batch": 8, "seq": 128, "d_model": 512, "d_ff": 2048, "dtype": "float32",
            "min_run_time": 0.3}
QUICK = {"batch": 2, "seq": 16, "d_model": 64, "d_ff": 256, "min_run_time": 0.05}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
SCHEMA = {**{k: integer(1) for k in ("batch", "seq", "d_model", "d_ff")},
          "dtype": choice(*DTYPES), "min_run_time": number(0.0, strict=True)}


def check(cfg: dict) -> None:
    """Raise ``ValueError`` for an ``ffn_timing`` configuration that cannot run."""
    check_config("ffn_timing", cfg, SCHEMA)


def _median_s(fn, min_run_time: float) -> tuple[float, float]:
    fn()
    fn()  # warm-up (allocations, lazy initialisation)
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return m.median, m.iqr


def run(spec: RunSpec, device: torch.device) -> RunResult:
    start = time.perf_counter()
    cfg = resolve_config(spec, DEFAULTS, SCHEMA)
    dtype = DTYPES[cfg["dtype"]]
    seed_everything(spec.seed)
    ffn = FeedForward(int(cfg["d_model"]), int(cfg["d_ff"]), spec.activation).to(device, dtype)
    shape = (int(cfg["batch"]), int(cfg["seq"]), int(cfg["d_model"]))
    x = torch.randn(shape, device=device, dtype=dtype)
    grad = torch.randn(shape, device=device, dtype=dtype)

    def forward() -> None:
        with torch.no_grad():
            ffn(x)

    def forward_backward() -> None:
        ffn.zero_grad(set_to_none=True)
        ffn(x).backward(grad)

    min_run_time = float(cfg["min_run_time"])
    fwd, fwd_iqr = _median_s(forward, min_run_time)
    fwd_bwd, fwd_bwd_iqr = _median_s(forward_backward, min_run_time)
    tokens = shape[0] * shape[1]
    return RunResult(
        status=STATUS_OK,
        metrics={
            "fwd_bwd_ms": fwd_bwd * 1e3,
            "fwd_ms": fwd * 1e3,
            "tokens_per_s": tokens / fwd_bwd,
        },
        wall_time=time.perf_counter() - start,
        artifacts={
            "config": cfg,
            "params": count_params(ffn),
            "d_hidden": ffn.d_hidden,
            "fwd_iqr_ms": fwd_iqr * 1e3,
            "fwd_bwd_iqr_ms": fwd_bwd_iqr * 1e3,
            "device": str(device),
            "threads": torch.get_num_threads(),
        },
    )


TASK = register_task(
    Task(
        name="ffn_timing",
        run=run,
        metric="fwd_bwd_ms",
        higher_is_better=False,
        defaults=DEFAULTS,
        quick=QUICK,
        description="forward and forward+backward time of the transformer FFN block",
        check=check,
    )
)
