"""The training-loop benchmark: both loops train the same model on the same data."""

from __future__ import annotations

import pytest
import torch

from actlab.bench.training import (
    article_loop,
    article_mlp,
    bench_training,
    mnist_shaped,
)


def test_mnist_shaped_data():
    ds = mnist_shaped(n_train=64, n_test=8, seed=1)
    assert ds.x_train.shape == (64, 1, 28, 28) and ds.y_test.shape == (8,)
    assert float(ds.x_train.min()) >= 0.0 and float(ds.x_train.max()) <= 1.0
    # pixels are k / 255
    k = ds.x_train * 255
    assert torch.allclose(k, k.round(), atol=1e-4)
    assert int(ds.y_train.max()) <= 9
    with pytest.raises(ValueError, match="n_train"):
        mnist_shaped(n_train=0)


def test_article_loop_trains():
    torch.manual_seed(0)
    ds = mnist_shaped(n_train=256, n_test=8)
    # learnable labels: the class is the brightness decile of the image
    y = (ds.x_train.mean(dim=(1, 2, 3)) * 0 + torch.arange(256) % 10).long()
    ds = type(ds)(ds.name, ds.x_train + y[:, None, None, None] / 10, y, ds.x_test, ds.y_test, 10)
    model = article_mlp()
    before = torch.nn.functional.cross_entropy(model(ds.x_train), ds.y_train).item()
    times = article_loop(model, ds, epochs=3, batch_size=32)
    after = torch.nn.functional.cross_entropy(model(ds.x_train), ds.y_train).item()
    assert len(times) == 3 and all(t > 0 for t in times)
    assert after < before


def test_bench_training_reports_both_loops():
    r = bench_training(epochs=2, n_train=512, batch_size=64)
    assert len(r.article_epochs) == 2 and len(r.actlab_epochs) == 2
    assert r.article_epoch_s > 0 and r.actlab_epoch_s > 0 and r.loader_epoch_s > 0
    assert r.model_epoch_s > 0
    assert r.max_speedup == pytest.approx(r.article_epoch_s / r.model_epoch_s)
    assert r.speedup == pytest.approx(r.article_epoch_s / r.actlab_epoch_s)
    assert r.as_dict()["n_train"] == 512
    with pytest.raises(ValueError, match="epochs"):
        bench_training(epochs=0)
