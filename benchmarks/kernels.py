"""Print the kernel tables: every activation against x.clone() and native PyTorch.

Usage (from the repository root)::

    .venv/bin/python benchmarks/kernels.py                      # all, 2^24 and 2^26
    .venv/bin/python benchmarks/kernels.py --sizes 2**24 --names mish gelu tanh
    .venv/bin/python benchmarks/kernels.py --quick --sizes 2**20   # a quick look
    .venv/bin/python benchmarks/kernels.py --reuse-memory          # no page-fault cost

Columns (ratios; lower is faster): fast forward / t_clone, fast / native op, fast /
torch.compile of the formula written by hand (``actlab.bench.hand``: what a user does
after reading the article), fast forward+backward / floor (2.5 clones; 2.0 for gated),
the same against native and the compiled hand formula, ``act.module()``'s
forward+backward / floor, the composite (unfused) forward, and the bytes saved for
backward per element (fast path and composite autograd path). The article's
hand-written GELU runs as a formula activation (``article_gelu``). Then the FFN block
(fused gate against the unfused composite) and a summary of the targets: the fast path
at most 1.05x the better of the native op and the compiled hand formula, forward and
forward+backward.

On a shared machine use ``--clock cpu`` (with ``OMP_WAIT_POLICY=PASSIVE``, so that idle
OpenMP threads do not spin on the clock).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import actlab
from actlab.bench.ffn import bench_ffn
from actlab.bench.kernels import bench_activation, markdown_table, parse_size, targets
from actlab.bench.timing import reuse_memory

ARTICLE_GELU = "0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--names", nargs="*", help="activations (default: all, plus article_gelu)")
    p.add_argument("--sizes", nargs="*", default=["2**24", "2**26"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="1 round of 0.05 s per candidate")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-time", type=float, default=0.1)
    p.add_argument("--reuse-memory", action="store_true")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="cpu: process CPU time (one thread on a busy machine)")
    p.add_argument("--no-ffn", action="store_true")
    p.add_argument("--precise", action="store_true", help="time the precise fast path")
    p.add_argument("--json", default=None, help="also write every row to this file")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    rounds, min_time = (1, 0.05) if a.quick else (a.rounds, a.min_time)
    reused = reuse_memory() if a.reuse_memory else False
    acts = [actlab.get(n) for n in (a.names or actlab.names())]
    if not a.names:
        acts.append(actlab.formula(ARTICLE_GELU, name="article_gelu"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {a.device}, "
          f"{rounds} round(s) x {min_time} s, {a.clock} clock, "
          f"memory reuse {'on' if reused else 'off'}")
    out: dict = {"kernels": [], "ffn": []}
    for size_text in a.sizes:
        size = parse_size(size_text)
        start = time.perf_counter()
        rows = []
        for act in acts:
            rows.append(bench_activation(act, size=size, device=a.device, precise=a.precise,
                                         min_run_time=min_time, rounds=rounds, clock=a.clock))
            print(f"  {rows[-1].name}: {rows[-1].seconds:.1f} s", flush=True)
        total = time.perf_counter() - start
        t_clone = min(r.t_clone for r in rows)
        print(f"\n### float32, {size} elements (2^{size.bit_length() - 1}), "
              f"t_clone = {1e3 * t_clone:.2f} ms, run took {total:.0f} s\n")
        print(markdown_table(rows))
        s = targets(rows)
        print(f"\nforward <= 1.25 clones: {len(s.fwd_within)}/{len(rows)}; over: "
              f"{', '.join(s.fwd_over) or 'none'}")
        print(f"forward+backward <= 1.25 floors: {len(s.fb_within)}/{len(rows)}; over: "
              f"{', '.join(s.fb_over) or 'none'}")
        print(f"slower than native (> 1.05, forward or f+b): "
              f"{', '.join(s.slower_than_native) or 'none'}")
        print(f"slower than the better of native and compiled hand formula (> 1.05; fwd/f+b): "
              f"{len(s.slower_than_best)} of {len(s.with_peer)}: "
              f"{', '.join(s.slower_than_best) or 'none'}")
        aa = sorted(r.aa for r in rows)
        print(f"A/A (each fast forward timed twice, second over first): {aa[0]:.2f} to "
              f"{aa[-1]:.2f}, median {aa[len(aa) // 2]:.2f}: ratios within that of 1 are noise")
        out["kernels"] += [r.as_dict() for r in rows]
    if not a.no_ffn:
        ffn = bench_ffn(device=a.device, min_run_time=min_time, rounds=rounds, clock=a.clock)
        print("\n### FFN block 512 -> 2048 -> 512 (gated: 2 x 1365), batch 8 x 128, ms\n")
        print("| activation | fwd fused | fwd composite | fwd native | speed-up | "
              "f+b fused | f+b composite | f+b native | speed-up |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in ffn:
            cells = [f"{1e3 * v:.2f}" if v == v else "-" for v in
                     (r.fwd_fast, r.fwd_composite, r.fwd_native)]
            cells += [f"{r.fwd_speedup:.2f}x"]
            cells += [f"{1e3 * v:.2f}" if v == v else "-" for v in
                      (r.fb_fast, r.fb_composite, r.fb_native)]
            cells += [f"{r.fb_speedup:.2f}x"]
            print(f"| {r.name} | " + " | ".join(cells) + " |")
        out["ffn"] = [r.as_dict() for r in ffn]
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
