"""Stacked seeds give each seed the numbers of its one-by-one run (to float rounding)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import actlab
from actlab.experiments.data import Dataset, load_dataset, pydoc_text
from actlab.experiments.models import CNN, MLP, MNIST1DCNN, CharTransformer
from actlab.experiments.stacked import can_stack, stack_models, stack_problem
from actlab.experiments.train import DivergenceWatch, fit_classifier, fit_lm, seed_everything
from actlab.experiments.train_stacked import (
    cross_entropy_rows,
    fit_classifier_stacked,
    fit_lm_stacked,
    mlp_step,
    written_backward,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SEEDS = [0, 1, 2]


def _as(data: Dataset, dtype: torch.dtype, device: str) -> Dataset:
    return Dataset(data.name, data.x_train.to(device, dtype), data.y_train.to(device),
                   data.x_test.to(device, dtype), data.y_test.to(device), data.num_classes)


def _models(build, dtype, device, seeds=SEEDS):
    out = []
    for seed in seeds:
        seed_everything(seed)
        out.append(build().to(device, dtype))
    return out


def _same(one, stacked, rel):
    assert stacked.status == one.status
    assert stacked.steps == one.steps and stacked.diverged_step == one.diverged_step
    assert set(stacked.curves) == set(one.curves)
    for name, values in one.curves.items():
        if name == "epoch_time":
            assert len(stacked.curves[name]) == len(values)
            continue
        assert stacked.curves[name] == pytest.approx(values, rel=rel, abs=rel), name
    assert stacked.metrics == pytest.approx(one.metrics, rel=rel, abs=rel)
    assert stacked.extra.get("dead_by_layer") == pytest.approx(one.extra.get("dead_by_layer"))


def _check_classifier(build, data, dtype, device, rel, **kw):
    models = _models(build, dtype, device)
    ones = []
    for seed, model in zip(SEEDS, _models(build, dtype, device), strict=True):
        ones.append(fit_classifier(model, data, seed=seed, **kw))
    stacked = fit_classifier_stacked(models, data, SEEDS, **kw)
    for one, st in zip(ones, stacked, strict=True):
        _same(one, st, rel)
        assert st.extra["stack"]["seeds"] == len(SEEDS)
    # the seeds really differ (each its own initialisation and data order)
    assert len({tuple(r.curves["train_loss"]) for r in stacked}) == len(SEEDS)
    return ones, stacked


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("activation", "residual", "epochs"),
    [("relu", False, 20), ("swiglu", True, 8), ("formula:x*tanh(x)", False, 4),
     ("elu", True, 6)],
)
def test_mlp_stacked_equals_one_by_one_over_hundreds_of_steps(digits, device, activation,
                                                               residual, epochs):
    # float64: 20 epochs of 11 steps = 220 steps; curves agree to float32 rounding (the
    # losses are reduced in float32, as in the one-by-one loop)
    data = _as(digits, torch.float64, device)
    ones, _ = _check_classifier(
        lambda: MLP(64, (32, 32), 10, activation, residual=residual), data, torch.float64,
        device, 1e-5, epochs=epochs, lr=3e-3,
    )
    assert ones[0].steps == epochs * math.ceil(1347 / 128)


def test_mlp_stacked_float32_stays_within_float_tolerance(digits):
    ones, _ = _check_classifier(
        lambda: MLP(64, (64, 32), 10, "relu"), digits, torch.float32, "cpu", 1e-3, epochs=20,
    )
    assert any(r.curves["dead_fraction"][-1] > 0 for r in ones)  # dead units: counted alike


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("activation", ["relu", "geglu"])
def test_cnn_stacked_equals_one_by_one(digits, device, activation):
    data = _as(digits, torch.float64, device)
    _check_classifier(
        lambda: CNN((1, 8, 8), 10, activation, channels=(4, 8), hidden=16), data,
        torch.float64, device, 1e-5, epochs=4, lr=3e-3,
    )


def test_mnist1d_paper_cnn_stacked_equals_one_by_one():
    data = _as(load_dataset("mnist1d"), torch.float64, "cpu")
    data = Dataset(data.name, data.x_train[:1000], data.y_train[:1000], data.x_test[:500],
                   data.y_test[:500], 10)
    _check_classifier(lambda: MNIST1DCNN(40, 10, "silu"), data, torch.float64, "cpu", 1e-5,
                      epochs=5, lr=1e-2, batch_size=100)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("activation", ["swiglu"])
def test_char_lm_stacked_equals_one_by_one(device, activation):
    text = pydoc_text().to(device)

    def build():
        return CharTransformer(text.vocab_size, block_size=16, d_model=16, n_layer=2,
                               n_head=2, d_ff=32, activation=activation)

    kw = dict(steps=200, batch_size=8, block_size=16, eval_every=50, eval_batches=2, lr=3e-3)
    ones = [fit_lm(m, text, seed=s, **kw)
            for s, m in zip(SEEDS, _models(build, torch.float64, device), strict=True)]
    stacked = fit_lm_stacked(_models(build, torch.float64, device), text, SEEDS, **kw)
    for one, st in zip(ones, stacked, strict=True):
        _same(one, st, 1e-5)
        assert st.curves["step"] == [50, 100, 150, 200]
    assert len({r.metrics["val_loss"] for r in stacked}) == len(SEEDS)


def test_a_diverging_seed_leaves_the_stack_and_the_others_go_on(digits):
    def poisoned(models):
        with torch.no_grad():
            models[1].head.bias[0] = float("nan")  # seed 1: NaN loss from its first step
        return models

    build = lambda: MLP(64, (32,), 10, "relu")  # noqa: E731
    ones = [fit_classifier(m, digits, seed=s, epochs=3)
            for s, m in zip(SEEDS, poisoned(_models(build, torch.float32, "cpu")), strict=True)]
    stacked = fit_classifier_stacked(poisoned(_models(build, torch.float32, "cpu")), digits,
                                     SEEDS, epochs=3)
    assert [r.status for r in stacked] == ["ok", "diverged", "ok"]
    assert stacked[1].diverged_step == 0 and stacked[1].steps == 11
    assert stacked[1].metrics == {} and stacked[1].curves["test_accuracy"] == []
    for one, st in zip(ones, stacked, strict=True):
        _same(one, st, 1e-4)


def test_a_diverging_lm_seed_leaves_the_stack():
    text = pydoc_text()

    def build():
        return CharTransformer(text.vocab_size, block_size=8, d_model=8, n_layer=1, n_head=1,
                               d_ff=16, activation="relu")

    def poisoned(models):
        with torch.no_grad():
            models[0].head.bias[0] = float("nan")  # seed 0: NaN loss from its first step
        return models

    kw = dict(steps=20, batch_size=4, block_size=8, eval_every=10, eval_batches=1)
    ones = [fit_lm(m, text, seed=s, **kw)
            for s, m in zip(SEEDS, poisoned(_models(build, torch.float32, "cpu")), strict=True)]
    stacked = fit_lm_stacked(poisoned(_models(build, torch.float32, "cpu")), text, SEEDS, **kw)
    assert [r.status for r in stacked] == ["diverged", "ok", "ok"]
    assert stacked[0].diverged_step == 0 and stacked[0].steps == 10  # found at the check
    for one, st in zip(ones, stacked, strict=True):
        _same(one, st, 1e-4)


def test_divergence_watch_follows_several_runs():
    watch = DivergenceWatch(torch.device("cpu"), factor=10, shape=(3,))
    watch.update_many(torch.tensor([[1.0, 2.0, 3.0], [5.0, float("nan"), 3.0]]))
    watch.update_many(torch.tensor([[11.0, 1.0, 29.0], [float("inf"), 1.0, 31.0]]))
    assert watch.diverged_steps() == [2, 1, 3]
    watch.select(torch.tensor([0, 2]))
    assert watch.diverged_steps() == [2, 3] and watch.step == 4
    with pytest.raises(ValueError, match="use diverged_steps"):
        watch.diverged_at()


@pytest.mark.usefixtures("clean_registry")
def test_what_can_be_stacked():
    assert can_stack("relu") and can_stack("swiglu") and can_stack("formula:x*sigmoid(x)")
    assert stack_problem("prelu") == "prelu learns alpha (one value per model, not stacked)"
    actlab.register(actlab.from_callable(lambda x: x**3, name="cube_not_stacked"))
    assert stack_problem("cube_not_stacked") == (
        "cube_not_stacked is a user callable (it may not be element-wise)"
    )
    actlab.register(actlab.formula("x * sigmoid(2 * x)", name="my_formula_swish"))
    assert can_stack("my_formula_swish")
    assert "cannot be resolved" in stack_problem("no_such_activation")
    with pytest.raises(ValueError, match="at least one model"):
        stack_models([])
    with pytest.raises(ValueError, match="one kind"):
        stack_models([MLP(4, (3,), 2), CNN((1, 4, 4), 2)])
    with pytest.raises(ValueError, match="same parameter shapes"):
        stack_models([MLP(4, (3,), 2), MLP(4, (5,), 2)])
    with pytest.raises(ValueError, match="learned parameters"):
        stack_models([MLP(4, (3,), 2, "prelu"), MLP(4, (3,), 2, "prelu")])
    with pytest.raises(ValueError, match="Linear cannot be stacked"):
        stack_models([nn.Linear(2, 2), nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="one model per seed"):
        fit_classifier_stacked([MLP(64, (3,), 10)], load_dataset("digits"), [0, 1])
    with pytest.raises(ValueError, match="seeds must differ"):
        fit_classifier_stacked([MLP(64, (3,), 10)] * 2, load_dataset("digits"), [0, 0])


def test_stacked_model_shapes_and_shared_inputs():
    torch.manual_seed(0)
    models = [MLP(40, (16,), 10, "relu") for _ in range(3)]
    stacked = stack_models(models)
    x = torch.randn(5, 40)
    shared = stacked(x, shared=True)
    assert shared.shape == (3, 5, 10)
    for s, model in enumerate(models):  # seed s's slice is seed s's model
        assert torch.allclose(shared[s], model(x), atol=1e-6)
        assert torch.allclose(stacked(x.expand(3, 5, 40))[s], model(x), atol=1e-6)
    assert stacked.seeds == 3
    stacked.keep(torch.tensor([2]))
    assert stacked.seeds == 1
    assert torch.allclose(stacked(x, shared=True)[0], models[2](x), atol=1e-6)


def test_stacked_activations_overwrite_their_input_where_the_op_allows():
    torch.manual_seed(0)
    relu = [MLP(40, (16, 16), 10, "relu") for _ in range(2)]
    stacked = stack_models(relu)
    assert all(a.inplace for a in stacked.acts)
    assert not any(a.inplace for m in relu for a in m.acts)  # the seeds' models untouched
    z = torch.randn(2, 5, 16)
    assert stacked.acts[0](z).data_ptr() == z.data_ptr()
    gelu = stack_models([MLP(40, (16,), 10, "gelu") for _ in range(2)])
    assert gelu.acts[0](z).data_ptr() != z.data_ptr()  # gelu's backward needs its input
    # a stack of in-place activations trains as the seeds' own models
    x, y = torch.randn(2, 7, 40), torch.randint(0, 10, (2, 7))
    loss = cross_entropy_rows(stacked(x), y).sum()
    loss.backward()
    for s, model in enumerate(relu):
        nn.functional.cross_entropy(model(x[s]), y[s], reduction="sum").backward()
        assert torch.allclose(stacked.linears[0].weight.grad[s], model.linears[0].weight.grad.t(),
                              atol=1e-5)


@pytest.mark.parametrize(("activation", "residual"), [
    ("relu", False), ("relu", True), ("tanh", True), ("leaky_relu", False), ("elu", False),
    ("selu", True), ("sigmoid", False), ("celu", False), ("hardtanh", False),
])
def test_the_written_backward_is_autograds(activation, residual):
    torch.manual_seed(0)
    build = [MLP(12, (16, 16, 8), 5, activation, residual=residual).double() for _ in range(3)]
    ours, theirs = stack_models(build), stack_models(build)
    grads = written_backward(ours)
    assert grads is not None and len(grads) == 3
    x, y = torch.randn(3, 40, 12, dtype=torch.float64) * 2, torch.randint(0, 5, (3, 40))
    ours.peaks.enabled = theirs.peaks.enabled = True
    losses = mlp_step(ours, grads, x, y)
    expected = cross_entropy_rows(theirs(x), y).mean(dim=1)
    expected.sum().backward()
    torch.testing.assert_close(losses, expected.detach(), rtol=1e-13, atol=1e-13)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-11, atol=1e-13, msg=name)
    for name, peak in theirs.peaks.peaks.items():
        assert torch.equal(ours.peaks.peaks[name], peak)
    # the gradient buffers are kept: a second step overwrites them (no zero_grad)
    kept = [p.grad for p in ours.parameters()]
    mlp_step(ours, grads, x, y)
    for p, g, q in zip(ours.parameters(), kept, theirs.parameters(), strict=True):
        assert p.grad is g
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-11, atol=1e-13)


def test_what_trains_through_autograd():
    def stack(act, **kw):
        torch.manual_seed(0)
        return stack_models([MLP(12, (8,), 5, act, **kw) for _ in range(2)])

    assert written_backward(stack("relu")) is not None
    for act in ("gelu", "swiglu", "mish", "formula:x*tanh(x)"):  # backward needs the input
        assert written_backward(stack(act)) is None, act
    assert written_backward(stack(actlab.get("tanh").module(precise=True))) is None
    frozen = stack("relu")
    frozen.head.bias.requires_grad_(False)
    assert written_backward(frozen) is None
    with actlab.low_memory():
        assert written_backward(stack("relu")) is None
    assert written_backward(stack("relu").to(torch.bfloat16)) is None
    logistic = stack_models([MLP(12, (), 5) for _ in range(2)])  # no hidden layer
    assert written_backward(logistic) == []
    torch.manual_seed(0)
    assert written_backward(stack_models([CNN((1, 8, 8), 10, "relu", channels=(4,), hidden=8)
                                          for _ in range(2)])) is None


@pytest.mark.parametrize("write", [True, False])
def test_both_stacked_paths_give_the_one_by_one_numbers(digits, write):
    data = _as(digits, torch.float64, "cpu")
    models = _models(lambda: MLP(64, (32,), 10, "tanh"), torch.float64, "cpu")
    ones = [fit_classifier(m, data, seed=s, epochs=3) for s, m in
            zip(SEEDS, _models(lambda: MLP(64, (32,), 10, "tanh"), torch.float64, "cpu"),
                strict=True)]
    for one, st in zip(ones, fit_classifier_stacked(models, data, SEEDS, epochs=3,
                                                    write_backward=write), strict=True):
        _same(one, st, 1e-5)


def test_cross_entropy_rows_is_torchs_cross_entropy():
    torch.manual_seed(0)
    logits = (torch.randn(3, 50, 10, dtype=torch.float64) * 30).requires_grad_(True)
    target = torch.randint(0, 10, (3, 50))
    ours = cross_entropy_rows(logits, target)
    theirs = nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten(),
                                         reduction="none").view(3, 50)
    torch.testing.assert_close(ours, theirs, rtol=1e-13, atol=1e-13)
    weights = torch.rand(3, 50, dtype=torch.float64)
    (g1,) = torch.autograd.grad(ours, logits, weights)
    (g2,) = torch.autograd.grad(theirs, logits, weights)
    torch.testing.assert_close(g1, g2, rtol=1e-13, atol=1e-13)
    half = logits.detach().bfloat16()
    out = cross_entropy_rows(half, target)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, nn.functional.cross_entropy(
        half.float().flatten(0, 1), target.flatten(), reduction="none").view(3, 50))


@pytest.mark.parametrize("c_in", [1, 16])  # grouped kernel below 8 channels, per seed above
@pytest.mark.parametrize("conv", [nn.Conv1d, nn.Conv2d])
def test_stacked_convolutions_are_each_seeds_own(conv, c_in):
    from actlab.experiments.stacked import StackedConv

    torch.manual_seed(0)
    layers = [conv(c_in, 5, 3, padding=1, stride=2) for _ in range(3)]
    stacked = StackedConv(layers)
    space = (9,) if conv is nn.Conv1d else (9, 7)
    xs = [torch.randn(4, c_in, *space) for _ in layers]
    out = stacked(torch.cat(xs, dim=1))
    for s, (layer, x) in enumerate(zip(layers, xs, strict=True)):
        assert torch.allclose(out[:, 5 * s : 5 * s + 5], layer(x), atol=1e-5)


def test_the_engine_benchmarks_hand_written_stack_trains_as_actlab_does(monkeypatch):
    """benchmarks/engine.py times actlab's stacked run against a stack written by hand:
    both must do the same work (same initialisation, batch order, loss and optimiser),
    so their test losses after two epochs agree to float rounding."""
    import importlib.util
    from pathlib import Path

    import actlab.experiments.tasks.classify as classify

    # the script wraps the task data loader at import: restored after the test
    monkeypatch.setattr(classify, "load_task_data", classify.load_task_data)
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "engine.py"
    spec = importlib.util.spec_from_file_location("actlab_engine_benchmark", path)
    engine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engine)

    ds = load_dataset("digits")
    seeds = [3, 4]

    def models():
        out = []
        for s in seeds:
            seed_everything(s)
            out.append(MLP(64, (32, 16), 10, "relu"))
        return out

    cfg = {"lr": 1e-2, "batch": 64, "epochs": 2}
    hand_loss, hand_acc = engine.minimal_stacked_classifier(
        [engine._native_act(m, "relu") for m in models()], ds, cfg, seeds)
    ours = fit_classifier_stacked(models(), ds, seeds, epochs=2, lr=1e-2, batch_size=64)
    for r, loss, acc in zip(ours, hand_loss, hand_acc, strict=True):
        assert r.curves["test_loss"][-1] == pytest.approx(loss, rel=1e-4)
        assert r.curves["test_accuracy"][-1] == pytest.approx(acc, abs=2 / len(ds.y_test))
