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
from typing import Any

import torch

from actlab.experiments.base import RunResult, RunSpec, Task, register_task
from actlab.experiments.data import TextData, pydoc_text
from actlab.experiments.models import CharTransformer, count_params
from actlab.experiments.tasks._common import (
    DIVERGE_FACTOR,
    check_config,
    check_group,
    integer,
    number,
    peak_memory_metrics,
    reset_peak_memory,
    resolve_config,
    stackable,
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


def _setup(spec: RunSpec, device: torch.device) -> tuple[dict[str, Any], TextData]:
    cfg = resolve_config(spec, DEFAULTS)
    check(cfg)
    return cfg, _text().to(device)


def _model(spec: RunSpec, cfg: dict[str, Any], text: TextData,
           device: torch.device) -> CharTransformer:
    seed_everything(spec.seed)
    return CharTransformer(
        text.vocab_size,
        block_size=int(cfg["block"]),
        d_model=int(cfg["d_model"]),
        n_layer=int(cfg["n_layer"]),
        n_head=int(cfg["n_head"]),
        d_ff=int(cfg["d_ff"]),
        activation=spec.activation,
    ).to(device)


def stack_limit(spec: RunSpec) -> int:
    """How many seeds of a ``char_lm`` run may train as one stack (1 for an activation that
    cannot stack; else as many as fit :data:`~actlab.experiments.stacked.STACK_BUDGET`)."""
    from actlab.experiments.stacked import activation_volume, seeds_within_budget

    if not stackable(spec):
        return 1
    cfg = resolve_config(spec, DEFAULTS)
    with torch.device("meta"):
        model = CharTransformer(
            128, block_size=int(cfg["block"]), d_model=int(cfg["d_model"]),
            n_layer=int(cfg["n_layer"]), n_head=int(cfg["n_head"]), d_ff=int(cfg["d_ff"]),
            activation=spec.activation,
        )
        example = torch.zeros(int(cfg["batch"]), int(cfg["block"]), dtype=torch.long)
    return seeds_within_budget(activation_volume(model, example))


def _options(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "steps": int(cfg["steps"]),
        "lr": float(cfg["lr"]),
        "batch_size": int(cfg["batch"]),
        "block_size": int(cfg["block"]),
        "eval_every": int(cfg["eval_every"]),
        "eval_batches": int(cfg["eval_batches"]),
        "diverge_factor": None if cfg["diverge_factor"] is None else float(cfg["diverge_factor"]),
    }


def run(spec: RunSpec, device: torch.device) -> RunResult:
    start, cpu_start = time.perf_counter(), time.process_time()
    cfg, text = _setup(spec, device)
    model = _model(spec, cfg, text, device)
    memory_baseline = reset_peak_memory(device)
    fit = fit_lm(model, text, seed=spec.seed, **_options(cfg))
    result = to_run_result(
        fit, {"config": cfg, "params": count_params(model), "vocab_size": text.vocab_size}
    )
    if result.metrics:
        result.metrics.update(peak_memory_metrics(device, memory_baseline))
    result.wall_time = time.perf_counter() - start
    # CPU seconds of this process: the cost of the run even on a shared, busy machine
    result.artifacts["cpu_time"] = time.process_time() - cpu_start
    return result


def run_group(specs: list[RunSpec], device: torch.device) -> list[RunResult]:
    """Seeds of one ``char_lm`` cell as one stacked model (see :func:`run`)."""
    from actlab.experiments.train_stacked import fit_lm_stacked

    start, cpu_start = time.perf_counter(), time.process_time()
    check_group(specs)
    cfg, text = _setup(specs[0], device)
    models = [_model(spec, cfg, text, device) for spec in specs]
    fits = fit_lm_stacked(models, text, [s.seed for s in specs], **_options(cfg))
    wall = (time.perf_counter() - start) / len(specs)
    cpu = (time.process_time() - cpu_start) / len(specs)
    results = []
    for fit, model in zip(fits, models, strict=True):
        result = to_run_result(
            fit, {"config": cfg, "params": count_params(model), "vocab_size": text.vocab_size}
        )
        result.wall_time = wall
        result.artifacts["cpu_time"] = cpu  # each seed's share of the group's CPU time
        results.append(result)
    return results


TASK = register_task(
    Task(
        name="char_lm",
        run=run,
        run_group=run_group,
        stack_limit=stack_limit,
        metric="val_loss",
        higher_is_better=False,
        defaults=DEFAULTS,
        quick=QUICK,
        description="character-level transformer LM on the pydoc text, FFN activation varied",
        architecture="transformer",
        check=check,
    )
)
