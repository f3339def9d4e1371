"""Print the Fashion-MNIST reference table: the article's MLP and CNN, every default activation.

Usage (from the repository root; runs are stored, so an interrupted run resumes)::

    .venv/bin/python benchmarks/fashion_reference.py --db fashion-ref.sqlite
    .venv/bin/python benchmarks/fashion_reference.py --db fashion-ref.sqlite --short
    .venv/bin/python benchmarks/fashion_reference.py --db r.sqlite --tasks cnn -a relu --seeds 1

Full recipes (``mlp/fashion_mnist``: the article's ``train_with_activation``, 784-256-128-10,
Adam 1e-3, batch 128, 5 epochs; ``cnn/fashion_mnist``: the article's CNN, 3 epochs), each on
the activations the default study gives that architecture (the article's eight on the MLP,
its four CNN activations on the CNN), 3 seeds by default. The table: test accuracy (mean ±
std over seeds), the mean wall time and CPU time per run (CPU seconds of the worker, the
better measure of cost on a shared machine), and for ReLU the check
against the reference points of the dataset's own benchmark table (its README: "MLP
256-128-100: 88.33 %", "2 Conv+pooling: 91.6 %"): within 1.5 points.

``--short`` also runs the default study's shorter schedules (``.../short`` presets) and
compares the rankings: each activation's mean under both, its rank under both, and
Kendall's tau between them.
"""

from __future__ import annotations

import argparse

from scipy import stats as sps

from actlab.experiments.base import RunSpec
from actlab.experiments.store import ResultsStore, load_results
from actlab.experiments.study import Study, run_study

REFERENCE = {"mlp": ("MLP 256-128-100", 0.8833), "cnn": ("2 Conv+pooling", 0.916)}
TOLERANCE = 0.015


def _split(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def _table(df, task: str, label: str) -> dict[str, float]:
    rows = df[(df["task"] == task) & (df["status"] == "ok")]
    print(f"\n{label}\n")
    print("| activation | test accuracy % (mean ± std) | seeds | wall s / run | CPU s / run |")
    print("|---|---|---|---|---|")
    means = {}
    order = rows.groupby("activation")["value"].mean().sort_values(ascending=False)
    for act in order.index:
        g = rows[rows["activation"] == act]
        acc = 100 * g["value"].to_numpy(dtype=float)
        std = f" ± {acc.std(ddof=1):.2f}" if len(acc) > 1 else ""
        means[act] = float(acc.mean())
        cpu = g["cpu_time"].mean() if g["cpu_time"].notna().any() else float("nan")
        print(f"| {act} | {acc.mean():.2f}{std} | {len(acc)} | {g['wall_time'].mean():.1f} | "
              f"{cpu:.1f} |")
    return means


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db", default="fashion-reference.sqlite")
    p.add_argument("--tasks", default="mlp,cnn", help="mlp, cnn or both (comma-separated)")
    p.add_argument("-a", "--activations", default=None,
                   help="comma-separated (default: the default study's set per architecture)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--short", action="store_true", help="also run and compare the short schedules")
    a = p.parse_args()
    archs = _split(a.tasks) or []
    bad = [t for t in archs if t not in REFERENCE]
    if bad:
        raise SystemExit(f"--tasks {bad[0]!r} is not known; use mlp, cnn or both")
    acts = _split(a.activations)
    ids = [f"{t}/fashion_mnist" for t in archs]
    if a.short:
        ids += [f"{t}/fashion_mnist/short" for t in archs]
    study = Study(tasks=ids, activations=acts, seeds=a.seeds)
    print(run_study(study, a.db, workers=a.workers).line())
    df = load_results(a.db)
    with ResultsStore(a.db) as store:  # CPU seconds per run (the tasks record them)
        cpu = {r.key: r.result.artifacts.get("cpu_time") for r in store.runs()}
    df["cpu_time"] = df["key"].map(cpu).astype(float)
    hashes = {}
    for task_id, (task, cfg) in zip(ids, study.resolved_tasks(), strict=True):
        hashes[task_id] = RunSpec(task.name, "", 0, cfg).config_hash
    for task in archs:
        name, ref = REFERENCE[task]
        full = df[df["config_hash"] == hashes[f"{task}/fashion_mnist"]]
        means = _table(full, task, f"{task}/fashion_mnist, full recipe")
        if "relu" in means:
            d = means["relu"] - 100 * ref
            ok = abs(d) <= 100 * TOLERANCE
            print(f"\nReLU {means['relu']:.2f} % vs the dataset's benchmark table, {name}: "
                  f"{100 * ref:.2f} % ({d:+.2f} points; {'within' if ok else 'NOT within'} "
                  f"{100 * TOLERANCE:.1f})")
        if not a.short:
            continue
        short = df[df["config_hash"] == hashes[f"{task}/fashion_mnist/short"]]
        smeans = _table(short, task, f"{task}/fashion_mnist/short")
        common = [x for x in means if x in smeans]
        if len(common) < 2:
            continue
        rank_full = {x: r for r, x in enumerate(sorted(common, key=lambda x: -means[x]), 1)}
        rank_short = {x: r for r, x in enumerate(sorted(common, key=lambda x: -smeans[x]), 1)}
        print("\n| activation | full % | rank | short % | rank |\n|---|---|---|---|---|")
        for x in sorted(common, key=lambda x: rank_full[x]):
            print(f"| {x} | {means[x]:.2f} | {rank_full[x]} | {smeans[x]:.2f} | {rank_short[x]} |")
        tau = sps.kendalltau([means[x] for x in common], [smeans[x] for x in common])
        print(f"\nKendall's tau between the two rankings: {tau.statistic:.2f} "
              f"(p={tau.pvalue:.2f}, {len(common)} activations)")

if __name__ == "__main__":
    main()
