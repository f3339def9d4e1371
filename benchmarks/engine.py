"""The study engine at the floor: actlab's runs against a minimal hand-written loop, and
stacked seeds against one-by-one runs. Prints two tables.

Usage (from the repository root)::

    .venv/bin/python benchmarks/engine.py                     # every task, a few minutes
    .venv/bin/python benchmarks/engine.py --tasks mlp/mnist1d --rounds 5 --seeds 8

Table 1, per task (one process, one torch thread, rounds interleaved, best round kept):

- ``minimal``: a loop written here with native modules (``nn.ReLU``, ``nn.GELU``) doing
  the same work as the task: the same data and batch order (a seeded ``randperm`` per
  epoch, or seeded windows), Adam/AdamW, the same number of steps, the test-set (or
  validation) evaluation at the same points, and nothing else;
- ``actlab run``: the task's run function, exactly as a study calls it (``Task.run``),
  with everything a run records: curves, dead-unit fractions, divergence watch;
- ``loop``: actlab's training loop (``fit_classifier`` / ``fit_lm``, all records on) with
  the native model, over ``minimal``: what the loop and its records cost;
- ``module``: the minimal loop with actlab's model (actlab's activation modules) over
  the minimal loop with the native model: what the activation modules cost.

Table 2, per task: ``--seeds`` seeds trained one by one (``Task.run`` for each) against
the same seeds as one stacked model (``Task.run_group``), the throughput gain, and how
many seeds a study stacks for that run (``Task.stack_size``: models whose activations
exceed the stack budget train alone, because stacking them gains nothing). For the MLP
tasks also a stack written by hand (``minimal_stacked_classifier``: batched matmuls,
``F.relu``, fused Adam, the test set once per epoch, nothing else), its gain over one by
one, and actlab's stacked run over it: what a stack gains on this machine with nothing
around it, and what actlab's records and bookkeeping add.

To run in minutes, the runs are shorter than the tasks' defaults (printed with the table):
mlp/mnist1d 10 epochs (default 100); mlp/fashion_mnist 2 epochs on the first 12000
training and 2000 test images, cnn/fashion_mnist 1 epoch on the first 3000 and 500 (the
defaults are 5 and 3 epochs of 60000 and 10000), cut by wrapping the tasks' data loader;
char_lm 200 steps with an evaluation every 50 (default 600 and 100). ``--full`` uses the
tasks' own settings. Fashion-MNIST is read from ``--fashion-dir``
(default ``/usr/share/datasets/fashion-mnist``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import actlab.experiments.tasks.classify as classify
from actlab.experiments.base import TASKS, RunSpec
from actlab.experiments.data import Dataset, TextData, pydoc_text
from actlab.experiments.executors import MAX_STACK, keep_freed_memory
from actlab.experiments.models import CharTransformer
from actlab.experiments.study import parse_task_id
from actlab.experiments.train import (
    _windows,
    fit_classifier,
    fit_lm,
    seed_everything,
)

FASHION = "/usr/share/datasets/fashion-mnist"
TASK_IDS = ("mlp/mnist1d", "mlp/fashion_mnist", "cnn/fashion_mnist", "char_lm")
ACTIVATION = {"mlp": "relu", "cnn": "relu", "char_lm": "gelu"}
NATIVE = {"relu": nn.ReLU, "gelu": nn.GELU}
SHORT: dict[str, dict[str, Any]] = {
    "mlp/mnist1d": {"epochs": 10},
    "mlp/fashion_mnist": {"epochs": 2},
    "cnn/fashion_mnist": {"epochs": 1},
    "char_lm": {"steps": 200, "eval_every": 50},
}
# (train, test) examples of the short runs, by task and dataset
SUBSET = {("mlp", "fashion_mnist"): (12000, 2000), ("cnn", "fashion_mnist"): (3000, 500)}
_SUBSET_ON = True

_load_task_data = classify.load_task_data


def _load_subset(task: str, cfg: dict[str, Any], accepted: tuple[str, ...],
                 device: torch.device) -> Dataset:
    """The tasks' loader, cut to the benchmark's subset (short runs only)."""
    data = _load_task_data(task, cfg, accepted, device)
    cut = SUBSET.get((task, str(cfg["dataset"]))) if _SUBSET_ON else None
    if cut is None:
        return data
    n_train, n_test = cut
    return Dataset(data.name, data.x_train[:n_train], data.y_train[:n_train],
                   data.x_test[:n_test], data.y_test[:n_test], data.num_classes, data.info)


classify.load_task_data = _load_subset  # the task run functions look it up at call time


# ---------------------------------------------------------------- native models
def _native_act(model: nn.Module, name: str) -> nn.Module:
    """``model`` with every actlab activation module replaced by the native one."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if type(child).__name__ in ("ActivationModule", "FastActivationModule"):
                setattr(parent, child_name, NATIVE[name]())
    return model


# ---------------------------------------------------------------- minimal loops
def minimal_classifier(model: nn.Module, data: Dataset, cfg: dict[str, Any], seed: int) -> None:
    """Adam, seeded batch order, test-set evaluation once per epoch; nothing else."""
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
    gen = torch.Generator().manual_seed(seed)
    x, y, n, b = data.x_train, data.y_train, len(data.y_train), int(cfg["batch"])
    for _ in range(int(cfg["epochs"])):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, b):
            idx = perm[i : i + b]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            loss_sum, correct = 0.0, 0
            for i in range(0, len(data.y_test), 4096):
                logits = model(data.x_test[i : i + 4096])
                yb = data.y_test[i : i + 4096]
                loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
                correct += int((logits.argmax(1) == yb).sum())


def minimal_lm(model: nn.Module, text: TextData, cfg: dict[str, Any], seed: int) -> None:
    """AdamW, seeded windows, validation loss every ``eval_every`` steps; nothing else."""
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg["lr"]))
    gen = torch.Generator().manual_seed(seed)
    block, batch = int(cfg["block"]), int(cfg["batch"])
    high = len(text.train) - block - 1
    steps, every = int(cfg["steps"]), int(cfg["eval_every"])
    for step in range(1, steps + 1):
        model.train()
        xb, yb = _windows(text.train, torch.randint(0, high, (batch,), generator=gen), block)
        loss = F.cross_entropy(model(xb).flatten(0, 1), yb.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            model.eval()
            g = torch.Generator().manual_seed(12345)
            starts = torch.randint(0, len(text.val) - block - 1,
                                   (int(cfg["eval_batches"]), batch), generator=g)
            with torch.no_grad():
                total = 0.0
                for row in starts:
                    xv, yv = _windows(text.val, row, block)
                    total += float(F.cross_entropy(model(xv).flatten(0, 1), yv.flatten()))


def minimal_stacked_classifier(models: list[nn.Module], data: Dataset, cfg: dict[str, Any],
                               seeds: list[int]) -> tuple[list[float], list[float]]:
    """The MLPs ``models`` (ReLU) as one stack written by hand: weights ``(S, in, out)``,
    ``baddbmm``, ``F.relu`` in place, the cross-entropy as ``logsumexp - gather`` (ATen's
    log-softmax is slow over 10 classes), fused Adam, each seed's own ``randperm``; the
    test set once per epoch, per seed (one host sync). What stacking costs with nothing
    else around it.
    Returns the last epoch's test loss and accuracy per seed."""
    weights, biases = [], []
    for k in range(len([m for m in models[0].modules() if isinstance(m, nn.Linear)])):
        layers = [[m for m in model.modules() if isinstance(m, nn.Linear)][k] for model in models]
        weights.append(nn.Parameter(torch.stack([lin.weight.detach().t() for lin in layers])))
        biases.append(nn.Parameter(torch.stack([lin.bias.detach() for lin in layers])))
    opt = torch.optim.Adam([*weights, *biases], lr=float(cfg["lr"]), fused=True)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    x, y, n, b = data.x_train.flatten(1), data.y_train, len(data.y_train), int(cfg["batch"])
    s = len(seeds)

    def forward(h: torch.Tensor, shared: bool = False) -> torch.Tensor:
        for k, (w, bias) in enumerate(zip(weights, biases, strict=True)):
            if shared and k == 0:
                h = h.expand(s, *h.shape)  # (N, in) -> (S, N, in), no copy
            h = torch.baddbmm(bias.unsqueeze(1), h, w)
            if k < len(weights) - 1:
                h = F.relu(h, inplace=True)  # baddbmm's backward does not need h
        return h

    test: tuple[list[float], list[float]] = ([], [])
    for _ in range(int(cfg["epochs"])):
        perm = torch.stack([torch.randperm(n, generator=g) for g in gens])
        for i in range(0, n, b):
            idx = perm[:, i : i + b]
            rows = idx.flatten()
            logits = forward(x.index_select(0, rows).view(s, -1, x.shape[1]))
            loss = logits.logsumexp(-1) - logits.gather(-1, y[rows].view(s, -1, 1)).squeeze(-1)
            opt.zero_grad(set_to_none=True)
            loss.mean(dim=1).sum().backward()
            opt.step()
        with torch.no_grad():
            loss_sum, correct = torch.zeros(s), torch.zeros(s)
            xt, yt, chunk = data.x_test.flatten(1), data.y_test, max(1, 4096 // s)
            for i in range(0, len(yt), chunk):
                logits = forward(xt[i : i + chunk], shared=True)
                yb = yt[i : i + chunk]
                picked = logits.gather(-1, yb.expand(s, -1).unsqueeze(-1)).squeeze(-1)
                loss_sum += (logits.logsumexp(-1) - picked).sum(dim=1)
                correct += (logits.argmax(-1) == yb).sum(dim=1)
            test = ((loss_sum / len(yt)).tolist(), (correct / len(yt)).tolist())
    return test


# ---------------------------------------------------------------- one task
class Case:
    """One task of the benchmark: its spec, data, and the four timed variants."""

    def __init__(self, task_id: str, full: bool, seeds: int) -> None:
        name, overrides = parse_task_id(task_id)
        self.task_id, self.task = task_id, TASKS[name]
        self.act = ACTIVATION[name]
        config = {**self.task.defaults, **overrides}
        if "data_dir" in config and config.get("dataset") == "fashion_mnist":
            config["data_dir"] = FASHION
        if not full:
            config.update(SHORT[task_id])
        self.device = torch.device("cpu")
        self.specs = [RunSpec(name, self.act, s, config) for s in range(seeds)]
        self.spec = self.specs[0]
        if name == "char_lm":
            self.cfg = dict(config)
            self.text = pydoc_text()
            self.data = None
        else:
            self.cfg, self.data = (classify._mlp_setup if name == "mlp" else classify._cnn_setup)(
                self.spec, self.device
            )
        self.name = name

    def setting(self) -> str:
        if self.name == "char_lm":
            c = self.cfg
            return f"{c['steps']} steps, eval every {c['eval_every']}"
        d = self.data
        return f"{self.cfg['epochs']} epoch(s), {len(d.y_train)} train / {len(d.y_test)} test"

    def model(self, native: bool) -> nn.Module:
        if self.name == "char_lm":
            c = self.cfg
            seed_everything(self.spec.seed)
            m: nn.Module = CharTransformer(
                self.text.vocab_size, block_size=int(c["block"]), d_model=int(c["d_model"]),
                n_layer=int(c["n_layer"]), n_head=int(c["n_head"]), d_ff=int(c["d_ff"]),
                activation=self.act,
            )
        else:
            build = classify._mlp_model if self.name == "mlp" else classify._cnn_model
            m = build(self.spec, self.cfg, self.data)
        return _native_act(m, self.act) if native else m

    def minimal(self, native: bool = True) -> None:
        model = self.model(native)
        if self.name == "char_lm":
            minimal_lm(model, self.text, self.cfg, self.spec.seed)
        else:
            minimal_classifier(model, self.data, self.cfg, self.spec.seed)

    def loop(self) -> None:
        """actlab's loop, every record on, with the native model."""
        model = self.model(native=True)
        c = self.cfg
        if self.name == "char_lm":
            fit_lm(model, self.text, steps=int(c["steps"]), lr=float(c["lr"]),
                   batch_size=int(c["batch"]), block_size=int(c["block"]),
                   eval_every=int(c["eval_every"]), eval_batches=int(c["eval_batches"]),
                   seed=self.spec.seed)
        else:
            fit_classifier(model, self.data, **classify._train_options(c), seed=self.spec.seed)

    def run(self) -> None:
        result = self.task.run(self.spec, self.device)
        assert result.status == "ok", result.error

    def one_by_one(self) -> None:
        for spec in self.specs:
            assert self.task.run(spec, self.device).status == "ok"

    def minimal_stacked(self) -> None:
        """The seeds as one stack written by hand (MLP tasks only)."""
        models = [_native_act(classify._mlp_model(spec, self.cfg, self.data), self.act)
                  for spec in self.specs]
        minimal_stacked_classifier(models, self.data, self.cfg, [sp.seed for sp in self.specs])

    def stacked(self) -> None:
        assert self.task.run_group is not None
        results = self.task.run_group(self.specs, self.device)
        assert all(r.status == "ok" for r in results)


def _best(fns: dict[str, Callable[[], None]], rounds: int) -> dict[str, tuple[float, float]]:
    """Per variant: the best wall time and the best CPU time (seconds) over ``rounds``."""
    wall = {k: float("inf") for k in fns}
    cpu = dict(wall)
    for _ in range(rounds):  # interleaved: every variant sees the same machine load
        for k, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall[k] = min(wall[k], time.perf_counter() - w)
            cpu[k] = min(cpu[k], time.process_time() - c)
    return {k: (wall[k], cpu[k]) for k in fns}


def main() -> None:
    global FASHION, _SUBSET_ON
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TASK_IDS), choices=TASK_IDS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seeds", type=int, default=8, help="seeds of the stacked table")
    p.add_argument("--stack-rounds", type=int, default=1)
    p.add_argument("--full", action="store_true", help="the tasks' own epochs/steps and data")
    p.add_argument("--fashion-dir", default=FASHION)
    p.add_argument("--no-stack-table", action="store_true")
    a = p.parse_args()
    FASHION, _SUBSET_ON = a.fashion_dir, not a.full
    torch.set_num_threads(1)
    kept = keep_freed_memory()  # as in a study's worker processes
    print(f"torch {torch.__version__}, 1 thread, cpu; best of {a.rounds} interleaved rounds; "
          "wall time, and in brackets CPU time (steadier on a shared machine); freed memory "
          f"{'kept' if kept else 'returned to the OS'} as in a study's workers\n")
    print("| task | activation | setting | minimal (s) | actlab run (s) | run / minimal "
          "| loop / minimal | module / native |")
    print("|---|---|---|---|---|---|---|---|")
    cases = []
    for task_id in a.tasks:
        case = Case(task_id, a.full, a.seeds)
        cases.append(case)
        case.run()  # warm-up: data caches, lazy initialisation
        t = _best({"minimal": case.minimal, "run": case.run, "loop": case.loop,
                   "module": lambda c=case: c.minimal(native=False)}, a.rounds)

        def ratio(k: str, t: dict[str, tuple[float, float]] = t) -> str:
            return f"{t[k][0] / t['minimal'][0]:.2f} ({t[k][1] / t['minimal'][1]:.2f})"

        print(f"| {task_id} | {case.act} | {case.setting()} | {t['minimal'][0]:.2f} "
              f"({t['minimal'][1]:.2f}) | {t['run'][0]:.2f} ({t['run'][1]:.2f}) | "
              f"{ratio('run')} | {ratio('loop')} | {ratio('module')} |", flush=True)
    if a.no_stack_table:
        return
    print(f"\n{a.seeds} seeds: one by one (Task.run each) vs stacked (Task.run_group), "
          f"best of {a.stack_rounds}; wall time (CPU time)\n")
    print("| task | seeds | one by one (s) | stacked (s) | throughput gain | hand-written "
          "stack (s) | its gain | stacked / hand-written | a study stacks |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        fns = {"one": case.one_by_one, "stacked": case.stacked}
        if case.name == "mlp":
            fns["hand"] = case.minimal_stacked
        t = _best(fns, a.stack_rounds)
        (w1, c1), (w2, c2) = t["one"], t["stacked"]
        hand = "- | - | -"
        if "hand" in t:
            w3, c3 = t["hand"]
            hand = (f"{w3:.2f} ({c3:.2f}) | {w1 / w3:.2f}x ({c1 / c3:.2f}x) | "
                    f"{w2 / w3:.2f} ({c2 / c3:.2f})")
        planned = case.task.stack_size(case.spec, MAX_STACK)
        print(f"| {case.task_id} | {a.seeds} | {w1:.2f} ({c1:.2f}) | {w2:.2f} ({c2:.2f}) | "
              f"{w1 / w2:.2f}x ({c1 / c2:.2f}x) | {hand} | {planned} |", flush=True)


if __name__ == "__main__":
    main()
