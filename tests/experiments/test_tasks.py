"""Tasks: every registered task's quick run, the XOR outcome, divergence, ids, seeding."""

from __future__ import annotations

import gzip
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import actlab.experiments.tasks as tasks_module
from actlab.experiments.base import TASKS, RunResult, RunSpec
from actlab.experiments.tasks import parse_task_id, task_ids

CPU = torch.device("cpu")
BUILTIN = ("xor", "mlp", "cnn", "ffn_timing", "depth", "char_lm", "gradflow")


def quick(name: str, activation: str = "relu", seed: int = 0, **overrides) -> RunResult:
    task = TASKS[name]
    spec = RunSpec(name, activation, seed, {**task.defaults, **task.quick, **overrides})
    return task.run(spec, CPU)


def test_builtin_tasks_are_registered_with_their_metric():
    assert set(BUILTIN) <= set(TASKS)
    for name in BUILTIN:
        task = TASKS[name]
        assert task.name == name and task.description
        assert set(task.quick) <= set(task.defaults), name
        json.dumps(dict(task.defaults), allow_nan=False)


@pytest.mark.parametrize("name", BUILTIN)
def test_quick_run_returns_a_sane_result(name):
    res = quick(name)
    task = TASKS[name]
    assert res.status == "ok", res
    value = res.metrics[task.metric]
    assert isinstance(value, float) and math.isfinite(value)
    assert res.wall_time > 0
    json.dumps({"metrics": res.metrics, "curves": res.curves, "artifacts": res.artifacts},
               allow_nan=False)


@pytest.mark.parametrize("activation", ["swiglu", "formula:x * tanh(softplus(x))"])
@pytest.mark.parametrize("name", ["mlp", "cnn", "ffn_timing", "char_lm", "xor"])
def test_tasks_take_glu_and_formula_activations(name, activation):
    res = quick(name, activation)
    assert res.status == "ok" and math.isfinite(res.metrics[TASKS[name].metric])


def test_xor_linear_fails_and_nonlinear_solves():
    # quick settings (300 steps instead of 800): both outcomes already hold on these seeds
    for seed in range(3):
        assert quick("xor", "identity", seed).metrics["accuracy"] <= 0.75
        for act in ("relu", "tanh", "sigmoid"):
            assert quick("xor", act, seed).metrics["accuracy"] == 1.0, (act, seed)


def test_xor_artifacts_hold_the_decision_boundary():
    res = quick("xor", "tanh")
    b = res.artifacts["boundary"]
    n = TASKS["xor"].quick["grid"]
    assert len(b["x"]) == len(b["y"]) == n and np.asarray(b["prob"]).shape == (n, n)
    assert res.artifacts["points"] == [[0, 0], [0, 1], [1, 0], [1, 1]]
    # the stored grid agrees with the predictions at the four points (corners of the lattice)
    prob = np.asarray(b["prob"])
    ix = {v: int(np.argmin(np.abs(np.asarray(b["x"]) - v))) for v in (0.0, 1.0)}
    for (x1, x2), p in zip(res.artifacts["points"], res.artifacts["predictions"], strict=True):
        if abs(b["x"][ix[x1]] - x1) < 1e-6 and abs(b["y"][ix[x2]] - x2) < 1e-6:
            assert prob[ix[x2], ix[x1]] == pytest.approx(p, abs=1e-5)


def test_diverging_run_is_recorded_with_its_step():
    res = quick("mlp", "relu", lr=1e6)
    assert res.status == "diverged"
    assert isinstance(res.diverged_step, int) and res.diverged_step >= 0
    assert res.metrics == {}
    res = quick("xor", "tanh", lr=1e6)
    assert res.status == "diverged" and res.diverged_step >= 0


def test_runs_are_reproducible_from_the_seed():
    for name in ("mlp", "cnn", "xor", "char_lm"):
        a, b = quick(name, "gelu", 5), quick(name, "gelu", 5)
        assert a.metrics == b.metrics, name
        assert {k: v for k, v in a.curves.items() if k != "epoch_time"} == {
            k: v for k, v in b.curves.items() if k != "epoch_time"
        }, name
    assert quick("mlp", "gelu", 5).metrics != quick("mlp", "gelu", 6).metrics


def test_mlp_and_cnn_on_mnist1d_and_the_paper_cnn():
    res = quick("mlp", dataset="mnist1d")
    assert res.artifacts["dataset"] == {"name": "mnist1d", "train": 4000, "test": 1000,
                                        "input_shape": [40]}
    paper = quick("cnn", dataset="mnist1d", arch="mnist1d_paper")
    assert paper.artifacts["params"] == 5210
    assert quick("cnn", dataset="mnist1d").status == "ok"


def test_default_epochs_follow_the_dataset():
    res = TASKS["mlp"].run(RunSpec("mlp", "relu", 0, {"dataset": "digits", "epochs": None,
                                                      "hidden": [8]}), CPU)
    assert res.artifacts["config"]["epochs"] == 60 and len(res.curves["train_loss"]) == 60


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(">u1").tobytes()))


def test_mlp_on_mnist_files_from_data_dir(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    d = tmp_path / "mnist"
    d.mkdir()
    for split, n in (("train", 20), ("t10k", 10)):
        _write_idx(d / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(d / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    res = quick("mlp", dataset="mnist", data_dir=str(tmp_path))
    assert res.status == "ok" and res.artifacts["dataset"]["train"] == 20
    from actlab.experiments.data import DataFileMissing, idx

    # as on a machine without Debian's copy (which would otherwise serve Fashion-MNIST)
    monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion_mnist", (tmp_path / "not-installed",))
    with pytest.raises(DataFileMissing, match="fashion_mnist file train-images-idx3-ubyte"):
        quick("cnn", dataset="fashion_mnist", data_dir=str(tmp_path / "none"))


def test_depth_and_gradflow_tables():
    res = quick("depth", "tanh")
    depths = TASKS["depth"].quick["depths"]
    assert res.artifacts["depths"] == depths
    assert len(res.artifacts["test_accuracy"]) == len(depths) == len(res.artifacts["status"])
    assert res.metrics["mean_accuracy"] == pytest.approx(np.mean(res.artifacts["test_accuracy"]))
    # sigmoid's gradient vanishes through 20 layers (sigmoid' <= 1/4); ReLU's far less
    sig = quick("gradflow", "sigmoid", depths=[5, 20], metric_depth=20)
    relu = quick("gradflow", "relu", depths=[5, 20], metric_depth=20)
    assert sig.metrics["log10_ratio_d20"] < -8
    assert relu.metrics["log10_ratio_d20"] > sig.metrics["log10_ratio_d20"] + 4
    assert len(sig.artifacts["grad_norm"][1]) == 20


def test_char_lm_beats_uniform_and_ffn_timing_reports():
    res = quick("char_lm", "gelu")
    assert res.metrics["val_loss"] < math.log(res.artifacts["vocab_size"])
    t = quick("ffn_timing", "swiglu")
    assert t.metrics["fwd_ms"] > 0 and t.metrics["fwd_bwd_ms"] > 0
    assert t.artifacts["d_hidden"] == round(2 / 3 * TASKS["ffn_timing"].quick["d_ff"])


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_the_articles_cnn_on_real_fashion_mnist(monkeypatch):
    """The quick setting: one epoch on 2000 of the 60,000 images, scored on 1000."""
    monkeypatch.delenv("ACTLAB_DATA_DIR", raising=False)
    res = quick("cnn", dataset="fashion_mnist")
    assert res.status == "ok" and res.artifacts["dataset"] == {
        "name": "fashion_mnist", "train": 2000, "test": 1000, "input_shape": [1, 28, 28]}
    # 10 classes: chance is 10 %; one short epoch already reaches about 70 %
    assert res.metrics["test_accuracy"] > 0.5
    assert res.artifacts["params"] == 32 * 9 + 32 + 64 * 32 * 9 + 64 + 64 * 7 * 7 * 128 + 128 \
        + 128 * 10 + 10  # the article's CNN on 1x28x28: fc1 takes 64 x 7 x 7
    assert res.artifacts["cpu_time"] > 0 and "peak_memory_mb" not in res.metrics  # CPU run


def test_bad_configs_are_clear_errors():
    with pytest.raises(ValueError, match=r"task 'mlp': setting train_size=0 must be an integer "
                                         r">= 1 \(or None for all of the split\)"):
        quick("mlp", train_size=0)
    with pytest.raises(ValueError, match="task 'cnn': setting test_size='all' must be an integer"):
        quick("cnn", test_size="all")
    with pytest.raises(ValueError, match="task 'mlp' has no setting 'epoch'; accepted:"):
        quick("mlp", epoch=3)
    with pytest.raises(ValueError, match="task 'cnn': setting dataset='spirals' must be one of"):
        quick("cnn", dataset="spirals")
    with pytest.raises(ValueError, match="task 'mlp': setting batch=0 must be an integer >= 1"):
        quick("mlp", batch=0)
    with pytest.raises(ValueError, match="setting arch='resnet' must be one of article,"):
        quick("cnn", arch="resnet")
    with pytest.raises(ValueError, match="arch 'mnist1d_paper' takes 1-D signals"):
        quick("cnn", arch="mnist1d_paper")
    with pytest.raises(ValueError, match="setting metric_depth=7 must be one of depths"):
        quick("gradflow", metric_depth=7)


def test_parse_task_id():
    assert parse_task_id("xor") == ("xor", {})
    assert parse_task_id("mlp/digits") == ("mlp", {"dataset": "digits"})
    assert parse_task_id("MLP/Fashion-MNIST") == ("mlp", {"dataset": "fashion_mnist"})
    name, cfg = parse_task_id("mlp/mnist1d/paper")
    assert name == "mlp" and cfg == {"dataset": "mnist1d", "hidden": [100, 100], "lr": 1e-2,
                                     "batch": 100, "epochs": 150, "residual": True}
    assert parse_task_id("cnn/mnist1d/paper")[1]["arch"] == "mnist1d_paper"
    assert parse_task_id("mlp/mnist1d/logistic")[1] == {**cfg, "hidden": [], "residual": False}
    with pytest.raises(ValueError, match="unknown task 'mpl/digits'; accepted: xor, "):
        parse_task_id("mpl/digits")
    with pytest.raises(ValueError, match="task 'cnn' cannot use dataset 'xor'"):
        parse_task_id("cnn/xor")
    with pytest.raises(ValueError, match="task 'gradflow' takes no dataset"):
        parse_task_id("gradflow/digits")
    with pytest.raises(ValueError, match="presets: mlp/mnist1d/paper, cnn/mnist1d/paper, "
                                         "mlp/mnist1d/logistic"):
        parse_task_id("mlp/digits/paper")
    assert parse_task_id("char_lm/short") == ("char_lm", tasks_module.char_lm.SHORT)
    name, short = parse_task_id("cnn/fashion_mnist/short")
    assert name == "cnn" and short["dataset"] == "fashion_mnist" and short["train_size"] >= 1000
    with pytest.raises(ValueError, match="task 'char_lm' takes no dataset; use 'char_lm' alone "
                                         "or one of its presets \\(char_lm/short\\)"):
        parse_task_id("char_lm/digits")
    assert "mlp/mnist1d" in task_ids() and "mlp/xor" not in task_ids()
    for tid in task_ids():
        name, cfg = parse_task_id(tid)
        assert set(cfg) <= set(TASKS[name].defaults)
    assert tasks_module.PRESETS["paper"]["mlp"]["dataset"] == "mnist1d"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task_id", "low", "high"),
    [("mlp/mnist1d/logistic", 0.30, 0.34), ("mlp/mnist1d/paper", 0.63, 0.67),
     ("cnn/mnist1d/paper", 0.92, 0.96)],
)
def test_mnist1d_paper_recipe(task_id, low, high):
    """The MNIST-1D paper's three baselines with its recipe (ReLU, mean of 3 seeds).

    Table 1 of the paper: logistic regression 32 %, MLP 68 +- 2 %, CNN 94 +- 2 %. Logistic
    regression and the CNN are checked against those bands. For the MLP the authors' own
    notebooks print 64.6 % (twice) and 65.1 % at step 6000 with this exact model and
    recipe on the same data (``notebooks/quickstart.ipynb``,
    ``notebooks/mnist1d-classification.ipynb`` of github.com/greydanus/mnist1d), and no
    published output reaches 66 %: the band here is within 2 points of what their code
    gives. Measured: see the closing note of issue 5 (8 seeds each).
    """
    name, cfg = parse_task_id(task_id)
    accs = [
        TASKS[name].run(RunSpec(name, "relu", seed, {**TASKS[name].defaults, **cfg}), CPU)
        .metrics["test_accuracy"]
        for seed in range(3)
    ]
    assert low <= float(np.mean(accs)) <= high, accs


REFERENCE_POINTS = {  # the benchmark table in Fashion-MNIST's README
    "mlp/fashion_mnist": 0.8833,  # "MLP 256-128-100: 0.8833"
    "cnn/fashion_mnist": 0.916,  # "2 Conv+pooling: 0.916" (TensorFlow's tutorial CNN)
}


@pytest.mark.slow
@pytest.mark.timeout(2400)
@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
@pytest.mark.parametrize("task_id", list(REFERENCE_POINTS))
def test_fashion_mnist_reference_points(task_id, tmp_path, monkeypatch):
    """The article's recipes with ReLU land within 1.5 points of the dataset's benchmark table
    (mean of 3 seeds). The CNN's full recipe takes several minutes per seed on one thread."""
    from actlab.experiments.store import load_results
    from actlab.experiments.study import Study, run_study

    monkeypatch.delenv("ACTLAB_DATA_DIR", raising=False)
    db = tmp_path / "ref.sqlite"
    summary = run_study(Study([task_id], ["relu"], seeds=3), db, workers=2, progress=False)
    assert summary.ok == 3, summary.line()
    accs = load_results(db)["value"]
    assert abs(float(accs.mean()) - REFERENCE_POINTS[task_id]) <= 0.015, accs.tolist()
