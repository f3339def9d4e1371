"""Training loops: curves, divergence with its exact step, seeding, dead units, the LM."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actlab.experiments.data import digits, load_dataset, pydoc_text, spirals
from actlab.experiments.models import MLP, CharTransformer
from actlab.experiments.train import (
    DivergenceWatch,
    evaluate,
    fit_classifier,
    fit_lm,
    make_optimizer,
    seed_everything,
)


@pytest.fixture(scope="module")
def small_digits():
    return load_dataset("digits")


def test_fit_classifier_learns_digits_and_records_curves(small_digits):
    seed_everything(0)
    res = fit_classifier(MLP(64, (64,), 10, "relu"), small_digits, epochs=4, lr=3e-3, seed=0)
    assert res.status == "ok" and res.diverged_step is None
    for name in ("train_loss", "test_loss", "test_accuracy", "epoch_time", "dead_fraction"):
        assert len(res.curves[name]) == 4, name
    assert res.metrics["test_accuracy"] > 0.85  # a linear model already gets ~0.95
    assert res.curves["train_loss"][-1] < res.curves["train_loss"][0]
    assert all(0.0 <= v <= 1.0 for v in res.curves["dead_fraction"])
    assert res.steps == 4 * math.ceil(1347 / 128)
    assert res.metrics["test_loss"] == res.curves["test_loss"][-1]


def test_evaluate_matches_a_direct_computation(small_digits):
    torch.manual_seed(0)
    model = MLP(64, (16,), 10, "tanh")
    loss, acc = evaluate(model, small_digits.x_test, small_digits.y_test, batch_size=100)
    with torch.no_grad():
        logits = model(small_digits.x_test)
    assert loss == pytest.approx(float(F.cross_entropy(logits, small_digits.y_test)), rel=1e-5)
    assert acc == pytest.approx(float((logits.argmax(1) == small_digits.y_test).float().mean()))


def test_same_seed_same_run_different_seed_different_run(small_digits):
    def once(seed):
        seed_everything(seed)
        return fit_classifier(MLP(64, (32,), 10, "gelu"), small_digits, epochs=2, seed=seed)

    a, b, c = once(3), once(3), once(4)
    assert a.curves["train_loss"] == b.curves["train_loss"]
    assert a.curves["test_accuracy"] == b.curves["test_accuracy"]
    assert a.curves["train_loss"] != c.curves["train_loss"]


class NaNAfter(nn.Module):
    """A linear classifier whose output turns NaN at its ``k``-th training forward pass."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.k, self.calls = k, 0

    def forward(self, x):
        out = self.lin(x)
        if self.training:
            if self.calls >= self.k:
                out = out * float("nan")
            self.calls += 1
        return out


def test_divergence_reports_the_exact_global_step():
    data = spirals(64, seed=0)  # 128 points: 4 batches of 32 per epoch
    res = fit_classifier(NaNAfter(6), data, epochs=5, batch_size=32, monitor_dead=False)
    assert res.status == "diverged" and res.diverged_step == 6
    assert res.metrics == {}
    assert len(res.curves["test_accuracy"]) == 1  # epoch 0 finished; epoch 1 diverged
    assert res.steps == 8  # the loop stops at the end of the epoch where it diverged


def test_huge_learning_rate_diverges(small_digits):
    seed_everything(0)
    res = fit_classifier(MLP(64, (32,), 10, "relu"), small_digits, epochs=3, lr=1e6)
    assert res.status == "diverged"
    assert isinstance(res.diverged_step, int) and 0 < res.diverged_step < 11


def test_divergence_watch():
    w = DivergenceWatch(torch.device("cpu"))
    for v in (2.0, 1.0, float("inf"), float("nan")):
        w.update(torch.tensor(v))
    assert w.diverged_at() == 2
    w = DivergenceWatch(torch.device("cpu"), factor=10)
    for v in (2.0, 19.0, 21.0, 1.0):
        w.update(torch.tensor(v))
    assert w.diverged_at() == 2
    w = DivergenceWatch(torch.device("cpu"), factor=None)
    for v in (2.0, 1e30):
        w.update(torch.tensor(v))
    assert w.diverged_at() is None
    with pytest.raises(ValueError, match="diverge_factor must be > 1"):
        DivergenceWatch(torch.device("cpu"), factor=0.5)


class DeadFirstLayer(nn.Module):
    """An MLP whose first ReLU layer can never fire (bias -1000 on standardised inputs)."""

    def __init__(self):
        super().__init__()
        self.mlp = MLP(64, (8, 8), 10, "relu")
        with torch.no_grad():
            self.mlp.linears[0].bias.fill_(-1000.0)

    def forward(self, x):
        return self.mlp(x)


def test_dead_fraction_counts_dead_units(small_digits):
    torch.manual_seed(0)
    res = fit_classifier(DeadFirstLayer(), small_digits, epochs=1, lr=1e-3)
    layers = res.extra["dead_by_layer"]
    assert sorted(layers.values())[-1] == 1.0  # the first layer: all 8 units dead
    # the second layer sees only zeros, so its units output relu(bias): alive iff bias > 0
    assert res.curves["dead_fraction"][0] >= 0.5


def test_make_optimizer_errors():
    m = nn.Linear(2, 2)
    assert isinstance(make_optimizer(m, "sgd", 0.1), torch.optim.SGD)
    with pytest.raises(ValueError, match="unknown optimizer 'lion'; accepted: adam, adamw, sgd"):
        make_optimizer(m, "lion")
    with pytest.raises(ValueError, match="learning rate must be a positive number"):
        make_optimizer(m, "adam", -1.0)
    with pytest.raises(ValueError, match="epochs and batch_size must be >= 1"):
        fit_classifier(m, digits(), epochs=0)


def test_fit_lm_beats_the_uniform_predictor():
    text = pydoc_text()
    seed_everything(0)
    lm = CharTransformer(text.vocab_size, block_size=32, d_model=32, n_layer=1, n_head=2,
                         d_ff=64, activation="swiglu")
    res = fit_lm(lm, text, steps=60, batch_size=16, block_size=32, eval_every=20,
                 eval_batches=2, lr=1e-2)
    assert res.status == "ok" and res.curves["step"] == [20, 40, 60]
    # a uniform guess over the vocabulary costs ln(V) nats per character
    assert res.metrics["val_loss"] < math.log(text.vocab_size) - 0.5
    assert res.metrics["val_bpc"] == pytest.approx(res.metrics["val_loss"] / math.log(2))
    assert res.steps == 60


@pytest.mark.parametrize("name", ["xielu", "star_relu", "pau", "dyt"])
def test_learnable_activations_train_and_learn_their_parameters(name, small_digits):
    """The recent learnable activations train like any other, and their parameters move."""
    import actlab

    torch.manual_seed(0)
    model = MLP(small_digits.in_features, (32,), 10, name)
    model(small_digits.x_train[:2])  # a lazy (per-channel) activation sizes its parameters first
    before = {n: p.detach().clone() for n, p in model.acts[0].named_parameters()}
    res = fit_classifier(model, small_digits, epochs=3, lr=3e-3, seed=0)
    assert res.status == "ok" and res.metrics["test_accuracy"] > 0.8
    after = dict(model.acts[0].named_parameters())
    assert set(before) == set(actlab.get(name).learn)
    assert all(not torch.equal(before[n], after[n].detach()) for n in before)
