"""Print the training-loop table: the article's DataLoader loop against actlab's loop.

Usage (from the repository root)::

    .venv/bin/python benchmarks/training.py                # 1 epoch of 60000 images
    .venv/bin/python benchmarks/training.py --epochs 5 --threads 1

Same synthetic MNIST-shaped data (60000 x 1 x 28 x 28), same 784-256-128-10 ReLU MLP
(identical initial weights), Adam (lr 1e-3), batch 128, shuffled. Seconds per epoch
(median over epochs) of the article's loop (``DataLoader`` over a ``TensorDataset`` of
per-sample tensors) and of ``actlab.experiments.train.fit_classifier`` (tensors, batches
sliced from a shuffled index), the speed-up, the DataLoader's own time per epoch, and
the optimisation steps alone on one fixed batch (the least any loop can take).
"""

from __future__ import annotations

import argparse

import torch

from actlab.bench.training import bench_training


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--n-train", type=int, default=60000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    r = bench_training(epochs=a.epochs, n_train=a.n_train, batch_size=a.batch_size,
                       device=a.device)
    print(f"torch {torch.__version__}, {r.threads} threads, device {r.device}, "
          f"{r.epochs} epoch(s) of {r.n_train} images, batch {r.batch_size}\n")
    print("| loop | s / epoch |")
    print("|---|---|")
    print(f"| article (DataLoader over per-sample tensors) | {r.article_epoch_s:.2f} |")
    print(f"| actlab fit_classifier (tensors, sliced batches) | {r.actlab_epoch_s:.2f} |")
    print(f"| DataLoader alone (no model) | {r.loader_epoch_s:.2f} |")
    print(f"| optimisation steps alone (one fixed batch; the floor) | {r.model_epoch_s:.2f} |")
    print(f"\nspeed-up: {r.speedup:.2f}x (at most {r.max_speedup:.2f}x for any loop with this "
          "model, batch size and optimiser)")


if __name__ == "__main__":
    main()
