"""The report's sections, built from a study database and from live measurements.

Each function returns a :class:`~actlab.report.blocks.Section` (or ``None`` when it has
nothing to show); :mod:`actlab.report.html` puts them in order and renders the template.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from actlab.catalog import Activation
from actlab.recommend import (
    ARCHITECTURES,
    BASELINE,
    COST_TASKS,
    DIAGNOSTIC_TASKS,
    TASKS,
    StudyRecommendation,
    recommend,
    recommend_from_study,
)
from actlab.report import blocks as B
from actlab.report.study_figures import plot_bars, plot_depth, plot_seed_curves

# ----------------------------------------------------------------------------- data


@dataclass
class StudyData:
    """A study database, read once: runs table, statistics, decoded runs."""

    db: Path
    df: pd.DataFrame
    summary: pd.DataFrame
    runs: list[Any]
    activations: list[str] = field(default_factory=list)

    def settings(self, tasks: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> list:
        """``(label, summary rows)`` per setting, optionally only some tasks."""
        s = self.summary
        if tasks is not None:
            s = s[s["task"].isin(tasks)]
        if exclude:
            s = s[~s["task"].isin(exclude)]
        return [(str(k), g) for k, g in s.groupby("setting", sort=True)]

    def runs_of(self, rows: pd.DataFrame) -> list[Any]:
        """Stored runs of a setting (its task, dataset and config hash)."""
        first = rows.iloc[0]
        ds = first["dataset"] if isinstance(first["dataset"], str) and first["dataset"] else None
        return [
            r for r in self.runs
            if r.spec.task == first["task"] and r.dataset == ds
            and r.spec.config_hash == first["config_hash"]
        ]


def load_study(db: str | Path) -> StudyData:
    """Read a study database (runs, ``summarize`` statistics and curves)."""
    from actlab.experiments.store import ResultsStore, load_results
    from actlab.recommend import summarize_runs

    df = load_results(db)
    with ResultsStore(db, create=False) as store:
        runs = store.runs()
    summary = summarize_runs(df)
    acts = list(dict.fromkeys(df["activation"])) if not df.empty else []
    return StudyData(Path(db), df, summary, runs, acts)


def study_recommendation(study: StudyData) -> StudyRecommendation | None:
    if study.df.empty:
        return None
    return recommend_from_study(study.db)


# ----------------------------------------------------------------------------- first screen


def studied_sentence(study: StudyData | None, acts: Sequence[Activation]) -> str:
    names = ", ".join(a.name for a in acts)
    if study is None:
        return (
            f"Activations described: {names}. No study database was given, so there are no "
            "training results; the analysis below was measured when this report was written."
        )
    df = study.df
    if df.empty:
        return f"The study database {study.db} holds no runs yet. Activations described: {names}."
    tasks = list(dict.fromkeys(df["task_id"]))
    seeds = df.groupby(["task_id", "activation", "config_hash"])["seed"].nunique()
    counts = df["status"].value_counts().to_dict()
    status = ", ".join(f"{counts[s]} {s}" for s in ("ok", "diverged", "failed") if s in counts)
    seed_text = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    return (
        f"Studied: {len(study.activations)} activations ({', '.join(study.activations)}) on "
        f"{len(tasks)} task(s) ({', '.join(tasks)}) with {seed_text} seed(s) each; "
        f"{len(df)} runs: {status}."
    )


FRAMEWORK_LINE = (
    "Decision framework (the seed article): ReLU for CNNs, GELU for transformers, tanh with "
    "sigmoid gates for RNNs; output sigmoid (binary), softmax (multi-class), linear "
    "(regression), tanh (outputs in [-1, 1]); Leaky ReLU or ELU when more than 10% of units die."
)


def headline(study: StudyData | None, rec: StudyRecommendation | None) -> dict[str, Any]:
    """The first screen's recommendation box: what the evidence covers, one answer per
    architecture studied, and a warning count."""
    if rec is None or not rec.tasks:
        why = "no study results" if study is None else "no finished quality runs in the study"
        return {
            "lines": [f"From the decision framework ({why}):", FRAMEWORK_LINE],
            "points": [],
            "warning": "",
        }
    warning = ""
    if rec.warnings:
        warning = f"{len(rec.warnings)} warning(s): see the recommendation section."
    if not rec.answers:
        items = []
        for t in rec.tasks:
            if t.best is None:
                items.append(f"{t.setting}: no finished runs.")
                continue
            items.append(f"{t.setting}: {t.best}, {t.metric_text}; {t.confidence_text}.")
        return {"lines": [rec.coverage, rec.summary], "points": items, "warning": warning}
    points = [f"{a.name}: {a.framework_text}" for a in rec.answers]
    if any(a.seeds for a in rec.answers):
        points.append("Ties: the recommendation section gives the seeds that would separate "
                      "the best from the runner-up, and the command that adds them.")
    return {
        "lines": [rec.coverage, *(a.line for a in rec.answers)],
        "points": points,
        "warning": warning,
    }


# ----------------------------------------------------------------------------- recommendation


def _framework_blocks() -> list[B.Block]:
    rows = []
    for arch in ARCHITECTURES:
        r = recommend(arch, "multiclass")
        hidden = r.hidden + (f" (gates: {r.gate})" if r.gate else "")
        rows.append([arch, hidden, r.reasons[0], r.source])
    out_rows = []
    for task in TASKS:
        r = recommend("mlp", task)
        out_rows.append([task, r.output, r.reasons[-1], r.watch_for[-1]])
    return [
        B.heading("Decision framework"),
        B.p(FRAMEWORK_LINE),
        B.table(["architecture", "hidden layers", "why", "source"], rows,
                caption="Hidden layers by architecture"),
        B.table(["task", "output layer", "why", "watch for"], out_rows,
                caption="Output layer by task"),
        B.p(
            "More than 10% dead units (actlab.DeadUnitMonitor, or the dead-unit curves below) "
            "switch a ReLU network to Leaky ReLU; ELU is the smooth alternative. "
            "`actlab recommend --arch ARCH --task TASK [--dead-fraction F]` prints this with "
            "what to watch for."
        ),
    ]


def _answers_table(rec: StudyRecommendation) -> B.Block:
    rows = []
    for a in rec.answers:
        conf_cls = {"clear": "good", "tied": "warn", "mixed": "warn"}.get(a.confidence, "bad")
        verdict_cls = {"agrees": "good", "differs": "warn"}.get(a.verdict, "")
        rows.append([
            a.name, a.answer or "-", B.Cell(a.confidence, conf_cls), a.best or "-",
            a.framework, B.Cell(a.verdict, verdict_cls),
            f"{a.time_ratio:.2f}x" if a.time_ratio is not None else "-",
            f"{a.memory_ratio:.2f}x" if a.memory_ratio is not None else "not measured",
            ", ".join(a.settings),
        ])
    return B.table(
        ["architecture", "use", "confidence", "best on the evidence", "framework",
         "vs framework", f"time vs {BASELINE}", f"memory vs {BASELINE}", "evidence"],
        rows, numeric={6},
        caption="One answer per architecture, from that architecture's tasks only. With a "
        "tie the framework's choice is kept when the study cannot separate it from the best. "
        "Memory is measured on CUDA runs only.",
    )


def _seeds_table(study: StudyData, rec: StudyRecommendation) -> B.Block | None:
    """Per tie: the seeds a paired t-test would need to separate best and runner-up."""
    rows = []
    for t in rec.tasks:
        if t.confidence != "tied" or t.runner_up is None:
            continue
        r = study.summary[(study.summary["setting"] == t.setting)
                          & (study.summary["activation"] == t.runner_up)]
        if r.empty:
            continue
        r = r.iloc[0]
        need = t.seeds_needed
        need_text = "-" if math.isnan(need) else ("no practical number" if math.isinf(need)
                                                   else str(int(need)))
        rows.append([t.setting, t.best, t.runner_up, B.fmt(r["effect_size"], 2),
                     int(r["n_pairs"]), need_text, t.extend or "-"])
    if not rows:
        return None
    return B.table(
        ["setting", "best", "runner-up", "observed d_z", "seeds now", "seeds needed",
         "command that adds them (finished runs are kept)"],
        rows, numeric={3, 4, 5},
        caption="Seeds a two-sided paired t-test needs to separate the best from the runner-up "
        "at 80% power and the study's α (noncentral t, from the observed mean difference and "
        "its spread over seeds: an estimate, as uncertain as the effect it starts from).",
    )


def schedule_text(config: dict[str, Any], artifacts: dict[str, Any]) -> str:
    """The training schedule of a run, in words (what the report prints per setting)."""
    ds = artifacts.get("dataset") if isinstance(artifacts.get("dataset"), dict) else None
    if "epochs" in config and ds:
        parts = [f"{config.get('epochs')} epoch(s) on {ds.get('train')} training images"]
        if config.get("train_size") is not None:
            parts[0] += " (a fixed subset)"
        parts.append(f"scored on {ds.get('test')} test images")
        parts.append(f"batch {config.get('batch')}, {config.get('optimizer')} lr "
                     f"{config.get('lr')}")
        return ", ".join(parts)
    if "steps" in config:
        keys = [k for k in ("batch", "block", "d_model", "n_layer", "d_ff", "lr")
                if k in config]
        return f"{config['steps']} steps, " + ", ".join(f"{k} {config[k]}" for k in keys)
    return ", ".join(f"{k}={v}" for k, v in sorted(config.items()) if v is not None)[:200]


def _schedules_table(study: StudyData, rec: StudyRecommendation) -> B.Block | None:
    rows = []
    for t in rec.tasks:
        srows = study.summary[study.summary["setting"] == t.setting]
        if srows.empty:
            continue
        runs = [r for r in study.runs_of(srows) if r.result.status == "ok"]
        if not runs:
            continue
        run = runs[0]
        seeds = sorted({r.spec.seed for r in runs})
        wall = [r.result.wall_time for r in runs if r.result.wall_time > 0]
        cpu = [float(c) for r in runs
               if isinstance(c := r.result.artifacts.get("cpu_time"), int | float)]
        rows.append([t.setting, t.architecture or "none (diagnostic)",
                     schedule_text(dict(run.spec.config), run.result.artifacts),
                     len(seeds), f"{sum(wall) / len(wall):.1f}" if wall else "-",
                     f"{sum(cpu) / len(cpu):.1f}" if cpu else "-"])
    if not rows:
        return None
    return B.table(["setting", "architecture", "schedule", "seeds", "wall s per run",
                    "CPU s per run"], rows, numeric={3, 4, 5},
                   caption="What each setting ran (the default study uses shorter schedules "
                   "than the article's full recipes; see the README), and its time per run "
                   "(mean over runs; CPU seconds are the cost on a shared machine)")


def recommendation_section(
    study: StudyData | None, rec: StudyRecommendation | None
) -> B.Section:
    blocks: list[B.Block] = []
    if rec is not None:
        blocks.append(B.heading("From your study"))
        blocks.append(B.p(rec.coverage))
        if rec.answers:
            blocks.append(_answers_table(rec))
        for a in rec.answers:
            blocks.append(B.heading(f"{a.name}: {a.answer or 'no answer'}"))
            blocks.append(B.bullets([a.confidence_text[0].upper() + a.confidence_text[1:] + ".",
                                     a.framework_text, *a.cost, *a.reasons, *a.seeds]))
        rows = []
        for t in rec.tasks:
            ci = f"[{B.fmt(t.ci_low)}, {B.fmt(t.ci_high)}]" if t.best else "-"
            conf_cls = {"clear": "good", "tied": "warn"}.get(t.confidence, "bad")
            rows.append([
                t.setting, t.architecture or "-", t.best or "-", t.metric, B.fmt(t.mean),
                B.fmt(t.std), ci, t.n, B.Cell(t.confidence_text, conf_cls),
                f"{t.time_ratio:.2f}x" if t.time_ratio is not None else "-",
            ])
        if rows:
            blocks.append(B.heading("Per task"))
            blocks.append(B.table(
                ["task", "architecture", "best", "metric", "mean", "std", "95% CI", "n",
                 "confidence", f"time vs {BASELINE}"],
                rows, numeric={4, 5, 7, 9},
                caption="Best activation per task (means over seeds; confidence from a paired "
                "t-test against every other activation on the same seeds, Holm-adjusted)",
            ))
        if study is not None:
            seeds = _seeds_table(study, rec)
            if seeds is not None:
                blocks.append(B.heading("How many seeds it takes"))
                blocks.append(seeds)
            sched = _schedules_table(study, rec)
            if sched is not None:
                blocks.append(B.heading("Schedules"))
                blocks.append(sched)
        blocks.append(B.p("Confidence statements:"))
        blocks.append(B.bullets(t.statement for t in rec.tasks))
        if rec.cost:
            blocks.append(B.heading("Cost"))
            blocks.append(B.bullets(rec.cost))
        blocks.append(B.heading("Warnings"))
        blocks.append(B.bullets(rec.warnings) if rec.warnings else B.p("No warnings."))
    elif study is not None:
        blocks.append(B.absent("The study has no finished runs to recommend from."))
    blocks.extend(_framework_blocks())
    return B.Section("recommendation", "Recommendation", blocks)


# ----------------------------------------------------------------------------- per task

CURVE_LABELS = {
    "train_loss": "train loss",
    "test_loss": "test loss",
    "val_loss": "validation loss",
    "test_accuracy": "test accuracy",
    "train_accuracy": "train accuracy",
    "dead_fraction": "dead-unit fraction",
    "epoch_time": "epoch time (s)",
    "loss": "training loss",
}
_LOG_CURVES = {"train_loss", "test_loss", "val_loss"}


def _ranked_table(rows: pd.DataFrame) -> B.Block:
    out, best_rows = [], set()
    hib = bool(rows["higher_is_better"].iloc[0])
    wilcoxon = bool(rows["p_wilcoxon"].notna().any())
    for i, (_, r) in enumerate(rows.iterrows()):
        if r["activation"] == r["best"]:
            best_rows.add(i)
            verdict = B.Cell("best", "good")
        elif r["n"] == 0:
            verdict = B.Cell("no finished run", "bad")
        elif r["distinguishable"] is True:
            verdict = B.Cell("worse than best")
        elif r["n_pairs"] < 2:
            verdict = B.Cell("untested (<2 paired seeds)", "warn")
        else:
            verdict = B.Cell("not distinguishable", "warn")
        n = f"{int(r['n'])}/{int(r['n_runs'])}"
        unstable = [f"{int(r[k])} {w}" for k, w in (("n_diverged", "diverged"),
                                                    ("n_failed", "failed")) if r[k]]
        ci = "-" if pd.isna(r["ci_low"]) else f"{B.fmt(r['ci_low'])} to {B.fmt(r['ci_high'])}"
        row = [
            int(r["rank"]), r["activation"], B.fmt(r["mean"]), B.fmt(r["std"], 2), ci,
            B.Cell(f"{n} ({', '.join(unstable)})", "bad") if unstable else n,
            B.fmt(r["mean_diff"], 3), B.fmt(r["p_holm"], 2),
        ]
        if wilcoxon:
            row.append(B.fmt(r["p_wilcoxon"], 2))
        row += [B.fmt(r["effect_size"], 3), _seeds_cell(r.get("seeds_needed")), verdict]
        out.append(row)
    metric = rows["metric"].iloc[0]
    cols = ["#", "activation", "mean", "std", "95% CI", "n ok/runs", "diff to best",
            "p (paired t, Holm)"]
    if wilcoxon:
        cols.append("p (Wilcoxon)")
    cols += ["effect d_z", "seeds to separate", "verdict"]
    return B.table(
        cols, out, numeric={0, 2, 3, 5, 6, 7, 8, 9, 10} - ({10} if not wilcoxon else set()),
        highlight=best_rows,
        caption=f"{metric} ({'higher' if hib else 'lower'} is better) over seeds. 'diff to best' "
        "and the effect size d_z are positive when the best is ahead; p-values are two-sided"
        + ("" if wilcoxon else "; the Wilcoxon test needs at least 6 seeds") + ". 'seeds to "
        "separate': for a 'not distinguishable' verdict, the seeds a paired t-test would need "
        "to separate it from the best at 80% power (from the observed d_z).",
    )


def _seeds_cell(n: Any) -> str:
    try:
        n = float(n)
    except (TypeError, ValueError):
        return "-"
    if math.isnan(n):
        return "-"
    return "no practical number" if math.isinf(n) else str(int(n))


def _curves(runs: list[Any]) -> dict[str, dict[str, list[list[float]]]]:
    """``curve name -> activation -> [per-seed curve]`` (ok and diverged runs)."""
    out: dict[str, dict[str, list[list[float]]]] = {}
    for run in runs:
        if run.result.status == "failed":
            continue
        for name, values in run.result.curves.items():
            if isinstance(values, list) and values and all(
                isinstance(v, int | float) or v is None for v in values
            ):
                vals = [math.nan if v is None else float(v) for v in values]
                out.setdefault(name, {}).setdefault(run.spec.activation, []).append(vals)
    return out


def _every(runs: list[Any]) -> int | None:
    """Steps between curve values when a task keeps a loss every k steps (``loss_every``)."""
    for run in runs:
        k = run.result.artifacts.get("loss_every")
        if isinstance(k, int | float) and k > 0:
            return int(k)
    return None


def _curve_figures(label: str, runs: list[Any]) -> list[B.Block]:
    curves = _curves(runs)
    if not curves:
        return [B.absent("No per-epoch curves were recorded for this task."),
                _wall_time_block(label, runs)]
    blocks: list[B.Block] = []
    training = [k for k in ("loss", "train_loss", "test_loss", "val_loss", "train_accuracy",
                            "test_accuracy") if k in curves]
    others = [k for k in curves if k not in training and k not in {"dead_fraction", "epoch_time"}]
    every = _every(runs)
    xlabel = "epoch" if every is None else "optimisation step"
    for name in training + others:
        what = CURVE_LABELS.get(name, name)
        blocks.append(B.figure(
            plot_seed_curves(curves[name], what, title=f"{label}: {what}",
                             logy=name in _LOG_CURVES or name == "loss", xlabel=xlabel,
                             xstep=every or 1),
            alt=f"{label} {name} per {xlabel}",
            caption=f"{what} per {xlabel}: mean over seeds, band ±1 std.",
            dpi=64,
        ))
    if "dead_fraction" in curves:
        blocks.append(B.figure(
            plot_seed_curves(curves["dead_fraction"], "dead-unit fraction",
                             title=f"{label}: dead units over training"),
            alt=f"{label} dead-unit fraction per epoch",
            caption="Fraction of hidden units that never fired over an epoch (mean over seeds, "
            "band ±1 std); above 10% the framework switches ReLU to Leaky ReLU.",
            dpi=64,
        ))
    blocks.append(_wall_time_block(label, runs))
    out = [B.figures(b for b in blocks if b.kind == "figure")]
    if "dead_fraction" not in curves:
        out.append(B.absent("Dead-unit fraction was not recorded for this task."))
    return out


def _wall_time_block(label: str, runs: list[Any]) -> B.Block:
    times: dict[str, list[float]] = {}
    for run in runs:
        if run.result.status == "ok" and run.result.wall_time > 0:
            times.setdefault(run.spec.activation, []).append(run.result.wall_time)
    if not times:
        return B.absent("No wall times recorded.")
    return B.figure(
        plot_bars(times, "wall time per run (s)", title=f"{label}: wall time"),
        alt=f"{label} wall time per activation",
        caption="Wall time of a whole run (training and evaluation), mean over seeds ±1 std; "
        "on a shared machine these times are noisy.",
        dpi=64,
    )


def task_section(study: StudyData, label: str, rows: pd.DataFrame) -> B.Section:
    runs = study.runs_of(rows)
    first = rows.iloc[0]
    cfg = runs[0].spec.config if runs else {}
    blocks: list[B.Block] = []
    desc = _task_description(str(first["task"]))
    if desc:
        blocks.append(B.p(f"Task: {desc}."))
    blocks += [B.p(str(first["statement"])), _ranked_table(rows)]
    if cfg:
        blocks.append(B.kv([("configuration", json.dumps(dict(cfg), sort_keys=True, default=str))]))
    blocks.append(B.heading("Training curves, dead units and wall time"))
    blocks.extend(_curve_figures(label, runs))
    extra = _task_extras(first["task"], label, runs)
    blocks.extend(extra)
    title = label + TASK_TITLES.get(str(first["task"]), "")
    return B.Section(f"task-{B.slug(label)}", title, blocks)


TASK_TITLES = {"xor": ": decision boundaries", "depth": ": the depth experiment"}


def _task_description(task: str) -> str:
    from actlab.experiments.base import TASKS

    t = TASKS.get(task)
    return t.description if t is not None else ""


def _task_extras(task: str, label: str, runs: list[Any]) -> list[B.Block]:
    """Task-specific figures: XOR decision boundaries, accuracy against depth."""
    ok = [r for r in runs if r.result.status == "ok"]
    if task == "xor":
        return _xor_blocks(ok)
    if task == "depth":
        return _depth_blocks(ok)
    return []


def _xor_blocks(ok: list[Any]) -> list[B.Block]:
    try:
        from actlab.report.task_figures import plot_xor_boundaries
    except ImportError:
        return [B.absent("XOR decision boundaries: the figure module is not available.")]
    if not ok:
        return [B.absent("No finished XOR run to draw.")]
    try:
        fig = plot_xor_boundaries(ok)
    except (KeyError, ValueError) as exc:
        return [B.absent(f"XOR decision boundaries could not be drawn: {exc}")]
    return [B.heading("Decision boundaries"), B.figure(
        fig, alt="XOR decision boundaries per activation",
        caption="p(y = 1) learned on the four XOR points, per activation (first seed); the "
        "black line is the 0.5 boundary. With the identity (a linear network) no boundary "
        "can separate the classes.", dpi=64,
    )]


def _depth_blocks(ok: list[Any]) -> list[B.Block]:
    by_act: dict[str, dict[int, list[float]]] = {}
    for run in ok:
        arts = run.result.artifacts
        depths, accs = arts.get("depths"), arts.get("test_accuracy")
        if not isinstance(depths, list) or not isinstance(accs, list):
            continue
        for d, a in zip(depths, accs, strict=False):
            if isinstance(a, int | float) and math.isfinite(a):
                by_act.setdefault(run.spec.activation, {}).setdefault(int(d), []).append(float(a))
    if not by_act:
        return [B.absent("The depth runs hold no per-depth accuracies.")]
    depths = sorted({d for v in by_act.values() for d in v})
    rows = []
    for act, vals in by_act.items():
        rows.append([act, *(B.fmt(sum(vals[d]) / len(vals[d])) if d in vals else "-"
                            for d in depths)])
    return [
        B.heading("Accuracy against depth"),
        B.figure(plot_depth(by_act), alt="test accuracy against depth per activation",
                 caption="Test accuracy of MLPs with 2 to 30 hidden layers (no normalisation or "
                 "residual connections), mean over seeds ±1 std; a diverged depth counts at "
                 "chance accuracy.", dpi=64),
        B.table(["activation", *(f"{d} layers" for d in depths)], rows,
                numeric=set(range(1, len(depths) + 1)),
                caption="Mean test accuracy over seeds per depth"),
    ]


def study_sections(study: StudyData) -> list[B.Section]:
    """'Results per task' (one child per quality setting), then the depth experiment."""
    out = []
    settings = study.settings(exclude=COST_TASKS + DIAGNOSTIC_TASKS)
    if settings:
        children = [task_section(study, label, rows) for label, rows in settings]
        intro = B.p(
            "Per task: the activations ranked by the task's metric with mean, standard "
            "deviation and 95% confidence interval over seeds, and a paired test of each "
            "against the best on the same seeds; then the training curves (mean over seeds "
            "with a ±1 std band), the dead-unit fraction over training, and the wall time."
        )
        out.append(B.Section("results", "Results per task", [intro], children))
    return out


# ----------------------------------------------------------------------------- cost


KERNEL_COLUMNS = {
    "name": "activation", "size": "elements", "dtype": "dtype", "path": "fast path",
    "fwd_ratio": "fwd / clone", "fb_ratio": "fwd+bwd / floor",
    "fwd_ratio_native": "native fwd / clone", "fb_ratio_native": "native fwd+bwd / floor",
    "fast_vs_native": "fwd fast / native",
    "fast_vs_best": "fwd fast / better of native and compiled hand formula",
    "fb_fast_vs_best": "fwd+bwd fast / better of native and compiled hand formula",
    "saved_fast": "saved B/elem",
    "saved_composite": "composite saved B/elem",
}
FFN_COLUMNS = {
    "name": "activation", "hidden": "hidden", "fwd_fast": "fwd fused (s)",
    "fwd_composite": "fwd composite (s)", "fwd_native": "fwd native (s)",
    "fwd_speedup": "fwd speed-up", "fb_fast": "f+b fused (s)",
    "fb_composite": "f+b composite (s)", "fb_native": "f+b native (s)",
    "fb_speedup": "f+b speed-up",
}


def _pick(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Known columns renamed for reading, in order; a table without them is kept as is."""
    known = [c for c in columns if c in df.columns]
    if len(known) < 2:
        return df
    return df[known].rename(columns=columns)


def load_bench(bench: Any) -> list[tuple[str, pd.DataFrame]]:
    """Benchmark tables to show, as ``(caption, frame)``.

    Accepts a DataFrame, a ``.csv`` file, or a ``.json`` file: a list of rows, or the
    ``{"kernels": [...], "ffn": [...]}`` that ``actlab bench --json`` and
    ``benchmarks/kernels.py --json`` write.
    """
    if bench is None:
        return []
    kernel_caption = (
        "Element-wise kernels: time of the forward pass over x.clone() (the memory-bandwidth "
        "floor) and of forward+backward over its floor, for actlab's fast path and for the "
        "native PyTorch op, and bytes saved for backward per element"
    )
    if isinstance(bench, pd.DataFrame):
        return [(kernel_caption, _pick(bench, KERNEL_COLUMNS))]
    path = Path(bench)
    if not path.exists():
        raise FileNotFoundError(f"benchmark table {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return [(kernel_caption, _pick(pd.read_csv(path), KERNEL_COLUMNS))]
    if suffix != ".json":
        raise ValueError(f"benchmark table {path}: give a .csv or .json file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"benchmark table {path} is not valid JSON: {exc}") from None
    if isinstance(data, list):
        return [(kernel_caption, _pick(pd.DataFrame(data), KERNEL_COLUMNS))]
    if not isinstance(data, dict) or not any(k in data for k in ("kernels", "ffn", "rows")):
        raise ValueError(
            f"benchmark table {path}: expected a list of rows or an object with 'kernels' "
            "and/or 'ffn' lists (actlab bench --json)"
        )
    out = []
    for key in ("kernels", "rows"):
        if data.get(key):
            out.append((kernel_caption, _pick(pd.DataFrame(data[key]), KERNEL_COLUMNS)))
    if data.get("ffn"):
        out.append(("Transformer FFN block with a fused gate against the unfused composite and "
                    "the native op", _pick(pd.DataFrame(data["ffn"]), FFN_COLUMNS)))
    return out


def _frame_table(df: pd.DataFrame, caption: str) -> B.Block:
    numeric = {i for i, c in enumerate(df.columns) if pd.api.types.is_numeric_dtype(df[c])}
    rows = [[B.fmt(v) if i in numeric else ("" if v is None else str(v))
             for i, v in enumerate(r)] for r in df.itertuples(index=False)]
    return B.table([str(c) for c in df.columns], rows, caption=caption, numeric=numeric)


TIMING_COLUMNS = (("fwd_ms", "forward (ms)"), ("fwd_bwd_ms", "forward+backward (ms)"),
                  ("tokens_per_s", "tokens/s"))


def _timing_table(study: StudyData, rows: pd.DataFrame) -> B.Block:
    """Mean FFN timings per activation and their ratio to ReLU's."""
    first = rows.iloc[0]
    df = study.df
    df = df[(df["task"] == first["task"]) & (df["config_hash"] == first["config_hash"])
            & (df["status"] == "ok")]
    cols = [(c, name) for c, name in TIMING_COLUMNS if c in df.columns]
    if df.empty or not cols:
        return B.absent("No timing metrics recorded.")
    means = df.groupby("activation")[[c for c, _ in cols]].mean()
    base = means.loc[BASELINE] if BASELINE in means.index else None
    out = []
    for act in rows["activation"]:
        if act not in means.index:
            continue
        r = means.loc[act]
        row: list[Any] = [act]
        for c, _ in cols:
            row.append(B.fmt(r[c]))
        for c, _ in cols[:2]:
            ok = base is not None and math.isfinite(base[c]) and base[c] > 0
            row.append(f"{r[c] / base[c]:.2f}x" if ok else "-")
        out.append(row)
    header = ["activation", *(name for _, name in cols),
              *(f"{name.split(' ')[0]} / {BASELINE}" for _, name in cols[:2])]
    return B.table(header, out, numeric=set(range(1, len(header))),
                   caption="Transformer FFN block (Linear, activation, Linear; gated "
                   "activations get the GLU variant with matching parameters): median time per "
                   "call, mean over seeds, and the ratio to ReLU")


def cost_section(study: StudyData | None, bench: Any) -> B.Section | None:
    """FFN timing from the study and the kernel benchmark table, when present."""
    blocks: list[B.Block] = []
    if study is not None:
        for label, rows in study.settings(tasks=COST_TASKS):
            blocks.append(B.heading(label))
            blocks.append(B.p(str(rows["statement"].iloc[0])))
            blocks.append(_ranked_table(rows))
            blocks.append(_timing_table(study, rows))
    tables = load_bench(bench)
    if tables:
        blocks.append(B.heading("Kernel benchmark"))
        blocks.extend(_frame_table(frame, caption) for caption, frame in tables)
    if not blocks:
        return None
    return B.Section("cost", "Cost: FFN timing and kernel benchmark", blocks)


# ----------------------------------------------------------------------------- about


def about_section(study: StudyData | None, db: str | Path | None) -> B.Section:
    blocks: list[B.Block] = []
    if study is None:
        blocks.append(B.p("No study database: this report describes activations only."))
        return B.Section("about", "About these results", blocks)
    df = study.df
    pairs: list[tuple[str, Any]] = [("database", str(db))]
    for col, label in (("host", "hosts"), ("device", "devices"), ("actlab_version", "actlab"),
                       ("torch_version", "torch"), ("python_version", "python")):
        if col in df and not df.empty:
            vals = sorted({str(v) for v in df[col].dropna() if str(v)})
            if vals:
                pairs.append((label, ", ".join(vals)))
    if "finished_at" in df and not df.empty:
        done = sorted(str(v) for v in df["finished_at"].dropna() if str(v))
        if done:
            pairs.append(("runs finished", f"{done[0]} to {done[-1]}"))
    if not df.empty:
        pairs.append(("total run time", f"{df['wall_time'].fillna(0).sum():.1f} s"))
    blocks.append(B.kv(pairs))
    bad = df[df["status"] != "ok"] if not df.empty else df
    if len(bad):
        rows = [[r["task_id"], r["activation"], int(r["seed"]), B.Cell(r["status"], "bad"),
                 "" if pd.isna(r["diverged_step"]) else int(r["diverged_step"]),
                 (r["error"] or "")[:200] if isinstance(r["error"], str) else ""]
                for _, r in bad.iterrows()]
        blocks.append(B.table(["task", "activation", "seed", "status", "diverged at step",
                               "error"], rows, caption="Runs that did not finish ok"))
    else:
        blocks.append(B.p("Every run finished ok."))
    return B.Section("about", "About these results", blocks)


# ----------------------------------------------------------------------------- analysis


def analysis_section(
    acts: Sequence[Activation], study: StudyData | None, depths: Sequence[int] = (5, 10, 20, 50)
) -> B.Section:
    """Gradient flow through depth, the gain / edge-of-chaos table and the stability audit."""
    try:
        from actlab.report import analysis_sections
    except ImportError:
        return B.Section("analysis", "Gradient flow, initialisation and stability", [
            B.absent("The analysis stage is not available in this installation.")
        ])
    return analysis_sections.section(acts, study, depths)
