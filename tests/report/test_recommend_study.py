"""`recommend_from_study` and `actlab recommend --from`: the choice, its confidence, the cost
and the warnings, on databases written with the real store.

The metric values are set by the tests (so the expected choice is known); everything else
(the store, the statistics, the recommendation) is the real code.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from actlab.cli import run
from actlab.experiments.base import RunResult, RunSpec
from actlab.experiments.store import ResultsStore
from actlab.recommend import recommend_from_study


def _write(db: Path, task: str, values: dict[str, list[float]], *, metric: str = "test_accuracy",
           hib: bool = True, wall: dict[str, float] | None = None,
           dead: dict[str, float] | None = None, config: dict | None = None) -> None:
    cfg = {"dataset": "digits", "epochs": 3, **(config or {})}
    with ResultsStore(db) as store:
        for act, vals in values.items():
            for seed, v in enumerate(vals):
                curves = {"train_loss": [1.0, 0.6, 0.4], "test_accuracy": [0.5, 0.7, v]}
                if dead is not None:
                    curves["dead_fraction"] = [0.0, dead.get(act, 0.0) / 2, dead.get(act, 0.0)]
                store.record(
                    RunSpec(task, act, seed, cfg),
                    RunResult("ok", {metric: v}, curves, wall_time=(wall or {}).get(act, 1.0)),
                    metric=metric, higher_is_better=hib,
                )


CLEAR = {
    "gelu": [0.950, 0.955, 0.948, 0.957],
    "relu": [0.900, 0.910, 0.905, 0.902],
    "tanh": [0.800, 0.790, 0.810, 0.805],
}


def test_clear_winner(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "mlp", CLEAR, wall={"gelu": 3.0, "relu": 2.0, "tanh": 2.5})
    r = recommend_from_study(db, audit=False)
    assert r.overall == "gelu" and r.overall_support == (1, 1)
    (t,) = r.tasks
    assert t.best == "gelu" and t.confidence == "clear"
    assert set(t.beaten) == {"relu", "tanh"} and t.tied_with == ()
    x = np.array(CLEAR["gelu"])
    half = sps.t.ppf(0.975, 3) * x.std(ddof=1) / 2
    assert t.mean == pytest.approx(x.mean()) and t.n == 4
    assert (t.ci_low, t.ci_high) == pytest.approx((x.mean() - half, x.mean() + half))
    assert t.time_ratio == pytest.approx(1.5)
    assert "significantly best" in r.summary
    assert any("1.50x" in c for c in r.cost)
    assert r.warnings == ()


def test_tie_is_a_weak_preference(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "mlp", {"relu": [0.90, 0.92, 0.91, 0.93], "gelu": [0.91, 0.91, 0.92, 0.925]})
    r = recommend_from_study(db, audit=False)
    (t,) = r.tasks
    assert t.confidence == "tied"
    assert t.best in {"relu", "gelu"} and len(t.tied_with) == 1
    assert "weak preference" in r.summary and "more seeds" in r.summary
    assert "not distinguishable" in t.confidence_text


def test_single_seed_is_untested(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "mlp", {"relu": [0.9], "gelu": [0.95]})
    (t,) = recommend_from_study(db, audit=False).tasks
    assert t.best == "gelu" and t.confidence == "untested"


def test_warnings_diverged_and_dead_units(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "mlp", CLEAR, dead={"relu": 0.4, "gelu": 0.02})
    with ResultsStore(db) as store:
        store.record(
            RunSpec("mlp", "tanh", 9, {"dataset": "digits", "epochs": 3}),
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
    _write(db, "mlp", CLEAR)
    _write(db, "ffn_timing", {"relu": [1.0, 1.0], "gelu": [2.0, 2.0]}, metric="forward_ms",
           hib=False, config={"dataset": None})
    r = recommend_from_study(db, audit=False)
    assert [t.setting for t in r.tasks] == ["mlp/digits"]
    assert any("gelu 2.00x" in c and "forward_ms" in c for c in r.cost)
    assert any("the recommended gelu costs 2.00x" in c for c in r.cost)


def test_empty_database(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    ResultsStore(db).close()
    r = recommend_from_study(db, audit=False)
    assert r.overall is None and r.tasks == ()
    assert "no finished run" in r.summary


def test_missing_database(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        recommend_from_study(tmp_path / "nope.sqlite")


def test_cli_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.sqlite"
    _write(db, "mlp", CLEAR, dead={"relu": 0.4})
    assert run(["recommend", "--from", str(db)]) == 0
    out = capsys.readouterr().out
    assert "gelu" in out and "mlp/digits" in out and "clear" in out
    assert "40% dead units" in out


def test_audit_warns_about_an_unstable_formula(tmp_path: Path) -> None:
    naive = "formula:1/(1+exp(-x))"  # overflows for very negative x: NaN in the derivative
    db = tmp_path / "s.sqlite"
    _write(db, "mlp", {"sigmoid": [0.80, 0.81, 0.79], naive: [0.80, 0.80, 0.81]})
    r = recommend_from_study(db, audit=True)
    unstable = [w for w in r.warnings if "stability audit" in w]
    assert len(unstable) == 1 and "1/(1+exp(-x))" in unstable[0]
