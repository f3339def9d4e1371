"""Timing helpers: interleaved ``torch.utils.benchmark`` measurements, robust to noise.

Every benchmark in :mod:`actlab.bench` times its candidates (the clone reference, the
fast path, the native op, ...) in one process, on the same tensors, after warm-up, and
interleaves them in rounds: each round takes the median of
``Timer.blocked_autorange`` for every candidate, and the result is each candidate's
best round. Other processes on the machine only ever make a round slower, so the best
round is the least disturbed one, and the ratios between candidates come from the same
moments. ``Timer`` synchronises CUDA; it runs with the process's thread count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import torch
from torch.utils import benchmark

from actlab.experiments.executors import keep_freed_memory, release_freed_memory

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def measure(
    fns: Mapping[str, Callable[[], object]],
    *,
    min_run_time: float = 0.2,
    rounds: int = 3,
    warmup: int = 2,
    clock: str = "wall",
) -> dict[str, float]:
    """Seconds per call of each function: the best of ``rounds`` interleaved medians.

    Args:
        fns: name -> zero-argument callable.
        min_run_time: seconds ``blocked_autorange`` spends on each candidate per round.
        rounds: interleaved rounds (1 for a quick look).
        warmup: untimed calls of each candidate first (compilation, allocation).
        clock: ``"wall"`` (default; what a user waits) or ``"cpu"``: the process's CPU
            time, which leaves out the time other processes hold the cores; use it with
            one thread on a busy machine (with several threads it adds their times up).

    Example:
        >>> x = torch.randn(1 << 16)
        >>> t = measure({"clone": x.clone, "relu": lambda: torch.relu(x)}, min_run_time=0.01)
        >>> sorted(t)
        ['clone', 'relu']
    """
    if rounds < 1 or min_run_time <= 0:
        raise ValueError(f"rounds must be >= 1 and min_run_time > 0, got {rounds}, {min_run_time}")
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}; accepted: {', '.join(CLOCKS)}")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = {k: float("inf") for k in fns}
    threads = torch.get_num_threads()
    for _ in range(rounds):
        for name, fn in fns.items():
            timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads,
                                    timer=CLOCKS[clock])
            best[name] = min(best[name], timer.blocked_autorange(min_run_time=min_run_time).median)
    return best


def reuse_memory() -> bool:
    """Ask glibc to keep freed memory for reuse (Linux only); True if it was applied.

    By default glibc returns every allocation above 32 MiB to the kernel when it is freed,
    so each new large tensor is mapped afresh and its pages are faulted in and zeroed on
    first write. For a 2^24-element float32 tensor that page-fault work can cost more than
    the copy itself, and it is included in ``x.clone()`` and in every out-of-place op.
    Raising the mmap and trim thresholds makes the allocator reuse freed blocks, the way
    PyTorch's CUDA caching allocator does, so the timings measure memory bandwidth and
    arithmetic. It changes this process's allocator for good; call it only in benchmark
    processes.
    """
    return keep_freed_memory(mmap_threshold=1 << 30, trim_threshold=1 << 30)


def release_memory() -> bool:
    """Hand the freed memory this process keeps back to the OS (glibc ``malloc_trim``).

    With :func:`reuse_memory` nothing freed is ever returned, and a benchmark that goes
    through many activations, each with its own tensor sizes and saved intermediates,
    fragments the heap until the process holds all of the machine's memory (a full
    ``--reuse-memory`` kernel run was killed for memory after 33 activations).
    :func:`~actlab.bench.kernels.bench_activation` calls this before each activation:
    memory is reused within an activation's measurements and returned between them.
    True if it applied (Linux with glibc).
    """
    return release_freed_memory()


def sync(device: torch.device) -> None:
    """Wait for queued work on ``device`` (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
