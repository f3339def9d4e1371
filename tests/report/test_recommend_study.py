"""`recommend_from_study` and `actlab recommend --from`: one answer per architecture, its
confidence, the comparison with the framework, the cost, the seeds a tie needs, warnings.

The metric values are set by the tests (so the expected choice is known); everything else
(the store, the statistics, the recommendation) is the real code.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from actlab.cli import run
from actlab.experiments.base import RunResult, RunSpec
from actlab.experiments.store import ResultsStore, load_results
from actlab.experiments.study import Study
from actlab.recommend import recommend_from_study


def _config(task_id: str, quick: bool = False) -> tuple[str, dict]:
    """The task name and the full configuration a study gives ``task_id``."""
    (task, cfg), = Study([task_id], ["relu"], seeds=1, quick=quick).resolved_tasks()
    return task.name, cfg


def _write(db: Path, task_id: str, values: dict[str, list[float]], *,
           wall: dict[str, float] | None = None, dead: dict[str, float] | None = None,
           memory: dict[str, float] | None = None, quick: bool = False,
           architecture: str | None = "registry", metric: str | None = None,
           hib: bool | None = None, cpu: dict[str, float] | None = None) -> None:
    from actlab.experiments.study import load_tasks

    task, cfg = _config(task_id, quick) if "/" in task_id or task_id in load_tasks() else (
        task_id, {"dataset": None})
    t = load_tasks().get(task)
    metric = metric or (t.metric if t else "accuracy")
    hib = (t.higher_is_better if t else True) if hib is None else hib
    with ResultsStore(db) as store:
        for act, vals in values.items():
            for seed, v in enumerate(vals):
                curves = {"train_loss": [1.0, 0.6, 0.4], "test_accuracy": [0.5, 0.7, v]}
                if dead is not None:
                    curves["dead_fraction"] = [0.0, dead.get(act, 0.0) / 2, dead.get(act, 0.0)]
                metrics = {metric: v}
                if memory is not None:
                    metrics["peak_memory_mb"] = memory[act]
                arts = {} if architecture == "registry" else {"architecture": architecture}
                if cpu is not None:
                    arts["cpu_time"] = cpu[act]
                store.record(
                    RunSpec(task, act, seed, cfg),
                    RunResult("ok", metrics, curves, wall_time=(wall or {}).get(act, 1.0),
                              artifacts=arts),
                    metric=metric, higher_is_better=hib,
                )


CLEAR = {
    "gelu": [0.950, 0.955, 0.948, 0.957],
    "relu": [0.900, 0.910, 0.905, 0.902],
    "tanh": [0.800, 0.790, 0.810, 0.805],
}
# relu - gelu per seed: 0.01, 0.00, 0.02: mean 0.01, sd 0.01, d_z = 1 -> t = 1.73, p = 0.23
TIE = {"relu": [0.91, 0.90, 0.92], "gelu": [0.90, 0.90, 0.90]}
# 0.02, 0.01, 0.03: d_z = 2, t = 3.46, p = 0.074 (a tie at alpha 0.05); 5 seeds reach 80% power
CLOSE_TIE = {"relu": [0.92, 0.91, 0.93], "gelu": [0.90, 0.90, 0.90]}


def test_clear_winner_differs_from_the_framework(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "mlp/digits", CLEAR, wall={"gelu": 3.0, "relu": 2.0, "tanh": 2.5})
    r = recommend_from_study(db, audit=False)
    (t,) = r.tasks
    assert t.best == "gelu" and t.confidence == "clear" and t.architecture == "mlp"
    assert set(t.beaten) == {"relu", "tanh"} and t.tied_with == ()
    x = np.array(CLEAR["gelu"])
    half = sps.t.ppf(0.975, 3) * x.std(ddof=1) / 2
    assert t.mean == pytest.approx(x.mean()) and t.n == 4
    assert (t.ci_low, t.ci_high) == pytest.approx((x.mean() - half, x.mean() + half))
    assert t.time_ratio == pytest.approx(1.5) and math.isnan(t.seeds_needed)
    (a,) = r.answers
    assert (a.architecture, a.answer, a.confidence, a.framework) == ("mlp", "gelu", "clear",
                                                                     "relu")
    assert a.verdict == "differs" and "gelu beats relu on mlp/digits" in a.framework_text
    p_relu = sps.ttest_rel(CLEAR["gelu"], CLEAR["relu"]).pvalue
    p_tanh = sps.ttest_rel(CLEAR["gelu"], CLEAR["tanh"]).pvalue
    low, high = sorted([p_relu, p_tanh])  # Holm over 2 tests: 2 p_(1), max(that, p_(2))
    holm_relu = 2 * low if p_relu == low else max(2 * low, high)
    assert f"Holm-adjusted p={holm_relu:.2g}" in a.framework_text
    assert a.time_ratio == pytest.approx(1.5) and a.memory_ratio is None
    assert any("1.50x" in c for c in a.cost) and a.seeds == ()
    assert "the MLP (mlp/digits)" in r.coverage and "CNN" not in r.coverage
    assert r.warnings == ()


def test_tie_keeps_the_framework_and_says_how_many_seeds(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "cnn/digits", TIE)
    r = recommend_from_study(db, audit=False)
    (t,) = r.tasks
    assert t.confidence == "tied" and t.best == "relu" and t.runner_up == "gelu"
    assert t.seeds_needed == 10  # d_z = 1: G*Power's paired t-test table gives 10 pairs
    (a,) = r.answers
    assert (a.answer, a.confidence, a.verdict) == ("relu", "tied", "agrees")
    assert "cannot separate relu from the best" in a.framework_text
    assert a.seeds and "about 10 seeds" in a.seeds[0] and a.seeds[0].endswith(t.extend)
    assert t.extend == f"actlab study -t cnn/digits -a relu -a gelu --seeds 10 --db {db}"


def test_the_extend_command_adds_seeds_and_keeps_the_runs(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    db = tmp_path / "s.sqlite"
    _write(db, "mlp/digits", CLOSE_TIE, quick=True)
    (t,) = recommend_from_study(db, audit=False).tasks
    assert t.confidence == "tied" and t.seeds_needed == 5
    args = shlex.split(t.extend)
    assert args[:4] == ["actlab", "study", "-t", "mlp/digits"] and "--quick" in args
    before = load_results(db)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run([*args[1:], "--workers", "0", "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    df = load_results(db)
    assert len(df) == 10 and set(df.seed) == set(range(5)) and (df.status == "ok").all()
    assert df.config_hash.nunique() == 1  # the same setting: the study was extended
    kept = df.set_index("key").loc[before["key"]]
    assert (kept["finished_at"].to_numpy() == before["finished_at"].to_numpy()).all()
    assert (kept["value"].to_numpy() == before["value"].to_numpy()).all()


def test_answers_stay_within_their_architecture(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "mlp/digits", CLEAR)  # gelu clearly best on the MLP ...
    _write(db, "cnn/digits", TIE)  # ... says nothing about the CNN, where relu ties
    _write(db, "xor", {"gelu": [1.0, 1.0, 1.0], "relu": [1.0, 0.75, 1.0]})
    r = recommend_from_study(db, audit=False)
    assert [a.architecture for a in r.answers] == ["mlp", "cnn"]
    assert r.answer("mlp").answer == "gelu" and r.answer("cnn").answer == "relu"
    assert r.answer("cnn").settings == ("cnn/digits",) and r.answer("transformer") is None
    assert "xor" in r.coverage and "diagnostics" in r.coverage
    assert {t.setting: t.architecture for t in r.tasks} == {
        "mlp/digits": "mlp", "cnn/digits": "cnn", "xor": None}


def test_settings_that_disagree_give_a_mixed_answer(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "mlp/digits", CLEAR)  # gelu clearly best
    _write(db, "mlp/mnist1d", {"relu": CLEAR["gelu"], "gelu": CLEAR["relu"],
                               "tanh": CLEAR["tanh"]})  # relu clearly best
    (a,) = recommend_from_study(db, audit=False).answers
    assert a.settings == ("mlp/digits", "mlp/mnist1d") and a.confidence == "mixed"
    assert a.answer in {"relu", "gelu"} and "disagree" in a.confidence_text
    assert a.verdict == "differs" and "gelu beats relu on mlp/digits" in a.framework_text
    assert "On mlp/mnist1d the study cannot tell relu from the best" in a.framework_text


def test_framework_not_tested_and_transformer_cost(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "char_lm", {"swiglu": [1.50, 1.51, 1.49, 1.50], "relu": [1.60, 1.62, 1.61, 1.60]},
           wall={"swiglu": 4.0, "relu": 2.0}, memory={"swiglu": 30.0, "relu": 20.0})
    _write(db, "ffn_timing", {"relu": [1.0, 1.0], "swiglu": [1.5, 1.5], "gelu": [2.0, 2.0]})
    r = recommend_from_study(db, audit=False)
    (a,) = r.answers
    assert (a.architecture, a.answer, a.confidence) == ("transformer", "swiglu", "clear")
    assert a.verdict == "not tested" and "gelu" in a.framework_text
    assert a.time_ratio == pytest.approx(2.0) and a.memory_ratio == pytest.approx(1.5)
    assert any("FFN block" in c and "1.50x" in c for c in a.cost)
    assert any("peak memory 1.50x" in c for c in a.cost)
    assert any("gelu 2.00x" in c for c in r.cost)


def test_cost_is_cpu_time_where_the_runs_recorded_it(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"  # wall times inflated by a busy machine; CPU times are the cost
    _write(db, "mlp/digits", CLEAR, wall={"gelu": 9.0, "relu": 2.0, "tanh": 2.0},
           cpu={"gelu": 2.5, "relu": 2.0, "tanh": 2.2})
    r = recommend_from_study(db, audit=False)
    (t,) = r.tasks
    assert t.time_kind == "CPU time" and t.time_ratio == pytest.approx(1.25)
    assert "took 1.25x the CPU time of relu" in r.answers[0].cost[0]


def test_architecture_recorded_with_the_runs(tmp_path: Path) -> None:
    """A task the registry does not know (defined in a user's script) keeps its architecture."""
    db = tmp_path / "s.sqlite"
    _write(db, "my_convnet", {"relu": [0.9, 0.91, 0.92], "gelu": [0.8, 0.81, 0.8]},
           architecture="cnn", metric="accuracy", hib=True)
    _write(db, "my_probe", {"relu": [0.9, 0.91, 0.92], "gelu": [0.8, 0.81, 0.8]},
           architecture=None, metric="accuracy", hib=True)
    r = recommend_from_study(db, audit=False)
    (a,) = r.answers
    assert a.architecture == "cnn" and a.settings == ("my_convnet",) and a.answer == "relu"
    assert a.verdict == "agrees"


def test_the_frameworks_dead_unit_rule_uses_the_studys_relu_runs(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "cnn/digits", {"relu": [0.90, 0.91, 0.92], "leaky_relu": [0.91, 0.90, 0.92],
                              "elu": [0.80, 0.81, 0.79]}, dead={"relu": 0.3})
    (a,) = recommend_from_study(db, audit=False).answers
    assert a.framework == "leaky_relu" and a.answer == "leaky_relu" and a.verdict == "agrees"
    assert "with 30% of ReLU's units dead here, its dead-unit rule says leaky_relu" in (
        a.framework_text)
    _write(tmp_path / "alive.sqlite", "cnn/digits", {"relu": [0.9, 0.91, 0.92]},
           dead={"relu": 0.05})
    (b,) = recommend_from_study(tmp_path / "alive.sqlite", audit=False).answers
    assert b.framework == "relu"  # 5% is within the 10% threshold


def test_single_seed_is_untested(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "mlp/digits", {"relu": [0.9], "gelu": [0.95]})
    r = recommend_from_study(db, audit=False)
    (t,) = r.tasks
    assert t.best == "gelu" and t.confidence == "untested"
    assert r.answers[0].confidence == "untested"


def test_warnings_diverged_and_dead_units(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "mlp/digits", CLEAR, dead={"relu": 0.4, "gelu": 0.02})
    _, cfg = _config("mlp/digits")
    with ResultsStore(db) as store:
        store.record(
            RunSpec("mlp", "tanh", 9, cfg),
            RunResult("diverged", {}, {"train_loss": [1.0, math.inf]}, diverged_step=7),
            metric="test_accuracy", higher_is_better=True,
        )
    r = recommend_from_study(db, audit=False)
    text = "\n".join(r.warnings)
    assert "tanh diverged on 1/5 runs" in text and "step 7" in text
    assert "relu ends mlp/digits with 40% dead units" in text
    assert "gelu ends" not in text  # 2% is below the 10% threshold


def test_timing_task_is_cost_not_choice(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "mlp/digits", CLEAR)
    _write(db, "ffn_timing", {"relu": [1.0, 1.0], "gelu": [2.0, 2.0]})
    r = recommend_from_study(db, audit=False)
    assert [t.setting for t in r.tasks] == ["mlp/digits"]
    assert any("gelu 2.00x" in c and "fwd_bwd_ms" in c for c in r.cost)
    assert all("FFN" not in c for c in r.answers[0].cost)  # the MLP's answer: not an FFN


def test_empty_database(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    ResultsStore(db).close()
    r = recommend_from_study(db, audit=False)
    assert r.answers == () and r.tasks == ()
    assert "no finished run" in r.summary


def test_missing_database(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        recommend_from_study(tmp_path / "nope.sqlite")


def test_cli_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "mlp/digits", CLEAR, dead={"relu": 0.4})
    _write(db, "cnn/digits", TIE)
    assert run(["recommend", "--from", str(db)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "One answer per architecture" in out and "evidence covers" in out
    assert "mlp/digits" in out and "clear" in out and "40% dead units" in out
    # 40% of ReLU's units dead on the MLP: the framework's own rule says Leaky ReLU there,
    # which this study did not run; the CNN's ReLU units are alive
    assert "not tested (leaky_relu)" in out and "agrees (relu)" in out
    assert "about 10 seeds" in out and "actlab study -t cnn/digits" in out


def test_audit_warns_about_an_unstable_formula(tmp_path: Path) -> None:
    naive = "formula:1/(1+exp(-x))"  # overflows for very negative x: NaN in the derivative
    db = tmp_path / "s.sqlite"
    _write(db, "mlp/digits", {"sigmoid": [0.80, 0.81, 0.79], naive: [0.80, 0.80, 0.81]})
    r = recommend_from_study(db, audit=True)
    unstable = [w for w in r.warnings if "stability audit" in w]
    assert len(unstable) == 1 and "1/(1+exp(-x))" in unstable[0]
