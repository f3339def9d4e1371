"""Print the training-step table: actlab's activation modules against torch.nn's.

Usage (from the repository root)::

    .venv/bin/python benchmarks/modules.py                    # 1 thread, mlp and cnn
    .venv/bin/python benchmarks/modules.py --threads 2 --names relu gelu mish
    .venv/bin/python benchmarks/modules.py --quick

One optimisation step (forward, cross-entropy, backward, Adam) of the mlp/mnist1d MLP
(40-256-128-10) and the article's CNN (1x28x28, conv 32, conv 64, fc 128), batch 128,
with the activation layers as torch.nn's module, as ``act.module()`` and as actlab's
memory-efficient custom autograd Function; milliseconds per step (best of interleaved
rounds) and the ratios to torch.nn's module. Target: ``act.module()`` at most 1.05x.
"""

from __future__ import annotations

import argparse
import json

import torch

from actlab.bench.modules import bench_modules, markdown

DEFAULT = ["relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "mish", "sigmoid", "tanh",
           "softplus", "hardswish", "swiglu", "serf"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--names", nargs="*", default=DEFAULT)
    p.add_argument("--models", nargs="*", default=["mlp", "cnn"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="cpu: process CPU time (one thread on a busy machine)")
    p.add_argument("--quick", action="store_true", help="1 round of 0.1 s per candidate")
    p.add_argument("--json", default=None, help="also write every row to this file")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rounds, min_time = (1, 0.1) if a.quick else (a.rounds, a.min_time)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {a.device}, "
          f"batch {a.batch}, {rounds} round(s) x {min_time} s per candidate, {a.clock} clock\n",
          flush=True)
    rows = bench_modules(a.names, models=a.models, batch=a.batch, device=a.device,
                         min_run_time=min_time, rounds=rounds, clock=a.clock,
                         progress=lambda r: print(f"  {r.model} {r.activation}", flush=True))
    print()
    print(markdown(rows))
    over = [f"{r.model}/{r.activation} ({r.actlab_vs_native:.2f})" for r in rows
            if r.actlab_vs_native > 1.05]
    print(f"\nact.module() above 1.05x torch.nn's: {', '.join(over) or 'none'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump([r.as_dict() for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
