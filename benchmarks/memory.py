"""Print the training-memory table: activations in a real model, four ways.

Usage (from the repository root)::

    .venv/bin/python benchmarks/memory.py                   # cnn (batch 512), char_lm (64)
    .venv/bin/python benchmarks/memory.py --models cnn --batch 256 --names relu mish

Mish users report 11.1 GB against 4.0 GB for LeakyReLU on the same YOLOv3 (Mish issue
#18). This measures the peak memory of one training step (forward, loss, backward, Adam)
of the article's CNN on Fashion-MNIST and of the char_lm transformer, with each
activation as ``act.module()`` (``actlab``), as ``act.module()`` with the step inside
``actlab.low_memory()`` (``low_memory``: the layers after the activation keep its input,
not its output, which is recomputed in the backward), as actlab's memory-efficient custom
Function (``function``), as the formula written by hand with torch ops (``hand``), and as
PyTorch's module (``torch.nn``), against ReLU. ``--time-steps N`` also times N steps of
each (the fastest), printed as a ratio to ``act.module()``'s step on the same model.

Method (``actlab.bench.memory``): PyTorch keeps no allocator statistics on the CPU, so
the step's allocations and frees are read from the profiler's memory events
(``torch.profiler.profile(profile_memory=True)``); the largest running sum is the step's
peak, added to the bytes held before it (parameters, Adam's state, the batch). On CUDA,
``torch.cuda.max_memory_allocated``. ``saved``: the bytes the forward keeps for backward
(distinct storages, ``saved_tensors_hooks``), the part the activation decides.
"""

from __future__ import annotations

import argparse
import json

import torch

from actlab.bench.memory import DEFAULT_BATCH, IMPLS, bench_memory, markdown

DEFAULT = ["relu", "leaky_relu", "mish", "gelu", "silu", "swiglu"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--names", nargs="*", default=DEFAULT)
    p.add_argument("--models", nargs="*", default=["cnn", "char_lm"])
    p.add_argument("--impls", nargs="*", default=list(IMPLS))
    p.add_argument("--batch", type=int, default=None, help="one batch size for every model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--time-steps", type=int, default=5,
                   help="time this many steps of each (0: memory only)")
    p.add_argument("--json", default=None, help="also write every row to this file")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    batch = {m: a.batch for m in a.models} if a.batch else None
    sizes = {**DEFAULT_BATCH, **(batch or {})}
    print(f"torch {torch.__version__}, device {a.device}; batch "
          + ", ".join(f"{m} {sizes[m]}" for m in a.models), flush=True)
    rows = bench_memory(a.names, models=a.models, impls=a.impls, batch=batch, device=a.device,
                        progress=lambda r: print(f"  {r.model} {r.activation} {r.impl}",
                                                 flush=True),
                        time_steps=a.time_steps)
    for data in dict.fromkeys(r.data for r in rows):
        print(f"data: {data}")
    print()
    print(markdown(rows))
    base = {r.model: r.peak for r in rows if r.activation == "relu" and r.impl == "actlab"}
    for impl, label in (("actlab", "act.module()"),
                        ("low_memory", "act.module() inside actlab.low_memory()")):
        over = [f"{r.model}/{r.activation} ({r.peak / base[r.model]:.2f})" for r in rows
                if r.impl == impl and r.model in base and r.peak > 1.05 * base[r.model]]
        if any(r.impl == impl for r in rows):
            print(f"\n{label} above 1.05x ReLU's peak: {', '.join(over) or 'none'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump([r.as_dict() for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
