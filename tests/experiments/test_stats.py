"""Statistics over seeds, against hand-computed values and independent SciPy calls."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from actlab.experiments.stats import (
    describe,
    format_mean_std,
    format_value,
    holm,
    holm_levels,
    paired_compare,
    paired_power,
    seeds_needed,
    statements,
    summarize,
)


def test_describe_hand_example():
    d = describe([1.0, 2.0, 3.0])
    # mean 2, s = 1, t(0.975, 2) = 4.302653, half width = 4.302653 / sqrt(3) = 2.484138
    assert d.mean == 2.0 and d.std == pytest.approx(1.0) and d.n == 3
    assert d.ci_low == pytest.approx(2 - 2.484138, abs=1e-6)
    assert d.ci_high == pytest.approx(2 + 2.484138, abs=1e-6)


def test_describe_matches_scipy_interval():
    x = np.random.default_rng(0).normal(0.7, 0.05, size=7)
    d = describe([*x, math.nan])  # non-finite values are dropped
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert d.n == 7 and d.ci_low == pytest.approx(lo) and d.ci_high == pytest.approx(hi)
    one = describe([0.5])
    assert one.mean == 0.5 and one.n == 1 and math.isnan(one.std) and math.isnan(one.ci_low)
    assert describe([]).n == 0 and math.isnan(describe([]).mean)


def test_paired_hand_example():
    # d = [0.2, 0.05, 0.05]: mean 0.1, s = sqrt(0.0075), t = 2.0 with 2 df;
    # p = 2 * (0.5 - 2 / (2 * sqrt(6))) = 0.183503 (closed form of the t(2) tail)
    pc = paired_compare([0.9, 0.8, 0.85], [0.7, 0.75, 0.8])
    assert pc.n == 3 and pc.mean_diff == pytest.approx(0.1)
    assert pc.p_value == pytest.approx(2 * (0.5 - 2 / (2 * math.sqrt(6))), rel=1e-9)
    assert pc.effect_size == pytest.approx(0.1 / math.sqrt(0.0075))
    assert math.isnan(pc.p_wilcoxon)  # too few pairs
    # lower is better: the orientation flips the sign, not the p-value
    low = paired_compare([0.7, 0.75, 0.8], [0.9, 0.8, 0.85], higher_is_better=False)
    assert low.mean_diff == pytest.approx(0.1) and low.p_value == pytest.approx(pc.p_value)


def test_paired_against_independent_scipy():
    rng = np.random.default_rng(3)
    a = rng.normal(0.9, 0.02, 8)
    b = a - rng.normal(0.01, 0.02, 8)
    pc = paired_compare(a, b)
    d = a - b
    t = d.mean() / (d.std(ddof=1) / math.sqrt(8))
    assert pc.p_value == pytest.approx(2 * sps.t.sf(abs(t), 7))
    assert pc.p_wilcoxon == pytest.approx(sps.wilcoxon(d).pvalue)
    assert pc.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
    same = paired_compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same.p_value == 1.0 and same.mean_diff == 0.0
    const = paired_compare([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert math.isnan(const.p_value) and const.mean_diff == pytest.approx(0.5)
    assert paired_compare([1.0], [0.0]).n == 1
    with pytest.raises(ValueError, match="equal lengths"):
        paired_compare([1.0, 2.0], [1.0])


def test_holm_hand_example():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = holm([0.2, math.nan, 0.01])
    assert out[0] == pytest.approx(0.2) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def _frame(values: dict[str, list[float]], status: dict[tuple[str, int], str] | None = None,
           task="mlp", dataset="digits", hib=True, config=None, chash="c1"):
    rows = []
    for act, vals in values.items():
        for seed, v in enumerate(vals):
            st = (status or {}).get((act, seed), "ok")
            rows.append(dict(
                task=task, dataset=dataset, task_id=f"{task}/{dataset}" if dataset else task,
                config_hash=chash, config=config or {"lr": 0.01}, activation=act, seed=seed,
                status=st, metric="test_accuracy", higher_is_better=hib,
                value=v if st == "ok" else math.nan,
            ))
    return pd.DataFrame(rows)


def test_summarize_ranks_tests_and_states():
    relu = [0.95, 0.96, 0.97, 0.955, 0.965]
    silu = [0.948, 0.962, 0.965, 0.957, 0.96]
    sigmoid = [0.80, 0.82, 0.79, 0.81, 0.80]
    df = _frame({"relu": relu, "silu": silu, "sigmoid": sigmoid},
                status={("sigmoid", 4): "diverged", ("silu", 4): "failed"})
    table = summarize(df)
    assert table.activation.tolist() == ["relu", "silu", "sigmoid"]
    assert table["rank"].tolist() == [1, 2, 3]
    r = table.set_index("activation")
    assert r.loc["relu", "mean"] == pytest.approx(np.mean(relu))
    assert r.loc["relu", "std"] == pytest.approx(np.std(relu, ddof=1))
    assert r.loc["sigmoid", "mean"] == pytest.approx(np.mean(sigmoid[:4]))  # diverged excluded
    assert r.loc["sigmoid", "n"] == 4 and r.loc["sigmoid", "n_diverged"] == 1
    assert r.loc["silu", "n_failed"] == 1 and r.loc["silu", "n_runs"] == 5
    # paired over the common seeds 0..3, independently with scipy
    p_silu = sps.ttest_rel(relu[:4], silu[:4]).pvalue
    p_sig = sps.ttest_rel(relu[:4], sigmoid[:4]).pvalue
    assert r.loc["silu", "p_value"] == pytest.approx(p_silu)
    assert r.loc["sigmoid", "p_value"] == pytest.approx(p_sig)
    assert r.loc["silu", "n_pairs"] == 4
    lo, hi = sorted([p_silu, p_sig])
    holm_lo, holm_hi = 2 * lo, max(2 * lo, hi)
    assert r.loc["sigmoid", "p_holm"] == pytest.approx(holm_lo)
    assert r.loc["silu", "p_holm"] == pytest.approx(holm_hi)
    assert bool(r.loc["sigmoid", "distinguishable"]) and not r.loc["silu", "distinguishable"]
    assert math.isnan(r.loc["relu", "p_value"]) and r.loc["relu", "best"] == "relu"
    text = statements(table)["mlp/digits"]
    assert text.startswith("relu has the best mean test_accuracy on mlp/digits")
    assert "better than sigmoid" in text and "not distinguishable from silu" in text
    assert "sigmoid diverged on 1/5 runs" in text and "silu failed on 1/5 runs" in text


def test_summarize_lower_is_better_and_clear_winner():
    loss = {"a": [0.10, 0.11, 0.12, 0.10], "b": [0.30, 0.33, 0.31, 0.35],
            "c": [0.50, 0.52, 0.55, 0.49]}
    table = summarize(_frame(loss, hib=False))
    assert table.activation.tolist() == ["a", "b", "c"]
    assert (table.effect_size.iloc[1:] > 0).all()
    assert "a is best on mlp/digits by test_accuracy" in table.statement.iloc[0]
    assert "better than every other activation" in table.statement.iloc[0]


def test_summarize_single_seed_never_declares_a_winner():
    table = summarize(_frame({"relu": [1.0], "tanh": [0.75]}, task="xor", dataset=None))
    text = statements(table)["xor"]
    assert "no test is possible" in text and "no winner" in text


def test_summarize_all_diverged_and_grid_settings():
    df = _frame({"relu": [0.9, 0.91], "sigmoid": [0.1, 0.1]},
                status={("sigmoid", 0): "diverged", ("sigmoid", 1): "diverged"})
    table = summarize(df)
    assert table.activation.tolist() == ["relu", "sigmoid"]
    assert table.n.tolist() == [2, 0] and "only activation with results" in table.statement[0]
    grid = pd.concat([
        _frame({"relu": [0.9, 0.92], "tanh": [0.8, 0.85]}, config={"lr": 0.1}, chash="h1"),
        _frame({"relu": [0.7, 0.72], "tanh": [0.8, 0.83]}, config={"lr": 0.01}, chash="h2"),
    ])
    t2 = summarize(grid)
    assert set(t2.setting) == {"mlp/digits lr=0.1", "mlp/digits lr=0.01"}
    best = t2[t2["rank"] == 1].set_index("setting").activation.to_dict()
    assert best == {"mlp/digits lr=0.1": "relu", "mlp/digits lr=0.01": "tanh"}
    assert summarize(_frame({})).empty


def test_summarize_tasks_with_and_without_dataset():
    df = pd.concat([
        _frame({"relu": [1.0, 1.0], "tanh": [0.75, 1.0]}, task="xor", dataset=None, chash="x"),
        _frame({"relu": [0.9, 0.92], "tanh": [0.8, 0.85]}, chash="m"),
    ], ignore_index=True)
    table = summarize(df)
    assert set(table.setting) == {"xor", "mlp/digits"}
    xor = table[table.setting == "xor"]
    assert xor.dataset.isna().all() and xor["mean"].tolist() == [1.0, 0.875]


def test_ties_and_number_formats():
    table = summarize(_frame({"relu": [1.0, 1.0, 1.0], "tanh": [1.0, 1.0, 1.0]}))
    assert "all 2 activations tie on mlp/digits" in table.statement[0]
    assert "no winner" in table.statement[0]
    assert format_value(0.97853) == "0.9785" and format_value(563.14) == "563.1"
    assert format_value(1388.4) == "1388" and format_value(2.5e-6) == "2.500e-06"
    assert format_value(math.nan) == "-"
    assert format_mean_std(563.14, 47.02) == "563.1 ± 47.0"
    assert format_mean_std(0.97853, 0.00131) == "0.9785 ± 0.0013"
    assert format_mean_std(0.5, 0.0) == "0.5000 ± 0.0000"
    assert format_mean_std(0.9, 0.00001) == "0.900000 ± 0.000010"
    assert format_mean_std(0.9, math.nan) == "0.9000"


# G*Power 3.1, "Means: difference between two dependent means (matched pairs)", two tails,
# alpha 0.05, power 0.80: total sample sizes for effect sizes d_z 0.2, 0.5, 0.8 and 1.0
@pytest.mark.parametrize(("effect", "pairs"), [(0.2, 199), (0.5, 34), (0.8, 15), (1.0, 10)])
def test_seeds_needed_matches_gpower(effect, pairs):
    assert seeds_needed(effect) == pairs and seeds_needed(-effect) == pairs
    assert paired_power(effect, pairs) >= 0.8 > paired_power(effect, pairs - 1)


def test_paired_power_against_a_simulated_t_test():
    rng = np.random.default_rng(0)
    n, effect, sims = 12, 0.9, 20000
    diffs = rng.normal(effect, 1.0, (sims, n))
    t = diffs.mean(axis=1) / (diffs.std(axis=1, ddof=1) / math.sqrt(n))
    simulated = float((np.abs(t) > sps.t.ppf(0.975, n - 1)).mean())
    assert paired_power(effect, n) == pytest.approx(simulated, abs=0.01)  # 3.5 standard errors
    # under the null the "power" is the test's size, alpha
    assert paired_power(0.0, 7, alpha=0.05) == pytest.approx(0.05)


def test_seeds_needed_edge_cases():
    assert seeds_needed(0.0) == math.inf and seeds_needed(1e-4) == math.inf
    assert math.isnan(seeds_needed(math.nan)) and math.isnan(seeds_needed(math.inf))
    assert seeds_needed(0.5, alpha=0.01) > seeds_needed(0.5) > seeds_needed(0.5, power=0.5)
    assert seeds_needed(50.0) == 2  # the fewest a paired test can use
    with pytest.raises(ValueError, match="alpha and power must be in"):
        seeds_needed(0.5, alpha=1.5)


def test_summary_gives_the_seeds_each_tie_needs():
    relu = [0.950, 0.960, 0.955]
    gelu = [0.945, 0.950, 0.952]  # not distinguishable from relu on 3 seeds
    tanh = [0.800, 0.820, 0.790]  # clearly worse
    table = summarize(_frame({"relu": relu, "gelu": gelu, "tanh": tanh}))
    r = table.set_index("activation")
    d = np.subtract(relu, gelu)
    effect = d.mean() / d.std(ddof=1)
    assert not r.loc["gelu", "distinguishable"] and bool(r.loc["tanh", "distinguishable"])
    assert r.loc["gelu", "seeds_needed"] == seeds_needed(effect)
    assert math.isnan(r.loc["tanh", "seeds_needed"]) and math.isnan(r.loc["relu", "seeds_needed"])
    text = statements(table)["mlp/digits"]
    n = int(seeds_needed(effect))
    assert f"Separating relu from gelu (observed d_z = {effect:.2g} over 3 seeds) would take " \
           f"about {n} seeds for 80% power (paired t-test at α=0.05)." in text
    same = summarize(_frame({"relu": [0.9, 0.8, 0.7], "tanh": [0.9, 0.8, 0.7], "elu": [
        0.5, 0.5, 0.5]}))
    assert same.set_index("activation").loc["tanh", "seeds_needed"] == math.inf
    assert "no number of seeds would separate them" in same.statement.iloc[0]


def test_seeds_needed_at_the_level_holm_tests_each_comparison():
    assert holm_levels([0.01, 0.04, 0.03]) == pytest.approx([0.05 / 3, 0.05, 0.05 / 2])
    assert holm_levels([0.2, math.nan, 0.01]) == pytest.approx([0.05, 0.025, 0.025])
    # XOR: eight activations solve it on every seed, the linear baseline does not; its p is
    # the smallest of 8, so Holm tests it at alpha / 8 and more seeds are needed than at alpha
    values = {a: [1.0, 1.0, 1.0] for a in "abcdefgh"}
    values["identity"] = [0.5, 0.25, 0.5]
    r = summarize(_frame(values, task="xor", dataset=None)).set_index("activation")
    ident = r.loc["identity"]
    assert not ident["distinguishable"] and ident["seeds_alpha"] == pytest.approx(0.05 / 8)
    assert ident["seeds_needed"] == seeds_needed(ident["effect_size"], 0.05 / 8)
    assert ident["seeds_needed"] > seeds_needed(ident["effect_size"])


def test_statements_by_task_id_with_several_settings():
    grid = pd.concat([
        _frame({"relu": [0.9, 0.92], "tanh": [0.8, 0.85]}, config={"epochs": None}, chash="h1"),
        _frame({"relu": [0.7, 0.72], "tanh": [0.8, 0.83]}, config={"epochs": 2}, chash="h2"),
        _frame({"relu": [1.0, 1.0], "tanh": [1.0, 1.0]}, task="xor", dataset=None, chash="x"),
    ], ignore_index=True)
    texts = statements(summarize(grid))
    # None is the task's own default, and reads so (not "epochs=None")
    assert set(texts) == {"mlp/digits epochs=default", "mlp/digits epochs=2", "xor"}
    assert "on xor" in texts["xor"]  # a task with one setting: its id is the setting
    with pytest.raises(KeyError, match="mlp/digits has 2 settings in this table"):
        texts["mlp/digits"]
    assert texts["mlp/digits epochs=2"].startswith("tanh")
    with pytest.raises(KeyError, match="no setting 'cnn/digits'"):
        texts["cnn/digits"]
