"""How much stacking seeds can gain at most: the matmul floor of one mlp/mnist1d step.

Stacking ``S`` seeds removes per-step overheads (Python, dispatch, small kernels), never
the arithmetic: a stacked step costs at least its batched matmuls. This script times, in
one process and one thread, for the mlp/mnist1d MLP (40-256-128-10, ReLU, batch 128):

* ``step``: one whole training step of one seed (forward, cross-entropy, backward, Adam),
  as a minimal hand-written loop runs it (the floor of a one-by-one run, see
  ``benchmarks/engine.py``);
* ``matmuls, 1 seed``: only that step's matrix products (3 forward ``addmm``, 3 weight
  gradients, 2 input gradients), one seed;
* ``matmuls, S seeds``: the same products as ``S``-seed batched ``baddbmm``/``bmm`` (what
  the stacked model runs), per seed;
* ``whole step, k seeds stacked``: a whole training step of a stack written by hand
  (``baddbmm``, ``F.relu`` in place, cross-entropy as ``logsumexp - gather``, fused
  Adam: as ``benchmarks/engine.py``'s hand-written stack), per seed, for k = 1, 2, 4, ... up
  to ``S``: what a stack costs beyond its matmuls (the activations, their backward, the
  loss and Adam on tensors that grow with k).

The ceiling of stacking's throughput gain is ``step / (matmuls per seed, stacked)``: a
stacked step with no cost at all besides its matmuls. ``python benchmarks/engine.py``
measures what stacking reaches.

Usage (from the repository root)::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/stack_floor.py --seeds 8
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from actlab.bench.timing import measure

SIZES = (40, 256, 128, 10)
BATCH = 128


def _flops(sizes: tuple[int, ...], batch: int) -> float:
    """Multiply-adds x 2 of one step's matmuls: forward, weight and input gradients."""
    pairs = list(itertools.pairwise(sizes))
    forward = sum(2 * batch * i * o for i, o in pairs)
    weight_grads = forward
    input_grads = sum(2 * batch * i * o for i, o in pairs[1:])  # none for the input
    return float(forward + weight_grads + input_grads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=8, help="seeds of the stacked matmuls")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-time", type=float, default=0.3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    if a.seeds < 1 or a.rounds < 1 or a.threads < 1:
        p.error("--seeds, --rounds and --threads must be at least 1")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    s, n = a.seeds, BATCH
    pairs = list(itertools.pairwise(SIZES))

    # one seed's whole step, as a minimal loop runs it
    layers: list[nn.Module] = []
    for k, (i, o) in enumerate(pairs):
        layers.append(nn.Linear(i, o))
        if k < len(pairs) - 1:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(n, SIZES[0]), torch.randint(0, SIZES[-1], (n,))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # the step's matmuls alone: one seed, then S seeds batched
    acts1 = [torch.randn(n, i) for i, _ in pairs]
    grads1 = [torch.randn(n, o) for _, o in pairs]
    w1 = [torch.randn(o, i) for i, o in pairs]
    b1 = [torch.randn(o) for _, o in pairs]
    acts = [torch.randn(s, n, i) for i, _ in pairs]
    grads = [torch.randn(s, n, o) for _, o in pairs]
    w = [torch.randn(s, i, o) for i, o in pairs]
    b = [torch.randn(s, 1, o) for _, o in pairs]

    def matmuls_one() -> None:
        for k in range(len(pairs)):
            torch.addmm(b1[k], acts1[k], w1[k].t())
            torch.mm(grads1[k].t(), acts1[k])
            if k:
                torch.mm(grads1[k], w1[k])

    def matmuls_stacked() -> None:
        for k in range(len(pairs)):
            torch.baddbmm(b[k], acts[k], w[k])
            torch.bmm(acts[k].transpose(1, 2), grads[k])
            if k:
                torch.bmm(grads[k], w[k].transpose(1, 2))

    def stacked_step(k: int) -> Callable[[], None]:
        ws = [nn.Parameter(torch.randn(k, i, o) / i**0.5) for i, o in pairs]
        bs = [nn.Parameter(torch.zeros(k, 1, o)) for _, o in pairs]
        sopt = torch.optim.Adam([*ws, *bs], lr=1e-3, fused=True)
        xs, ys = torch.randn(k, n, SIZES[0]), torch.randint(0, SIZES[-1], (k * n,))

        def run() -> None:
            h = xs
            for j, (wj, bj) in enumerate(zip(ws, bs, strict=True)):
                h = torch.baddbmm(bj, h, wj)
                if j < len(pairs) - 1:
                    h = F.relu(h, inplace=True)  # baddbmm's backward does not read h
            # ATen's log-softmax is slow over 10 classes: logsumexp - gather
            loss = h.logsumexp(-1) - h.gather(-1, ys.view(k, n, 1)).squeeze(-1)
            sopt.zero_grad(set_to_none=True)
            loss.mean(dim=1).sum().backward()
            sopt.step()

        return run

    counts = sorted({*(2**j for j in range(s.bit_length()) if 2**j < s), s})
    fns = {"step": step, "one": matmuls_one, "stacked": matmuls_stacked}
    fns.update({f"stack{k}": stacked_step(k) for k in counts})
    t = measure(fns, min_run_time=a.min_time, rounds=a.rounds, clock="cpu")
    flops = _flops(SIZES, n)
    one, stacked = t["one"], t["stacked"] / s
    print(f"torch {torch.__version__}, {a.threads} thread(s); MLP {'-'.join(map(str, SIZES))}, "
          f"batch {n}; {flops / 1e6:.1f} MFLOP of matmuls per seed-step; CPU time, best of "
          f"{a.rounds} rounds\n")
    print("| per seed-step | ms | GFLOP/s |")
    print("|---|---|---|")
    print(f"| whole step, one seed (minimal loop) | {t['step'] * 1e3:.3f} | - |")
    print(f"| matmuls only, one seed | {one * 1e3:.3f} | {flops / one / 1e9:.1f} |")
    print(f"| matmuls only, {s} seeds batched, per seed | {stacked * 1e3:.3f} | "
          f"{flops / stacked / 1e9:.1f} |")
    for k in counts:
        per = t[f"stack{k}"] / k
        print(f"| whole step, {k} seed{'s' if k > 1 else ''} stacked (by hand), per seed | "
              f"{per * 1e3:.3f} | - |")
    best = min(counts, key=lambda k: t[f"stack{k}"] / k)
    print(f"\nceiling of stacking's gain: whole step / stacked matmuls = "
          f"{t['step'] / stacked:.2f}x; a whole stacked step reaches "
          f"{t['step'] / (t[f'stack{best}'] / best):.2f}x (with {best} seeds)")


if __name__ == "__main__":
    main()
