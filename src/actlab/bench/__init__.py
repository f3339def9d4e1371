"""Kernel and model timing against native PyTorch and the copy roofline.

* :mod:`actlab.bench.kernels`: every activation against ``x.clone()`` and the native op
  (forward, forward + backward, bytes saved for backward);
* :mod:`actlab.bench.ffn`: the transformer FFN block, fused activation against the
  composite (unfused) one;
* :mod:`actlab.bench.training`: the article's DataLoader training loop against actlab's;
* :mod:`actlab.bench.memory`: bytes saved for backward;
* :mod:`actlab.bench.timing`: interleaved, best-of-rounds ``torch.utils.benchmark`` timing.
"""

from actlab.bench.ffn import FFNRow, bench_ffn
from actlab.bench.kernels import KernelRow, bench_activation, bench_kernels, markdown_table
from actlab.bench.memory import saved_bytes, saved_bytes_per_element
from actlab.bench.training import TrainingBench, bench_training

__all__ = [
    "FFNRow",
    "KernelRow",
    "TrainingBench",
    "bench_activation",
    "bench_ffn",
    "bench_kernels",
    "bench_training",
    "markdown_table",
    "saved_bytes",
    "saved_bytes_per_element",
]
