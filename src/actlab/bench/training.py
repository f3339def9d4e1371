"""Training-loop benchmark: the article's DataLoader loop against actlab's tensor loop.

The seed article trains ``784-256-128-10`` ReLU MLPs on MNIST with a ``DataLoader``
(batch 128, shuffled) over per-sample tensors, and Adam. :func:`bench_training` runs
that loop and :func:`actlab.experiments.train.fit_classifier` (data held as tensors,
batches sliced from a shuffled index, no per-sample Python work) on the same
MNIST-shaped data, with the same model (identically initialised) and optimiser, and
reports seconds per epoch of both.

The data is synthetic, MNIST-shaped and offline: 60000 training images of 28 x 28
values ``k / 255`` with random labels (the loop's cost does not depend on the pixels).

Example:
    >>> r = bench_training(epochs=1, n_train=2048)
    >>> r.speedup > 0
    True
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from actlab.experiments.data.core import Dataset
from actlab.experiments.train import fit_classifier


def mnist_shaped(n_train: int = 60000, n_test: int = 1000, seed: int = 0) -> Dataset:
    """Synthetic MNIST-shaped data: ``(N, 1, 28, 28)`` floats ``k / 255``, labels 0..9."""
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1, got {n_train} and {n_test}")
    g = torch.Generator().manual_seed(seed)

    def images(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8).float() / 255

    def labels(n: int) -> torch.Tensor:
        return torch.randint(0, 10, (n,), generator=g)

    return Dataset(
        "mnist_shaped", images(n_train), labels(n_train), images(n_test), labels(n_test), 10,
        info={"source": "synthetic uniform pixels, random labels"},
    )


def article_mlp(activation: nn.Module | None = None) -> nn.Sequential:
    """The article's model: ``Flatten, Linear(784, 256), act, Linear(256, 128), act,
    Linear(128, 10)`` (the same activation module object twice, as in the article)."""
    act = activation if activation is not None else nn.ReLU()
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 256), act, nn.Linear(256, 128), act, nn.Linear(128, 10)
    )


def article_loop(
    model: nn.Module, data: Dataset, epochs: int, batch_size: int = 128
) -> list[float]:
    """The article's loop (a ``DataLoader`` over per-sample tensors); seconds per epoch.

    As in the article it reads the loss every 100 batches (``loss.item()``; the article
    prints it).
    """
    dataset = TensorDataset(data.x_train, data.y_train)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters())
    criterion = nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for batch_idx, (x, target) in enumerate(loader):
            optimizer.zero_grad()
            loss = criterion(model(x), target)
            loss.backward()
            optimizer.step()
            if batch_idx % 100 == 0:
                loss.item()
        times.append(time.perf_counter() - t0)
    return times


def loader_only(data: Dataset, batch_size: int = 128) -> float:
    """Seconds for one epoch of the article's ``DataLoader`` alone (no model)."""
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=batch_size,
                        shuffle=True)
    t0 = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - t0


def model_only(model: nn.Module, data: Dataset, batch_size: int = 128) -> float:
    """Seconds for one epoch's optimisation steps on one fixed batch (no data handling).

    The least any loop can take with this model, batch size and optimiser: the bound on
    the speed-up that a better data pipeline can give.
    """
    n = len(data.y_train)
    x, y = data.x_train[:batch_size], data.y_train[:batch_size]
    optimizer = torch.optim.Adam(model.parameters())
    criterion = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for _ in range(0, n, batch_size):
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    return time.perf_counter() - t0


@dataclass
class TrainingBench:
    """Seconds per epoch of both loops (medians over epochs) and the speed-up.

    Attributes:
        article_epoch_s: the article's DataLoader loop.
        actlab_epoch_s: :func:`fit_classifier` (tensors, sliced batches).
        loader_epoch_s: the DataLoader alone, without a model (its share of the loop).
        model_epoch_s: the optimisation steps alone, on one fixed batch (the floor).
        speedup: ``article_epoch_s / actlab_epoch_s``.
        max_speedup: ``article_epoch_s / model_epoch_s``, the most any loop could gain.
        epochs, n_train, batch_size, threads, device: the setting.
        article_epochs, actlab_epochs: every epoch's time.
    """

    article_epoch_s: float
    actlab_epoch_s: float
    loader_epoch_s: float
    model_epoch_s: float
    speedup: float
    max_speedup: float
    epochs: int
    n_train: int
    batch_size: int
    threads: int
    device: str
    article_epochs: list[float] = field(default_factory=list)
    actlab_epochs: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median(v: list[float]) -> float:
    s = sorted(v)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


def bench_training(
    epochs: int = 1,
    n_train: int = 60000,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> TrainingBench:
    """Time the article's loop and actlab's loop on the same data, model and optimiser.

    The article's loop runs on the CPU (a ``DataLoader`` over CPU tensors, as in the
    article); actlab's loop keeps the data on ``device``. Epochs alternate between the
    two loops (each epoch call makes its own Adam optimiser, in both loops alike).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    data = mnist_shaped(n_train, seed=seed)
    torch.manual_seed(seed)
    model_a = article_mlp()
    model_b = article_mlp()
    model_b.load_state_dict(model_a.state_dict())
    dev = torch.device(device)
    model_b, data_b = model_b.to(dev), data.to(dev)
    article: list[float] = []
    ours: list[float] = []
    for epoch in range(epochs):  # interleaved, so that both see the same machine load
        article += article_loop(model_a, data, 1, batch_size)
        res = fit_classifier(
            model_b, data_b, epochs=1, batch_size=batch_size, seed=seed + epoch,
            optimizer="adam", lr=1e-3, monitor_dead=False, diverge_factor=None,
        )
        ours += res.curves["epoch_time"]
    a, b = _median(article), _median(ours)
    floor = model_only(article_mlp().to(dev), data.to(dev), batch_size)
    return TrainingBench(
        article_epoch_s=a, actlab_epoch_s=b, loader_epoch_s=loader_only(data, batch_size),
        model_epoch_s=floor, speedup=a / b, max_speedup=a / floor, epochs=epochs,
        n_train=n_train, batch_size=batch_size,
        threads=torch.get_num_threads(), device=str(dev),
        article_epochs=article, actlab_epochs=ours,
    )
