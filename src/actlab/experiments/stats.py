"""Statistics over seeds: ranking, confidence intervals, paired tests, effect sizes.

For each *setting* (task, dataset and configuration; a hyper-parameter grid makes one
setting per grid point) and each activation, over the seeds whose run finished ``ok``:

- ``mean``, ``std`` (sample, ddof=1), ``n``, and the 95% confidence interval of the mean
  ``mean ± t(0.975, n-1) · std / sqrt(n)`` (Student t);
- against the best activation (best mean in the metric's direction), on the seeds where
  both have a value: the paired t-test (``scipy.stats.ttest_rel``, two-sided), the
  Wilcoxon signed-rank test when there are at least 6 pairs (the fewest for which it can
  reach p < 0.05), Cohen's d for paired samples ``d_z = mean(diff) / std(diff)`` with
  ``diff`` oriented so that a positive value favours the best, and the Holm-adjusted
  t-test p-value over the setting's comparisons;
- a confidence statement: the best is called *better than* another activation only when
  the Holm-adjusted paired t-test gives p < ``alpha``; otherwise *not distinguishable*;
- for every *not distinguishable* verdict, the number of seeds a paired t-test would need
  to separate the two at 80% power (:func:`seeds_needed`, from the observed effect
  ``d_z``), at the level Holm's procedure would test that comparison at: ``alpha / k``
  for the comparison with the k-th largest p-value (the runner-up, whose p is usually the
  largest, at ``alpha`` itself); the statement names the figure for the runner-up.

Diverged and failed runs are counted (``n_diverged``, ``n_failed``) and shown, but left
out of the means: a mean over the seeds that survived flatters an unstable activation,
so read it together with those counts (the statement names every activation that
diverged).

Example:
    >>> df = load_results("actlab-study.sqlite")          # doctest: +SKIP
    >>> table = summarize(df)                             # doctest: +SKIP
    >>> print(statements(table)["mlp/digits"])            # doctest: +SKIP
    relu is best on mlp/digits by test_accuracy (0.970 ± 0.010, n=3); better than ...
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

ALPHA = 0.05
MIN_WILCOXON = 6
POWER = 0.80
MAX_SEEDS = 10_000

SUMMARY_COLUMNS = [
    "setting", "task_id", "task", "dataset", "config_hash", "metric", "higher_is_better",
    "rank", "activation", "mean", "std", "n", "ci_low", "ci_high", "n_runs", "n_diverged",
    "n_failed", "best", "n_pairs", "mean_diff", "p_value", "p_wilcoxon", "p_holm",
    "effect_size", "distinguishable", "seeds_needed", "seeds_alpha", "statement",
]


@dataclass(frozen=True)
class Describe:
    """Mean, sample standard deviation, n and the t-based confidence interval of the mean."""

    mean: float
    std: float
    n: int
    ci_low: float
    ci_high: float


def describe(values: Any, confidence: float = 0.95) -> Describe:
    """``mean ± t((1+confidence)/2, n-1) · s / sqrt(n)`` of the finite values.

    With n = 1 the standard deviation and the interval are NaN; with n = 0, all are NaN.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Describe(math.nan, math.nan, 0, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Describe(mean, math.nan, 1, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Describe(mean, std, n, mean - half, mean + half)


@dataclass(frozen=True)
class Paired:
    """A paired comparison of the best activation with another, over common seeds."""

    n: int
    mean_diff: float  # > 0 favours the best
    p_value: float  # paired t-test, two-sided (NaN when undefined)
    p_wilcoxon: float  # Wilcoxon signed-rank, two-sided (NaN when n < 6 or undefined)
    effect_size: float  # Cohen's d_z = mean(diff) / std(diff)


def paired_compare(best: Any, other: Any, higher_is_better: bool = True) -> Paired:
    """Compare two equally long arrays of per-seed values (same seed at same index).

    ``diff = best - other`` when higher is better, ``other - best`` otherwise, so that a
    positive ``mean_diff`` and ``effect_size`` favour ``best``. Pairs with a non-finite
    value are dropped. With fewer than 2 pairs, or differences that are all equal (no
    variance), the t-test is undefined (NaN p); if they are all zero the two are
    identical and p = 1.
    """
    a = np.asarray(best, dtype=float)
    b = np.asarray(other, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal lengths, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    d = a - b if higher_is_better else b - a
    n = int(d.size)
    if n == 0:
        return Paired(0, math.nan, math.nan, math.nan, math.nan)
    mean_diff = float(d.mean())
    if n < 2:
        return Paired(n, mean_diff, math.nan, math.nan, math.nan)
    sd = float(d.std(ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        p = 1.0 if mean_diff == 0.0 else math.nan
        return Paired(n, mean_diff, p, p if n >= MIN_WILCOXON else math.nan, math.nan)
    p_t = float(sps.ttest_rel(a, b).pvalue)
    p_w = math.nan
    if n >= MIN_WILCOXON and np.any(d != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p_w = float(sps.wilcoxon(a, b).pvalue)
    return Paired(n, mean_diff, p_t, p_w, mean_diff / sd)


def paired_power(effect: float, n: Any, alpha: float = ALPHA) -> Any:
    """Power of the two-sided paired t-test at level ``alpha`` with ``n`` pairs, for the
    standardised effect ``d_z = mean(diff) / sd(diff)``.

    The test statistic follows a noncentral t with ``n - 1`` degrees of freedom and
    noncentrality ``d_z sqrt(n)``; the power is the probability that it falls beyond
    ``±t(1 - alpha/2, n - 1)``. ``n`` may be an array.
    """
    n = np.asarray(n, dtype=float)
    df = n - 1
    crit = sps.t.ppf(1 - alpha / 2, df)
    nc = abs(float(effect)) * np.sqrt(n)
    return sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc)


def seeds_needed(
    effect: float, alpha: float = ALPHA, power: float = POWER, max_seeds: int = MAX_SEEDS
) -> float:
    """Seeds (pairs) a two-sided paired t-test needs to detect the effect ``d_z`` with the
    given power at level ``alpha``: the smallest ``n >= 2`` with
    :func:`paired_power` ``>= power``.

    Returns ``inf`` when the effect is 0 or more than ``max_seeds`` would be needed, and NaN
    when the effect is not a finite number (e.g. the differences had no spread). Computed
    from an *observed* effect, it is an estimate: an effect measured on few seeds is itself
    uncertain.

    Example:
        >>> seeds_needed(0.5)      # G*Power's paired t-test table: 34 pairs
        34.0
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha!r} and {power!r}")
    if effect is None or not math.isfinite(effect):
        return math.nan
    if effect == 0:
        return math.inf
    lo, hi = 2, 2
    while paired_power(effect, hi, alpha) < power:  # bracket by doubling, then bisect
        if hi >= max_seeds:
            return math.inf
        lo, hi = hi, min(2 * hi, max_seeds)
    while lo < hi:
        mid = (lo + hi) // 2
        if paired_power(effect, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return float(hi)


def holm_levels(pvalues: list[float], alpha: float = ALPHA) -> list[float]:
    """The level Holm's step-down procedure tests each p-value at: ``alpha / (m - i)`` for
    the i-th smallest of the m finite ones (0-based); a NaN p-value gets the strictest,
    ``alpha / m``.

    Example:
        >>> holm_levels([0.01, 0.04, 0.03])
        [0.016666666666666666, 0.05, 0.025]
    """
    idx = sorted((i for i, p in enumerate(pvalues) if math.isfinite(p)), key=lambda i: pvalues[i])
    m = max(len(idx), 1)
    out = [alpha / m] * len(pvalues)
    for rank, i in enumerate(idx):
        out[i] = alpha / (m - rank)
    return out


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and do not count)."""
    idx = [i for i, p in enumerate(pvalues) if math.isfinite(p)]
    m = len(idx)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def _decimals(x: float, sig: int) -> int:
    """Decimals that show ``x`` with ``sig`` significant digits (0 for large numbers)."""
    if x == 0 or not math.isfinite(x):
        return sig - 1
    return max(0, sig - 1 - math.floor(math.log10(abs(x))))


def format_value(x: float, sig: int = 4) -> str:
    """A number for tables and statements: ``sig`` significant digits, no exponent between
    1e-4 and 1e9 (``0.9785``, ``563.1``, ``1390``); ``-`` when not finite."""
    if x is None or not math.isfinite(x):
        return "-"
    if x != 0 and not 1e-4 <= abs(x) < 1e9:
        return f"{x:.{sig - 1}e}"
    return f"{x:.{_decimals(x, sig)}f}"


def format_mean_std(mean: float, std: float, sig: int = 4) -> str:
    """``mean ± std`` with the standard deviation at the mean's precision."""
    if not math.isfinite(mean):
        return "-"
    text = format_value(mean, sig)
    if std is None or not math.isfinite(std):
        return text
    if mean != 0 and 1e-4 <= abs(mean) < 1e9:
        d = _decimals(mean, sig)
        if std != 0 and abs(std) < 10 ** -d:  # keep 2 significant digits of a tiny spread
            d = _decimals(std, 2)
        return f"{mean:.{d}f} ± {std:.{d}f}"
    return f"{text} ± {format_value(std, 2)}"


def _fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "p undefined"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}" if p < 0.01 else f"p={p:.2f}"


def _ds(x: Any) -> Any:
    """The dataset as a str, or None (pandas turns missing values into NaN)."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _setting_value(value: Any) -> str:
    """A setting's value in a label: ``None`` (the task's own default) reads ``default``."""
    return "default" if value is None else str(value)


def _settings(df: pd.DataFrame) -> dict[tuple[str, Any, str], str]:
    """A readable label per (task, dataset, config_hash): task_id plus the config keys
    that differ between that task_id's settings, e.g. ``mlp/digits lr=0.01``."""
    labels: dict[tuple[str, Any, str], str] = {}
    for tid, group in df.groupby("task_id", sort=True):
        configs = {}
        for _, row in group.drop_duplicates("config_hash").iterrows():
            configs[(row["task"], _ds(row["dataset"]), row["config_hash"])] = row["config"] or {}
        keys = sorted({k for c in configs.values() for k in c})
        varying = [
            k for k in keys
            if len({repr(c.get(k)) for c in configs.values()}) > 1
        ]
        for ident, cfg in configs.items():
            extra = " ".join(f"{k}={_setting_value(cfg.get(k))}" for k in varying)
            labels[ident] = f"{tid} {extra}".strip()
    return labels


def summarize(df: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Rank activations per setting with statistics over seeds (see the module docstring).

    Args:
        df: one row per run, as from :func:`actlab.load_results` (needs ``task, dataset,
            task_id, config_hash, config, activation, seed, status, metric,
            higher_is_better, value``).
        alpha: significance level of the confidence statement.

    Returns:
        One row per (setting, activation), ordered by setting then rank, with the
        columns of :data:`SUMMARY_COLUMNS`; ``statement`` holds the setting's confidence
        statement on every row of that setting.
    """
    if df.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    labels = _settings(df)
    out: list[dict[str, Any]] = []
    for ident, group in df.groupby(["task", "dataset", "config_hash"], dropna=False, sort=True):
        ident = (ident[0], _ds(ident[1]), ident[2])
        out.extend(_summarize_setting(labels[ident], group, alpha))
    table = pd.DataFrame(out, columns=SUMMARY_COLUMNS)
    return table.sort_values(["setting", "rank"], kind="stable").reset_index(drop=True)


def _summarize_setting(label: str, group: pd.DataFrame, alpha: float) -> list[dict[str, Any]]:
    metric = next((m for m in group["metric"] if isinstance(m, str)), None)
    hib_vals = [h for h in group["higher_is_better"] if h is not None and not pd.isna(h)]
    hib = bool(hib_vals[0]) if hib_vals else True
    first = group.iloc[0]
    rows: dict[str, dict[str, Any]] = {}
    per_seed: dict[str, pd.Series] = {}
    for act, g in group.groupby("activation", sort=True):
        ok = g[(g["status"] == "ok") & np.isfinite(g["value"].astype(float))]
        s = pd.Series(ok["value"].astype(float).values, index=ok["seed"].values)
        per_seed[act] = s
        d = describe(s.values)
        rows[act] = {
            "setting": label, "task_id": first["task_id"], "task": first["task"],
            "dataset": _ds(first["dataset"]), "config_hash": first["config_hash"],
            "metric": metric, "higher_is_better": hib, "activation": act,
            "mean": d.mean, "std": d.std, "n": d.n, "ci_low": d.ci_low, "ci_high": d.ci_high,
            "n_runs": len(g), "n_diverged": int((g["status"] == "diverged").sum()),
            "n_failed": int((g["status"] == "failed").sum()),
        }
    sign = 1.0 if hib else -1.0
    order = sorted(
        rows,
        key=lambda a: (rows[a]["n"] == 0, -sign * rows[a]["mean"] if rows[a]["n"] else 0.0, a),
    )
    best = order[0] if rows[order[0]]["n"] else None
    comps: list[tuple[str, Paired]] = []
    for rank, act in enumerate(order, start=1):
        r = rows[act]
        r.update(rank=rank, best=best, n_pairs=0, mean_diff=math.nan, p_value=math.nan,
                 p_wilcoxon=math.nan, p_holm=math.nan, effect_size=math.nan,
                 distinguishable=None, seeds_needed=math.nan, seeds_alpha=math.nan)
        if best is None or act == best:
            continue
        common = per_seed[best].index.intersection(per_seed[act].index)
        pc = paired_compare(per_seed[best][common].values, per_seed[act][common].values, hib)
        r.update(n_pairs=pc.n, mean_diff=pc.mean_diff, p_value=pc.p_value,
                 p_wilcoxon=pc.p_wilcoxon, effect_size=pc.effect_size)
        comps.append((act, pc))
    adjusted = holm([pc.p_value for _, pc in comps])
    levels = holm_levels([pc.p_value for _, pc in comps], alpha)
    for (act, pc), p, level in zip(comps, adjusted, levels, strict=True):
        rows[act]["p_holm"] = p
        rows[act]["distinguishable"] = bool(math.isfinite(p) and p < alpha)
        if not rows[act]["distinguishable"] and pc.n >= 2:
            effect = 0.0 if pc.mean_diff == 0 else pc.effect_size
            rows[act]["seeds_needed"] = seeds_needed(effect, level)
            rows[act]["seeds_alpha"] = level
    statement = _statement(label, metric, best, order, rows, alpha)
    for r in rows.values():
        r["statement"] = statement
    return [rows[a] for a in order]


def _statement(
    label: str, metric: str | None, best: str | None, order: list[str],
    rows: dict[str, dict[str, Any]], alpha: float,
) -> str:
    unstable = [
        f"{a} diverged on {rows[a]['n_diverged']}/{rows[a]['n_runs']} runs"
        for a in order if rows[a]["n_diverged"]
    ] + [
        f"{a} failed on {rows[a]['n_failed']}/{rows[a]['n_runs']} runs"
        for a in order if rows[a]["n_failed"]
    ]
    tail = ("; " + "; ".join(unstable) + " (excluded from means)") if unstable else ""
    what = metric or "its metric"
    if best is None:
        return f"no activation finished a run on {label}: no ranking{tail}."
    b = rows[best]
    head_stats = (
        f"{format_mean_std(b['mean'], b['std'])}, n={b['n']}" if b["n"] > 1
        else f"{format_value(b['mean'])}, n=1"
    )
    others = [a for a in order[1:] if rows[a]["n"]]
    if not others:
        return f"{best} is the only activation with results on {label} ({what} {head_stats}){tail}."
    if max(rows[a]["n_pairs"] for a in others) < 2:
        return (
            f"{best} has the best mean {what} on {label} ({head_stats}), but with fewer than "
            f"2 paired seeds no test is possible: no winner can be declared "
            f"(run more seeds){tail}."
        )
    tied = [a for a in others if rows[a]["mean_diff"] == 0 and rows[a]["p_value"] == 1.0]
    if len(tied) == len(others):
        return (
            f"all {len(others) + 1} activations tie on {label} ({what} {head_stats}, identical "
            f"on every paired seed): no winner{tail}."
        )
    better = [a for a in others if rows[a]["distinguishable"]]
    same = [a for a in others if not rows[a]["distinguishable"]]

    def cite(a: str) -> str:
        r = rows[a]
        p = r["p_holm"] if math.isfinite(r["p_holm"]) else r["p_value"]
        return f"{a} ({_fmt_p(p)}, n={r['n_pairs']})"

    method = f"paired t-test over seeds, Holm-adjusted, α={alpha:g}"
    if not same:
        return (
            f"{best} is best on {label} by {what} ({head_stats}): better than every other "
            f"activation: {', '.join(cite(a) for a in better)} [{method}]{tail}."
        )
    need = _seeds_text(best, others[0], rows[others[0]], alpha)
    if not better:
        return (
            f"{best} has the best mean {what} on {label} ({head_stats}) but is not "
            f"distinguishable from {', '.join(cite(a) for a in same)}: no winner at this "
            f"number of seeds [{method}]{tail}.{need}"
        )
    return (
        f"{best} has the best mean {what} on {label} ({head_stats}); better than "
        f"{', '.join(cite(a) for a in better)}; not distinguishable from "
        f"{', '.join(cite(a) for a in same)} [{method}]{tail}.{need}"
    )


def seeds_text(best: str, other: str, row: dict[str, Any] | pd.Series,
               alpha: float = ALPHA) -> str:
    """How many seeds would separate ``best`` from ``other`` (a summary row of ``other``),
    as a sentence; empty when the two are already distinguishable or no test was made."""
    n = row["seeds_needed"]
    if row["distinguishable"] is True or n is None or (isinstance(n, float) and math.isnan(n)):
        return ""
    d, k = row["effect_size"], int(row["n_pairs"])
    if n == math.inf and not (isinstance(d, float) and math.isfinite(d) and d != 0):
        return (f"{best} and {other} gave the same result on every seed: no number of seeds "
                "would separate them.")
    where = f"(observed d_z = {format_value(d, 2)} over {k} seeds)"
    if n == math.inf:
        return (f"Separating {best} from {other} {where} would take more than "
                f"{MAX_SEEDS} seeds: the difference is negligible at this noise.")
    level = row.get("seeds_alpha", alpha)
    level = alpha if level is None or not math.isfinite(level) else float(level)
    at = f"α={alpha:g}" if abs(level - alpha) < 1e-12 else f"Holm's level α/{alpha / level:.0f}"
    text = (f"Separating {best} from {other} {where} would take about {int(n)} seeds for "
            f"{POWER:.0%} power (paired t-test at {at}).")
    if n <= k:
        text += (f" This study has {k}: at {POWER:.0%} power a difference of this size is "
                 "missed one time in five, so a few more seeds should settle it.")
    return text


def _seeds_text(best: str, other: str, row: dict[str, Any], alpha: float) -> str:
    text = seeds_text(best, other, row, alpha)
    return f" {text}" if text else ""


class Statements(dict):
    """``{setting: confidence statement}``. A setting is its task id (``"mlp/digits"``),
    followed by the configuration keys that differ when the task has several settings
    (``"mlp/digits lr=0.01"``); asking for the bare task id then says which there are."""

    def __missing__(self, key: str) -> str:
        matches = [s for s in self if s.startswith(f"{key} ")]
        if matches:
            raise KeyError(
                f"{key} has {len(matches)} settings in this table: "
                f"{', '.join(repr(m) for m in matches)}; give one of them"
            )
        raise KeyError(f"no setting {key!r}; the table has: {', '.join(map(repr, self))}")


def statements(summary: pd.DataFrame) -> Statements:
    """``{setting: confidence statement}`` from a :func:`summarize` table."""
    return Statements(
        {str(s): str(g["statement"].iloc[0]) for s, g in summary.groupby("setting", sort=True)}
    )
