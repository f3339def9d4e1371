"""The report's analysis section: gradient flow through depth, the init gain and edge of
chaos table, and the numerical stability audit, for the activations studied.

Measured when the report is written (the study's own ``gradflow`` runs are shown too when
the database has them). Every part degrades to a sentence when its analysis fails for an
activation (e.g. a user formula without an edge of chaos).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from actlab.catalog import Activation
from actlab.report import blocks as B

GRADFLOW_DEPTHS = (5, 10, 20, 50)


@dataclass
class _Flow:
    """Gradient flow of one activation: ratio per depth and the deepest net's norms."""

    name: str
    source: str
    ratio: dict[int, float]
    factor: float
    grad_norm: np.ndarray


def _from_study(study: Any) -> tuple[dict[str, _Flow], str]:
    """Gradient flow stored by the study's ``gradflow`` runs (geometric mean over seeds)."""
    if study is None:
        return {}, ""
    runs = [r for r in study.runs if r.spec.task == "gradflow" and r.result.status == "ok"]
    by_act: dict[str, list[Any]] = {}
    for r in runs:
        by_act.setdefault(r.spec.activation, []).append(r)
    out: dict[str, _Flow] = {}
    cfg: dict[str, Any] = {}
    for key, rs in by_act.items():
        logs: dict[int, list[float]] = {}
        norms: list[np.ndarray] = []
        factors: list[float] = []
        for r in rs:
            a = r.result.artifacts
            depths, lr = a.get("depths") or [], a.get("log10_ratio") or []
            for d, v in zip(depths, lr, strict=False):
                if isinstance(v, int | float):
                    logs.setdefault(int(d), []).append(float(v))
            if depths and a.get("grad_norm"):
                g = np.asarray(a["grad_norm"][int(np.argmax(depths))], dtype=float)
                norms.append(np.log10(np.maximum(g, 1e-300)))
                factors.append(float(a["per_layer_factor"][int(np.argmax(depths))]))
            cfg = a.get("config") or cfg
        if not logs or not norms:
            continue
        out[key] = _Flow(
            name=key, source=f"study, {len(rs)} seed(s)",
            ratio={d: 10 ** float(np.mean(v)) for d, v in logs.items()},
            factor=float(np.exp(np.mean(np.log(np.maximum(factors, 1e-300))))),
            grad_norm=10 ** np.mean(np.stack(norms), axis=0),
        )
    what = ""
    if out:
        what = f"width {cfg.get('width', '?')}, init {cfg.get('init', '?')}"
    return out, what


def _live(act: Activation, depths: Sequence[int]) -> _Flow:
    from actlab.analysis.gradflow import gradient_flow

    ratio, deepest = {}, None
    for d in depths:
        deepest = gradient_flow(act, d, width=LIVE_WIDTH, seeds=LIVE_SEEDS)
        ratio[d] = deepest.ratio
    assert deepest is not None
    return _Flow(act.name, f"measured now, {LIVE_SEEDS} seeds", ratio,
                 deepest.per_layer_factor, np.asarray(deepest.grad_norm))


GAIN_SIGMA_B2 = (0.0, 0.1)
"""Bias variances at which the report gives the critical weight variance (edge of chaos)."""
LIVE_WIDTH = 128
LIVE_SEEDS = 2


def _ratio_cell(ratio: float | None) -> Any:
    if ratio is None:
        return "-"
    cls = "bad" if ratio < 1e-3 or ratio > 1e3 else ("warn" if ratio < 0.1 or ratio > 10 else "")
    return B.Cell(B.fmt(ratio, 3), cls)


def _gradflow_blocks(
    acts: Sequence[Activation], depths: Sequence[int], study: Any = None
) -> list[B.Block]:
    stored, setup = _from_study(study)
    flows, failed = [], []
    for act in acts:
        if act.key in stored:
            f = stored[act.key]
            f.name = act.name
            flows.append(f)
            continue
        try:
            flows.append(_live(act, depths))
        except (ValueError, RuntimeError) as exc:
            failed.append(f"{act.name}: {exc}")
    all_depths = sorted({d for f in flows for d in f.ratio}) or list(depths)
    rows = [[f.name, *(_ratio_cell(f.ratio.get(d)) for d in all_depths), B.fmt(f.factor, 3),
             f.source] for f in flows]
    intro = (
        "A deep MLP at initialisation with PyTorch's default nn.Linear init and a real "
        "forward and backward pass on a random batch (float64): the norm of the loss "
        "gradient with respect to the first hidden layer's weights divided by the last "
        "layer's. Far below 1: vanishing gradients (the article's point about sigmoid); far "
        "above 1: exploding. The per-layer factor is that ratio's geometric mean per layer "
        "in the deepest network."
    )
    if setup:
        intro += f" Rows from the study use its gradflow task ({setup})."
    if any(f.source.startswith("measured") for f in flows):
        intro += f" Rows measured now use width {LIVE_WIDTH}."
    blocks: list[B.Block] = [
        B.p(intro),
        B.table(["activation", *(f"depth {d}" for d in all_depths), "per-layer factor",
                 "source"], rows, numeric=set(range(1, len(all_depths) + 2)),
                caption="First-layer / last-layer gradient norm"),
    ]
    if flows:
        from actlab.report.study_figures import plot_layer_norms

        deepest = max(len(f.grad_norm) for f in flows)
        blocks.append(B.figure(
            plot_layer_norms({f.name: f.grad_norm for f in flows}),
            alt="gradient norm per layer",
            caption=f"Gradient norm per layer (log scale) in the deepest network ({deepest} "
            "layers) at initialisation; layer 1 is next to the input.", dpi=72,
        ))
    if failed:
        blocks.append(B.note("Gradient flow could not be computed for " + "; ".join(failed)))
    return blocks


def _gain_blocks(acts: Sequence[Activation]) -> list[B.Block]:
    from actlab.analysis.gain import gain_table
    from actlab.analysis.propagation import fixed_point

    table: pd.DataFrame = gain_table(acts, sigma_b2=GAIN_SIGMA_B2)
    crit = [c for c in table.columns if str(c).startswith("crit")]
    moments = [c for c in ("E[f(z)]", "E[f(z)^2]", "E[f'(z)^2]") if c in table.columns]
    header = ["activation", "gain", "torch gain", *(_short(c) for c in moments),
              *(_short(c) for c in crit), "χ1 at He init", "phase"]
    rows, notes = [], []
    for (_, r), act in zip(table.iterrows(), acts, strict=True):
        row: list[Any] = [r["activation"], B.fmt(r.get("gain")), B.fmt(r.get("torch gain"))]
        row += [B.fmt(0.0 if abs(float(r[c])) < 1e-12 else r[c]) for c in moments]
        row += [B.fmt(r[c]) for c in crit]
        try:  # where He init (sigma_w^2 = 2, sigma_b^2 = 0) puts the network
            fp = fixed_point(act, 2.0, 0.0)
            row += [B.fmt(fp.chi_1, 3), fp.phase]
        except (ValueError, ZeroDivisionError):
            row += ["-", "-"]
        if isinstance(r.get("error"), str) and r["error"]:
            notes.append(f"{r['activation']}: {r['error']}")
        rows.append(row)
    extra = [B.note("; ".join(notes))] if notes else []
    return [
        B.p(
            "gain: the weight scale g with Var(W) = g^2 / fan_in that preserves the second "
            "moment, g = 1/sqrt(E[f(z)^2]) for z ~ N(0, 1) (Gauss-Hermite quadrature); PyTorch's "
            "calculate_gain where it has one. Edge of chaos (Poole et al. 2016, Schoenholz et "
            "al. 2017): the weight variance sigma_w^2 at which chi_1 = sigma_w^2 E[f'(sqrt(q*) "
            "z)^2] = 1 for a bias variance sigma_b^2 ('-': none). chi_1 and phase "
            "at He init (sigma_w^2 = 2, sigma_b^2 = 0): chi_1 < 1 ordered (gradients vanish), "
            "> 1 chaotic (they explode)."
        ),
        B.table(header, rows, numeric=set(range(1, len(header) - 1)),
                caption="σw²*: the critical weight variance (edge of chaos) at the bias "
                "variance σb² shown; '-' where there is none"),
        *extra,
    ]


def _short(col: str) -> str:
    """``crit sigma_w^2 (sigma_b^2=0.1)`` -> ``σw²* (σb²=0.1)``; ``E[f(z)^2]`` -> ``E[f(z)²]``."""
    out = col.replace("crit sigma_w^2", "σw²*").replace("sigma_b^2", "σb²")
    return out.replace("^2", "²")


def _audit_blocks(acts: Sequence[Activation]) -> list[B.Block]:
    from actlab.analysis.audit import audit

    rows, problems = [], []
    for act in acts:
        try:
            res = audit(act)
        except (ValueError, RuntimeError) as exc:
            problems.append(f"{act.name}: {exc}")
            continue
        verdicts = res.verdicts()
        rows.append([
            act.name,
            B.Cell("pass", "good") if res.passed else B.Cell("FAIL", "bad"),
            *(B.Cell("ok", "good") if verdicts.get(d, True) else B.Cell("fail", "bad")
              for d in AUDIT_DTYPES),
            _audit_worst(res.frame),
        ])
    blocks = [
        B.p(
            "Forward and derivative in float64, float32, float16 and bfloat16 over inputs up "
            "to ±1e4, against a float64 or mpmath reference: the largest error (in units of "
            "the dtype's epsilon) and NaN/inf where the true value is finite. An activation "
            "fails when any judged row exceeds its tolerance or produces NaN/inf."
        ),
        B.table(["activation", "audit", *AUDIT_DTYPES, "worst case"], rows),
    ]
    if problems:
        blocks.append(B.note("The audit could not run for " + "; ".join(problems)))
    return blocks


AUDIT_DTYPES = ("float64", "float32", "float16", "bfloat16")


def _audit_worst(frame: pd.DataFrame) -> str:
    """The failing rows, or else the judged row with the largest error."""
    judged = frame[frame["judged"]]
    if judged.empty:
        return ""
    bad = judged[~judged["passed"]]
    rows = bad if len(bad) else judged.loc[[judged["error_in_eps"].astype(float).idxmax()]]
    parts = []
    for _, r in rows.head(3).iterrows():
        text = f"{r['dtype']} {r['quantity']}: {B.fmt(r['error_in_eps'], 3)} eps"
        if r["nan"] or r["inf"]:
            text += f", {int(r['nan'])} NaN, {int(r['inf'])} inf"
        text += f" at x={B.fmt(r['worst_x'], 4)}"
        parts.append(text)
    more = len(rows) - 3
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def section(
    acts: Sequence[Activation], study: Any = None, depths: Sequence[int] = GRADFLOW_DEPTHS
) -> B.Section:
    """Gradient flow, gain / edge of chaos and audit, as three sub-sections."""
    children = []
    parts = (
        ("analysis-gradflow", "Gradient flow through depth",
         lambda: _gradflow_blocks(acts, sorted(depths), study)),
        ("analysis-gain", "Initialisation gain and edge of chaos", lambda: _gain_blocks(acts)),
        ("analysis-audit", "Numerical stability audit", lambda: _audit_blocks(acts)),
    )
    for sid, title, build in parts:
        try:
            blocks = build()
        except ImportError as exc:
            blocks = [B.absent(f"Not available in this installation ({exc.name or exc}).")]
        children.append(B.Section(sid, title, blocks))
    intro = B.p(
        "How each activation behaves in a deep network at initialisation, and whether its "
        "implementation is numerically safe; measured when this report was written."
    )
    return B.Section("analysis", "Gradient flow, initialisation and stability", [intro], children)
