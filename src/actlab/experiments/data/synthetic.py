"""Synthetic datasets: the seed article's XOR points and the two-spirals problem."""

from __future__ import annotations

import numpy as np

from actlab.experiments.data.core import Dataset, from_numpy

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=np.float32)
XOR_Y = np.array([0, 1, 1, 0], dtype=np.int64)


def xor() -> Dataset:
    """The article's four XOR points; the test split is the same four points.

    ``x``: ``(4, 2)`` with values in {0, 1}; ``y = x1 XOR x2``. No linear classifier gets
    more than 3 of the 4 right.
    """
    return from_numpy("xor", XOR_X, XOR_Y, XOR_X, XOR_Y, 2, {"source": "seed article"})


def spirals(n: int = 500, noise: float = 0.2, turns: float = 1.5, seed: int = 0) -> Dataset:
    """Two interleaved spirals (``n`` points per class for training, as many for testing).

    Point ``t`` of arm ``k`` is ``r (cos(theta + k pi), sin(theta + k pi)) + noise``, with
    ``r = t`` and ``theta = 2 pi turns t`` for ``t`` uniform in [0.05, 1] (scaled by 5).
    """
    if n < 1 or noise < 0 or turns <= 0:
        raise ValueError(
            f"spirals needs n >= 1, noise >= 0 and turns > 0; got n={n}, noise={noise}, "
            f"turns={turns}"
        )
    rng = np.random.default_rng(seed)

    def draw() -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for k in (0, 1):
            t = rng.uniform(0.05, 1.0, size=n)
            theta = 2 * np.pi * turns * t + k * np.pi
            pts = 5 * t[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
            xs.append(pts + noise * rng.standard_normal(pts.shape))
            ys.append(np.full(n, k))
        x, y = np.concatenate(xs), np.concatenate(ys)
        order = rng.permutation(len(y))
        return x[order], y[order]

    x_train, y_train = draw()
    x_test, y_test = draw()
    info = {"source": "synthetic", "n_per_class": n, "noise": noise, "turns": turns, "seed": seed}
    return from_numpy("spirals", x_train, y_train, x_test, y_test, 2, info)
