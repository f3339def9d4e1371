"""``char_lm``: a small transformer language model on Python's own documentation text.

A GPT-style character model (:class:`~actlab.experiments.models.CharTransformer`) trained
on ``pydoc_data.topics`` (about 420k training characters, the last 10% for validation),
with the FFN activation varied, as in Shazeer's "GLU Variants Improve Transformer"
(2020): GLU-family activations use the gated FFN with matching parameter count.

Metric: ``val_loss`` (nats per character on fixed validation windows; lower is better),
also ``val_bpc``. Curves every ``eval_every`` steps: ``step``, ``train_loss``, ``val_loss``.
"""

from __future__ import annotations

import time

import torch

from actlab.experiments.base import RunResult, RunSpec, Task, register_task
from actlab.experiments.data import pydoc_text
from actlab.experiments.models import CharTransformer, count_params
from actlab.experiments.tasks._common import (
    DIVERGE_FACTOR,
    check_config,
    integer,
    number,
    peak_memory_metrics,
    reset_peak_memory,
    resolve_config,
    to_run_result,
)
from actlab.experiments.train import fit_lm, seed_everything

DEFAULTS = {
    "steps": 600,
    "batch": 32,
    "block": 64,
    "d_model": 64,
    "n_layer": 2,
    "n_head": 4,
    "d_ff": 256,
    "lr": 3e-3,
    "eval_every": 100,
    "eval_batches": 10,
    "diverge_factor": 1e3,
}
QUICK = {
    "steps": 30,
    "batch": 8,
    "block": 32,
    "d_model": 32,
    "n_layer": 1,
    "n_head": 2,
    "d_ff": 64,
    "eval_every": 10,
    "eval_batches": 2,
}

# The default study's schedule (task id ``char_lm/short``): the same model and data, fewer
# steps; see the README's "Evidence" section for how its ranking compares with the default.
SHORT = {"steps": 300, "eval_every": 100}

SCHEMA = {
    **{k: integer(1) for k in ("steps", "batch", "block", "d_model", "n_layer", "n_head", "d_ff",
                               "eval_every", "eval_batches")},
    "lr": number(0.0, strict=True),
    "diverge_factor": DIVERGE_FACTOR,
}


def check(cfg: dict) -> None:
    """Raise ``ValueError`` for a ``char_lm`` configuration that cannot run."""
    check_config("char_lm", cfg, SCHEMA)
    if cfg["d_model"] % cfg["n_head"]:
        raise ValueError(
            f"task 'char_lm': setting d_model={cfg['d_model']} must be a multiple of "
            f"n_head={cfg['n_head']}"
        )


_TEXT = None


def _text():
    global _TEXT
    if _TEXT is None:
        _TEXT = pydoc_text()
    return _TEXT


def run(spec: RunSpec, device: torch.device) -> RunResult:
    start, cpu_start = time.perf_counter(), time.process_time()
    cfg = resolve_config(spec, DEFAULTS)
    check(cfg)
    text = _text().to(device)
    seed_everything(spec.seed)
    model = CharTransformer(
        text.vocab_size,
        block_size=int(cfg["block"]),
        d_model=int(cfg["d_model"]),
        n_layer=int(cfg["n_layer"]),
        n_head=int(cfg["n_head"]),
        d_ff=int(cfg["d_ff"]),
        activation=spec.activation,
    ).to(device)
    memory_baseline = reset_peak_memory(device)
    fit = fit_lm(
        model,
        text,
        steps=int(cfg["steps"]),
        lr=float(cfg["lr"]),
        batch_size=int(cfg["batch"]),
        block_size=int(cfg["block"]),
        eval_every=int(cfg["eval_every"]),
        eval_batches=int(cfg["eval_batches"]),
        seed=spec.seed,
        diverge_factor=None if cfg["diverge_factor"] is None else float(cfg["diverge_factor"]),
    )
    result = to_run_result(
        fit, {"config": cfg, "params": count_params(model), "vocab_size": text.vocab_size}
    )
    if result.metrics:
        result.metrics.update(peak_memory_metrics(device, memory_baseline))
    result.wall_time = time.perf_counter() - start
    # CPU seconds of this process: the cost of the run even on a shared, busy machine
    result.artifacts["cpu_time"] = time.process_time() - cpu_start
    return result


TASK = register_task(
    Task(
        name="char_lm",
        run=run,
        metric="val_loss",
        higher_is_better=False,
        defaults=DEFAULTS,
        quick=QUICK,
        description="character-level transformer LM on the pydoc text, FFN activation varied",
        architecture="transformer",
        check=check,
    )
)
