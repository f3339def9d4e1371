"""Which activation should I use? The decision framework, and a recommendation from a study.

Two entry points:

* :func:`recommend` follows the seed article's decision framework: hidden layers by
  architecture (ReLU for CNNs, GELU for transformers, tanh with sigmoid gates for RNNs),
  the output layer by task (sigmoid, softmax, linear, tanh), and Leaky ReLU / ELU when
  many units die. Every choice comes with its reason and what to watch for.
* :func:`recommend_from_study` reads a study's SQLite database and recommends, per task,
  the best activation *with the confidence in that choice* (from the paired statistics),
  its time cost relative to ReLU, and warnings (dead units, diverged runs, numerical
  instability found by the audit).

Example:
    >>> r = actlab.recommend("cnn", "multiclass")
    >>> r.hidden, r.output
    ('relu', 'softmax')
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

ARCHITECTURES = ("cnn", "transformer", "rnn", "mlp")
TASKS = ("binary", "multiclass", "regression", "bounded")
DEAD_THRESHOLD = 0.10
"""Fraction of dead hidden units above which a ReLU network should switch activation."""

_ARCH_ALIASES = {"lstm": "rnn", "gru": "rnn", "convnet": "cnn", "vit": "transformer"}
_TASK_ALIASES = {"multi-class": "multiclass", "multi_class": "multiclass", "linear": "regression"}


@dataclass(frozen=True)
class Alternative:
    """Another activation worth trying, and when."""

    activation: str
    when: str


@dataclass(frozen=True)
class Recommendation:
    """A recommended hidden and output activation, with reasons.

    Attributes:
        architecture: ``cnn``, ``transformer``, ``rnn`` or ``mlp``.
        task: ``binary``, ``multiclass``, ``regression`` or ``bounded``.
        hidden: activation for the hidden layers (an actlab name).
        output: activation of the output layer (``sigmoid``, ``softmax``, ``identity``
            i.e. linear, or ``tanh``).
        gate: activation of the gates (RNNs only), else ``None``.
        reasons: why each choice was made, one sentence each.
        watch_for: what to monitor or get right when using them.
        alternatives: other activations and when to prefer them.
        source: where the rule comes from (the article, or actlab's own reasoning).
        dead_fraction: the dead-unit fraction the caller reported, if any.
    """

    architecture: str
    task: str
    hidden: str
    output: str
    gate: str | None
    reasons: tuple[str, ...]
    watch_for: tuple[str, ...]
    alternatives: tuple[Alternative, ...]
    source: str
    dead_fraction: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        lines = [
            f"{self.architecture} / {self.task}: hidden {self.hidden}"
            + (f", gates {self.gate}" if self.gate else "")
            + f", output {self.output}",
            f"  source: {self.source}",
            "  why:",
            *(f"    - {r}" for r in self.reasons),
            "  watch for:",
            *(f"    - {w}" for w in self.watch_for),
            "  alternatives:",
            *(f"    - {a.activation}: {a.when}" for a in self.alternatives),
        ]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- rules

_ARTICLE = "the seed article's decision framework"

_HIDDEN: dict[str, dict[str, Any]] = {
    "cnn": dict(
        hidden="relu",
        gate=None,
        source=_ARTICLE,
        reason=(
            "ReLU for CNNs: one comparison per element and no exponential, and its gradient "
            "is exactly 1 for positive inputs, so it does not shrink through depth; it is the "
            "well-understood default in vision."
        ),
        watch=(
            "Dying ReLU: monitor the fraction of dead units during training "
            "(actlab.DeadUnitMonitor); above 10% switch to Leaky ReLU or ELU.",
            "Initialise with Kaiming (He) init, gain sqrt(2) (actlab.gain('relu')); a too "
            "large learning rate pushes units into the dead region.",
        ),
        alternatives=(
            Alternative("leaky_relu", "when many units die; same cost as ReLU"),
            Alternative("elu", "when units die and a smooth negative side helps; costs an exp"),
            Alternative("gelu", "when a little accuracy matters more than speed"),
        ),
    ),
    "transformer": dict(
        hidden="gelu",
        gate=None,
        source=_ARTICLE,
        reason=(
            "GELU for transformers: the standard in BERT, GPT and most modern transformers; "
            "smooth, with a non-zero gradient for negative inputs, which helps optimisation "
            "of deep attention stacks."
        ),
        watch=(
            "Exact (erf) GELU and its tanh approximation differ slightly: use the one a "
            "pretrained checkpoint was trained with (actlab names gelu and gelu_tanh).",
            "GELU costs more per element than ReLU; use the native or fused kernel "
            "(actlab bench gelu relu shows the gap on your machine).",
        ),
        alternatives=(
            Alternative(
                "swiglu",
                "a gated FFN (Shazeer 2020, used by PaLM and LLaMA); scale d_ff by 2/3 to keep "
                "the parameter count",
            ),
            Alternative("silu", "a close smooth alternative to GELU (Swish)"),
            Alternative("relu", "when speed matters most; usually a small loss in quality"),
        ),
    ),
    "rnn": dict(
        hidden="tanh",
        gate="sigmoid",
        source=_ARTICLE,
        reason=(
            "tanh for the hidden-state transformation and sigmoid for the gates, as built into "
            "LSTM and GRU cells: tanh is zero-centred and bounded in [-1, 1], which keeps the "
            "recurrent state from growing over time steps, and a sigmoid gate in (0, 1) is the "
            "fraction of a signal to let through."
        ),
        watch=(
            "Saturation: tanh and sigmoid gradients vanish for |x| above about 3; over long "
            "sequences prefer LSTM/GRU to a vanilla RNN and clip gradients.",
            "Initialise recurrent weights orthogonally so that the state neither explodes nor "
            "vanishes at the start.",
        ),
        alternatives=(
            Alternative(
                "relu",
                "for a vanilla RNN with identity-initialised recurrent weights (IRNN, Le et al. "
                "2015); unbounded, so watch for exploding states",
            ),
        ),
    ),
    "mlp": dict(
        hidden="relu",
        gate=None,
        source=(
            "actlab's reasoned choice (the article gives no rule for plain MLPs; its own "
            "MNIST MLP uses ReLU)"
        ),
        reason=(
            "ReLU for a plain MLP: the article's own MNIST MLP uses it, it is the cheapest "
            "non-linearity, and its unit gradient on the active side trains shallow and "
            "medium-depth MLPs well; this is actlab's choice, not a rule from the article."
        ),
        watch=(
            "Dying ReLU: monitor the dead-unit fraction; above 10% switch to Leaky ReLU or ELU.",
            "For deep MLPs (more than about 10 layers) run the depth experiment "
            "(actlab study --tasks depth): smooth activations with a matching init gain "
            "(actlab.gain) often train deeper.",
        ),
        alternatives=(
            Alternative("gelu", "deep MLPs, or when accuracy matters more than speed"),
            Alternative("silu", "a smooth alternative to GELU (Swish)"),
            Alternative(
                "selu",
                "self-normalising MLP without normalisation layers (Klambauer et al. 2017); "
                "needs LeCun-normal init",
            ),
            Alternative("leaky_relu", "when many units die"),
        ),
    ),
}

_OUTPUT: dict[str, tuple[str, str, str]] = {
    "binary": (
        "sigmoid",
        "sigmoid output for binary classification: the probability of the positive class, "
        "in (0, 1).",
        "Train on the logits with BCEWithLogitsLoss (sigmoid fused into the loss, numerically "
        "stable) and apply the sigmoid only for predictions.",
    ),
    "multiclass": (
        "softmax",
        "softmax output for multi-class classification: a probability distribution over the "
        "classes.",
        "nn.CrossEntropyLoss takes raw logits and applies log-softmax itself: do not put a "
        "softmax layer before it.",
    ),
    "regression": (
        "identity",
        "linear (identity) output for regression: any squashing would cap the predictions.",
        "Standardise the targets; if they are positive only, a softplus output is an option.",
    ),
    "bounded": (
        "tanh",
        "tanh output for targets in [-1, 1]: bounded and zero-centred.",
        "Scale targets to [-1, 1]; targets of exactly +-1 drive pre-activations to infinity "
        "and saturate the gradient, so keep them slightly inside.",
    ),
}


def _choose(value: str, accepted: tuple[str, ...], aliases: dict[str, str], what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be one of {', '.join(accepted)}; got {value!r}")
    key = value.strip().lower()
    key = aliases.get(key, key)
    if key not in accepted:
        raise ValueError(f"unknown {what} {value!r}; accepted: {', '.join(accepted)}")
    return key


def recommend(
    architecture: str = "mlp",
    task: str = "multiclass",
    dead_fraction: float | None = None,
) -> Recommendation:
    """The decision framework: hidden and output activation for an architecture and task.

    Args:
        architecture: ``"cnn"``, ``"transformer"``, ``"rnn"`` or ``"mlp"`` (case-insensitive;
            ``lstm``/``gru`` mean ``rnn``).
        task: ``"binary"``, ``"multiclass"``, ``"regression"`` or ``"bounded"`` (outputs in
            [-1, 1]).
        dead_fraction: the measured fraction of dead hidden units (0..1), if known. Above
            ``DEAD_THRESHOLD`` (10%) a ReLU network is switched to Leaky ReLU.

    Returns:
        A :class:`Recommendation` with the reasons, what to watch for and alternatives.

    Raises:
        ValueError: for an unknown architecture or task, or a dead fraction outside [0, 1].

    Example:
        >>> actlab.recommend("transformer", "multiclass").hidden
        'gelu'
    """
    arch = _choose(architecture, ARCHITECTURES, _ARCH_ALIASES, "architecture")
    tsk = _choose(task, TASKS, _TASK_ALIASES, "task")
    if dead_fraction is not None:
        try:
            dead_fraction = float(dead_fraction)
        except (TypeError, ValueError):
            raise ValueError(
                f"dead_fraction must be a number between 0 and 1; got {dead_fraction!r}"
            ) from None
        if not (math.isfinite(dead_fraction) and 0.0 <= dead_fraction <= 1.0):
            raise ValueError(f"dead_fraction must be between 0 and 1; got {dead_fraction!r}")

    rule = _HIDDEN[arch]
    hidden: str = rule["hidden"]
    reasons = [rule["reason"]]
    watch = list(rule["watch"])
    alternatives = list(rule["alternatives"])
    if dead_fraction is not None:
        pct = f"{100 * dead_fraction:.0f}%"
        limit = f"{100 * DEAD_THRESHOLD:.0f}%"
        if hidden == "relu" and dead_fraction > DEAD_THRESHOLD:
            hidden = "leaky_relu"
            reasons.append(
                f"{pct} of the hidden units are dead (more than {limit}): Leaky ReLU keeps a "
                "small slope (0.01) for negative inputs, so dead units still get a gradient and "
                "can recover (the article's remedy for dying ReLU)."
            )
            alternatives = [
                Alternative("elu", "the smooth remedy for dead units; costs an exponential"),
                Alternative("prelu", "Leaky ReLU with a learned slope"),
                Alternative("relu", "once the cause (learning rate, init) is fixed"),
            ]
            watch.append(
                "Dead units usually follow a too-large learning rate or a poor init: check both "
                "even after switching."
            )
        elif hidden == "relu":
            reasons.append(f"{pct} dead units is within the {limit} threshold: keep ReLU.")
        elif dead_fraction > DEAD_THRESHOLD:
            watch.append(
                f"{pct} of units inactive with {hidden} is not dying ReLU ({hidden} has a "
                "gradient for negative inputs): look at saturation, the learning rate and "
                "normalisation rather than the activation."
            )
    output, out_reason, out_watch = _OUTPUT[tsk]
    reasons.append(out_reason)
    watch.append(out_watch)
    return Recommendation(
        architecture=arch,
        task=tsk,
        hidden=hidden,
        output=output,
        gate=rule["gate"],
        reasons=tuple(reasons),
        watch_for=tuple(watch),
        alternatives=tuple(alternatives),
        source=rule["source"],
        dead_fraction=dead_fraction,
    )




# ----------------------------------------------------------------------------- from a study

COST_TASKS = ("ffn_timing",)
"""Tasks that measure time, not quality: they inform the cost trade-off, not the ranking."""
COST_ARCHITECTURE = {"ffn_timing": "transformer"}
"""The architecture whose cost each cost task measures (the FFN block of a transformer)."""
DIAGNOSTIC_TASKS = ("gradflow",)
"""Tasks that measure behaviour at initialisation; reported, not ranked for the choice."""
BASELINE = "relu"
ARCHITECTURE_NAMES = {"mlp": "MLP", "cnn": "CNN", "transformer": "transformer"}
STUDIED_ARCHITECTURES = ("mlp", "cnn", "transformer")
"""The architectures a study's tasks can stand for, in the order answers are given."""


@dataclass(frozen=True)
class TaskChoice:
    """The best activation on one setting of a study, with the confidence in that choice.

    Attributes:
        setting: the setting's label (``"mlp/digits"``, or with a varying config key).
        metric: the metric ranked (``higher_is_better`` its direction).
        best: the activation with the best mean (``None`` if no run finished).
        mean, std, n, ci_low, ci_high: the best's statistics over seeds.
        tied_with: activations not distinguishable from the best (Holm-adjusted paired
            t-test, alpha 0.05), or that could not be tested.
        beaten: activations the best is significantly better than.
        confidence: ``"clear"`` (better than every other), ``"tied"`` (not distinguishable
            from some), ``"untested"`` (fewer than 2 paired seeds) or ``"none"``.
        statement: the statistics' full confidence statement.
        time_ratio: the best's mean time per run relative to ReLU's on this setting: CPU
            time where the runs recorded it (the cost on a shared machine), else wall time.
        architecture: what the task stands for (``mlp``, ``cnn``, ``transformer``) or
            ``None`` (a diagnostic such as XOR, or a task that declares none).
        runner_up: the activation with the second-best mean.
        seeds_needed: with a tie, the seeds a paired t-test would need to separate the best
            from the runner-up at 80% power (``inf``: no practical number; NaN: no tie).
        extend: the ``actlab study`` command that adds those seeds (finished runs are kept).
    """

    setting: str
    metric: str
    higher_is_better: bool
    best: str | None
    mean: float
    std: float
    n: int
    ci_low: float
    ci_high: float
    tied_with: tuple[str, ...]
    beaten: tuple[str, ...]
    confidence: str
    statement: str
    time_ratio: float | None
    architecture: str | None = None
    runner_up: str | None = None
    seeds_needed: float = math.nan
    extend: str | None = None
    time_kind: str = "wall time"

    @property
    def label(self) -> str:
        return self.setting

    @property
    def metric_text(self) -> str:
        if self.best is None:
            return "-"
        if self.n > 1 and math.isfinite(self.std):
            return f"{self.metric} {self.mean:.4g} ± {self.std:.2g} (n={self.n})"
        return f"{self.metric} {self.mean:.4g} (n={self.n})"

    @property
    def confidence_text(self) -> str:
        if self.confidence == "clear":
            return "clear: better than every other activation (paired test)"
        if self.confidence == "tied":
            return "not distinguishable from " + ", ".join(self.tied_with)
        if self.confidence == "untested":
            return "untested: one activation, or fewer than 2 paired seeds"
        return "no finished runs"

    @property
    def seeds_text(self) -> str:
        """With a tie: the seeds that would separate the best from the runner-up, and how
        to run them; else empty."""
        n = self.seeds_needed
        if self.confidence != "tied" or self.runner_up is None or math.isnan(n):
            return ""
        if math.isinf(n):
            return (f"{self.setting}: no practical number of seeds separates {self.best} from "
                    f"{self.runner_up} (the observed difference is nil or negligible).")
        how = f"; to run them: {self.extend}" if self.extend else ""
        return (f"{self.setting}: separating {self.best} from the runner-up {self.runner_up} "
                f"would take about {int(n)} seeds (paired t-test, 80% power){how}")


@dataclass(frozen=True)
class ArchitectureAnswer:
    """The study's answer for one architecture, from that architecture's tasks only.

    Attributes:
        architecture: ``mlp``, ``cnn`` or ``transformer``.
        settings: the evidence: the settings of this architecture's tasks.
        answer: the activation to use (``None`` without finished runs).
        best: the activation with the best results on the evidence (it differs from
            ``answer`` when the study cannot separate it from the framework's choice).
        confidence: ``clear`` (significantly best on every setting), ``tied`` (not
            distinguishable from others), ``mixed`` (the settings disagree), ``untested``
            (fewer than 2 paired seeds) or ``none``.
        framework: the article's framework answer for this architecture.
        verdict: how the evidence compares with it: ``agrees``, ``differs`` or
            ``not tested`` (the framework's activation was not run).
        framework_text: the comparison in one sentence, with its evidence.
        time_ratio: the answer's time per run relative to ReLU's (mean over settings; CPU
            time where recorded, else wall time).
        memory_ratio: its peak memory relative to ReLU's, where measured (CUDA runs).
        cost: the cost sentences (time per run, FFN block timing, memory).
        reasons: why: the settings' confidence statements.
        seeds: for each tie, the seeds that would separate best and runner-up, and the
            command that runs them.
        tied_with: the activations the study cannot separate from the answer.
    """

    architecture: str
    settings: tuple[str, ...]
    answer: str | None
    best: str | None
    confidence: str
    framework: str
    verdict: str
    framework_text: str
    time_ratio: float | None
    memory_ratio: float | None
    cost: tuple[str, ...]
    reasons: tuple[str, ...]
    seeds: tuple[str, ...]
    tied_with: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return ARCHITECTURE_NAMES.get(self.architecture, self.architecture)

    @property
    def confidence_text(self) -> str:
        return {
            "clear": "clear: significantly better than every other activation studied",
            "tied": "tied: the study cannot separate it from "
            + (", ".join(self.tied_with) or "the others"),
            "mixed": "mixed: the settings of this architecture disagree",
            "untested": "untested: one activation, or fewer than 2 paired seeds",
        }.get(self.confidence, "no finished runs")

    @property
    def line(self) -> str:
        """One line: the answer, its confidence, the framework's verdict and the cost."""
        if self.answer is None:
            return f"{self.name}: no finished runs ({', '.join(self.settings)})."
        cost = f"; {self.time_ratio:.2f}x ReLU's time" if self.time_ratio is not None else ""
        conf = {"clear": "clear", "tied": "a tie", "mixed": "mixed evidence",
                "untested": "untested"}.get(self.confidence, self.confidence)
        return (f"{self.name}: use {self.answer} ({conf}, on {', '.join(self.settings)}{cost}); "
                f"{self.verdict} with the article's framework ({self.framework}).")


@dataclass(frozen=True)
class StudyRecommendation:
    """What a study's own results recommend: one answer per architecture studied.

    Attributes:
        db: the database read.
        tasks: the best activation per quality setting (timing and diagnostic tasks are
            not ranked for the choice), each with its architecture.
        answers: one :class:`ArchitectureAnswer` per architecture present, from that
            architecture's settings only; a result is never carried to another one.
        coverage: what the evidence covers (which architectures, on which settings).
        summary: one paragraph: the answers and their confidence.
        cost: the time trade-off against ReLU (FFN timing and wall time).
        warnings: dead units, diverged or failed runs, numerical instability (audit).
    """

    db: str
    tasks: tuple[TaskChoice, ...]
    answers: tuple[ArchitectureAnswer, ...]
    coverage: str
    summary: str
    cost: tuple[str, ...]
    warnings: tuple[str, ...]

    def answer(self, architecture: str) -> ArchitectureAnswer | None:
        """The answer for ``architecture``, or ``None`` if the study has no evidence for it."""
        return next((a for a in self.answers if a.architecture == architecture), None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        lines = [self.coverage, self.summary, "per architecture:"]
        for a in self.answers:
            lines.append(f"  - {a.line}")
            lines += [f"      {t}" for t in (a.framework_text, *a.cost, *a.seeds)]
        lines.append("per task:")
        for t in self.tasks:
            lines.append(f"  - {t.setting}: {t.best} ({t.metric_text}); {t.confidence_text}")
        if self.cost:
            lines += ["cost:", *(f"  - {c}" for c in self.cost)]
        lines += ["warnings:", *(f"  - {w}" for w in self.warnings or ("none",))]
        return "\n".join(lines)


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _task_choice(setting: str, group: Any, wall: dict[str, float],
                 architecture: str | None = None, extend: Any = None) -> TaskChoice:
    first = group.iloc[0]
    best = first["best"] if isinstance(first["best"], str) else None
    metric = str(first["metric"] or "metric")
    hib = bool(first["higher_is_better"])
    statement = str(first["statement"])
    if best is None:
        return TaskChoice(setting, metric, hib, None, math.nan, math.nan, 0, math.nan,
                          math.nan, (), (), "none", statement, None, architecture)
    b = group[group["activation"] == best].iloc[0]
    others = group[(group["activation"] != best) & (group["n"] > 0)]
    sig = [v is True or v == 1.0 for v in others["distinguishable"]]
    beaten = tuple(a for a, s in zip(others["activation"], sig, strict=True) if s)
    tied = tuple(a for a in others["activation"] if a not in beaten)
    if others.empty or int(others["n_pairs"].max()) < 2:
        confidence = "untested"
    else:
        confidence = "clear" if not tied else "tied"
    ratio = None
    if best in wall and BASELINE in wall and wall[BASELINE] > 0:
        ratio = wall[best] / wall[BASELINE]
    runner_up, need, command = None, math.nan, None
    if not others.empty:
        r = others.iloc[0]
        runner_up = str(r["activation"])
        if confidence == "tied" and _finite_or_inf(r.get("seeds_needed")):
            need = float(r["seeds_needed"])
            if math.isfinite(need) and extend is not None:
                command = extend([best, runner_up], int(need))
    return TaskChoice(
        setting, metric, hib, best, float(b["mean"]), float(b["std"]), int(b["n"]),
        float(b["ci_low"]), float(b["ci_high"]), tied, beaten, confidence, statement, ratio,
        architecture, runner_up, need, command,
    )


def _finite_or_inf(x: Any) -> bool:
    try:
        return not math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def _dead_fraction(run: Any) -> float | None:
    """Final dead-unit fraction of a stored run (metric, else the last curve value)."""
    v = run.result.metrics.get("dead_fraction")
    if _finite(v):
        return float(v)
    curve = [x for x in run.result.curves.get("dead_fraction", []) if _finite(x)]
    return float(curve[-1]) if curve else None


def study_warnings(df: Any, summary: Any, runs: list[Any]) -> list[str]:
    """Diverged/failed runs and dead units, from a study's table and stored runs."""
    out: list[str] = []
    for (setting, act), g in summary.groupby(["setting", "activation"], sort=True):
        r = g.iloc[0]
        if r["n_diverged"]:
            steps = df[
                (df["activation"] == act) & (df["status"] == "diverged")
                & (df["config_hash"] == r["config_hash"]) & (df["task"] == r["task"])
            ]["diverged_step"].dropna()
            when = f" (first non-finite loss at step {int(steps.min())})" if len(steps) else ""
            out.append(
                f"{act} diverged on {int(r['n_diverged'])}/{int(r['n_runs'])} runs of "
                f"{setting}{when}; its mean covers only the runs that finished."
            )
        if r["n_failed"]:
            out.append(
                f"{act} failed (an error) on {int(r['n_failed'])}/{int(r['n_runs'])} runs of "
                f"{setting}: see the report's run table; re-running the study retries them."
            )
    dead: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        d = _dead_fraction(run)
        if d is not None:
            task = run.spec.task + (f"/{run.dataset}" if run.dataset else "")
            dead.setdefault((task, run.spec.activation), []).append(d)
    for (task, act), vals in sorted(dead.items()):
        mean = sum(vals) / len(vals)
        if mean > DEAD_THRESHOLD:
            out.append(
                f"{act} ends {task} with {100 * mean:.0f}% dead units (mean over "
                f"{len(vals)} run(s); threshold {100 * DEAD_THRESHOLD:.0f}%): prefer Leaky ReLU "
                "or ELU there, or lower the learning rate."
            )
    return out


def audit_warnings(activations: list[str]) -> list[str]:
    """Numerical instability found by the stability audit for these activations."""
    try:
        from actlab.analysis.audit import audit
    except ImportError:
        return []
    out = []
    for name in activations:
        try:
            result = audit(name)
        except Exception as exc:  # an activation the audit cannot evaluate
            out.append(f"{name}: the stability audit could not run ({exc}).")
            continue
        if not result.passed:
            out.append(
                f"{name} failed the stability audit (NaN/inf or large relative error where "
                "the true value is finite): see the report's audit table."
            )
    return out


def task_architectures(df: Any, runs: list[Any]) -> dict[str, str | None]:
    """``{task name: architecture}`` for a study's tasks: what each run recorded (the study
    stores its task's architecture with it), else the task registry, else ``None``."""
    out: dict[str, str | None] = {}
    for run in runs:
        arts = run.result.artifacts
        if run.spec.task not in out and isinstance(arts, dict) and "architecture" in arts:
            arch = arts["architecture"]
            out[run.spec.task] = arch if arch in STUDIED_ARCHITECTURES else None
    missing = [t for t in (df["task"].unique() if not df.empty else []) if t not in out]
    if missing:
        try:
            from actlab.experiments.study import load_tasks

            registry = load_tasks()
        except ImportError:  # pragma: no cover - the experiments stage is always there
            registry = {}
        for t in missing:
            task = registry.get(t)
            out[t] = getattr(task, "architecture", None) if task is not None else None
    return out


def _ratio(values: dict[str, float], act: str) -> float | None:
    base = values.get(BASELINE)
    v = values.get(act)
    if base is None or v is None or not (_finite(base) and _finite(v)) or base <= 0:
        return None
    return v / base


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None and _finite(x)]
    return sum(xs) / len(xs) if xs else None


def _answer(
    arch: str, choices: list[TaskChoice], summary: Any, per_setting: dict[str, dict[str, Any]],
    ffn: dict[str, float],
) -> ArchitectureAnswer:
    """One architecture's answer from its own settings (see :class:`ArchitectureAnswer`)."""
    base = recommend(arch, "multiclass").hidden
    fw_rule = f"{base} for {ARCHITECTURE_NAMES.get(arch, arch)}s" + (
        "; actlab's choice, the article gives no rule for MLPs" if arch == "mlp" else "")
    dead = _mean([per_setting[c.setting]["dead"].get(BASELINE) for c in choices])
    fw = recommend(arch, "multiclass", dead_fraction=dead).hidden if dead is not None else base
    if fw != base:  # the framework's own dead-unit rule, applied to this study's ReLU runs
        fw_rule += (f"; with {100 * dead:.0f}% of ReLU's units dead here, its dead-unit rule "
                    f"says {fw}")
    settings = tuple(c.setting for c in choices)
    ranked = [c for c in choices if c.best is not None]
    rows = summary[summary["setting"].isin(settings)]
    if not ranked:
        return ArchitectureAnswer(arch, settings, None, None, "none", fw, "not tested",
                                  f"no finished runs: the framework's {fw_rule} stands.",
                                  None, None, (), tuple(c.statement for c in choices), ())
    studied = set(rows["activation"])
    contenders = set.intersection(*({c.best, *c.tied_with} for c in ranked))
    mean_rank = rows.groupby("activation")["rank"].mean().to_dict()
    support: dict[str, int] = {}
    for c in ranked:
        for a in (c.best, *c.tied_with):
            support[a] = support.get(a, 0) + 1
    by_rank = sorted(support, key=lambda a: (-support[a], mean_rank.get(a, math.inf), a))
    best = by_rank[0]
    clear = {c.best for c in ranked} == {best} and all(c.confidence == "clear" for c in ranked)
    if clear:
        answer, confidence = best, "clear"
    elif any(c.confidence == "untested" for c in ranked):
        answer, confidence = best, "untested"
    elif fw in contenders:
        answer, confidence = fw, "tied"
    elif contenders:
        answer = min(contenders, key=lambda a: (mean_rank.get(a, math.inf), a))
        confidence = "tied"
    else:
        answer, confidence = best, "mixed"
    where = ", ".join(settings)
    beaten_on = [c for c in ranked if fw in c.beaten]
    if fw not in studied:
        verdict = "not tested"
        text = (f"The framework's answer ({fw_rule}) was not run on {where}: the study can "
                "neither confirm nor contradict it.")
    elif beaten_on:  # the framework's choice is significantly worse somewhere
        verdict = "differs"
        cites = []
        for c in beaten_on:
            r = rows[(rows["setting"] == c.setting) & (rows["activation"] == fw)].iloc[0]
            cites.append(f"{c.best} beats {fw} on {c.setting} (mean difference "
                         f"{r['mean_diff']:.3g}, Holm-adjusted p={r['p_holm']:.2g}, "
                         f"n={int(r['n_pairs'])} paired seeds)")
        text = (f"Differs from the framework ({fw_rule}): " + "; ".join(cites) + ".")
        others = [c.setting for c in ranked if c not in beaten_on]
        if others:
            text += (f" On {', '.join(others)} the study cannot tell {fw} from the best or "
                     "finds it best.")
    elif answer == fw and confidence == "clear":
        verdict = "agrees"
        text = (f"Agrees with the framework ({fw_rule}): {fw} is significantly better than "
                f"every other activation studied on {where}.")
    elif answer == fw:
        verdict = "agrees"
        lead = f"{best} had the best mean, but " if best != fw else ""
        text = (f"Agrees with the framework ({fw_rule}): {lead}the study cannot separate "
                f"{fw} from the best on {where} (paired t-tests over seeds), so the "
                "framework's choice stands.")
    else:  # the framework's choice was run, is not significantly worse, yet not the answer
        verdict = "differs"
        text = (f"The framework says {fw_rule}; on {where} the evidence points to {answer} "
                f"({confidence}), without a significant difference from {fw}.")
    times = [_ratio(per_setting[c.setting]["time"], answer) for c in ranked]
    kinds = {c.time_kind for c in ranked}
    kind = kinds.pop() if len(kinds) == 1 else "time"
    mems = [_ratio(per_setting[c.setting]["memory"], answer) for c in ranked]
    time_ratio, memory_ratio = _mean(times), _mean(mems)
    cost = []
    if answer != BASELINE and time_ratio is not None:
        cost.append(f"a run with {answer} took {time_ratio:.2f}x the {kind} of {BASELINE} "
                    f"(mean over seeds and settings: {where}).")
    ffn_ratio = _ratio(ffn, answer) if arch == "transformer" else None
    if ffn_ratio is not None and answer != BASELINE:
        cost.append(f"its FFN block (ffn_timing, forward+backward) takes {ffn_ratio:.2f}x "
                    f"{BASELINE}'s time.")
    if memory_ratio is not None and answer != BASELINE:
        cost.append(f"peak memory {memory_ratio:.2f}x {BASELINE}'s (CUDA runs).")
    seeds = tuple(c.seeds_text for c in ranked if c.seeds_text)
    tied = {a for c in ranked if answer in (c.best, *c.tied_with) for a in (c.best, *c.tied_with)}
    tied_with = tuple(sorted(tied - {answer}, key=lambda a: (mean_rank.get(a, math.inf), a)))
    return ArchitectureAnswer(
        arch, settings, answer, best, confidence, fw, verdict, text, time_ratio,
        memory_ratio, tuple(cost), tuple(c.statement for c in choices), seeds, tied_with,
    )


def _cost_lines(summary: Any, choices: list[TaskChoice]) -> list[str]:
    lines = []
    for setting, g in summary[summary["task"].isin(COST_TASKS)].groupby("setting", sort=True):
        by_act = dict(zip(g["activation"], g["mean"], strict=True))
        metric = str(g["metric"].iloc[0])
        base = by_act.get(BASELINE)
        if base is None or not _finite(base) or base <= 0:
            continue
        order = sorted((v / base, a) for a, v in by_act.items() if _finite(v))
        shown = ", ".join(f"{a} {r:.2f}x" for r, a in order)
        lines.append(f"{setting} ({metric}, relative to {BASELINE}): {shown}.")
    for c in choices:
        if c.time_ratio is not None and c.best != BASELINE:
            lines.append(
                f"{c.setting}: a run with {c.best} took {c.time_ratio:.2f}x the {c.time_kind} of "
                f"{BASELINE} (mean over seeds)."
            )
    return lines


def summarize_runs(df: Any) -> Any:
    """:func:`actlab.experiments.stats.summarize` of a runs table, with tasks that have no
    dataset (``xor``, ``ffn_timing``) given an empty dataset name, so that they group the
    same way next to tasks that have one."""
    from actlab.experiments.stats import summarize

    df = df.copy()
    if "dataset" in df:
        df["dataset"] = df["dataset"].map(lambda d: d if isinstance(d, str) else "")
    return summarize(df)


def _coverage(answers: list[ArchitectureAnswer], choices: list[TaskChoice],
              summary: Any) -> str:
    if not choices:
        return ("This study has no finished run on a quality task yet: its evidence covers no "
                "architecture.")
    if not answers:
        covered = "no architecture (none of its quality tasks declares one)"
    else:
        covered = "; ".join(f"the {a.name} ({', '.join(a.settings)})" for a in answers)
    others = [c.setting for c in choices if c.architecture is None]
    diag = sorted(set(summary[summary["task"].isin(COST_TASKS + DIAGNOSTIC_TASKS)]["setting"]))
    text = (f"This study's evidence covers {covered}; each answer comes from that "
            "architecture's tasks only, and nothing here is advice for an architecture it did "
            "not study.")
    if others or diag:
        text += (f" {', '.join(others + diag)}: diagnostics or tasks without an architecture, "
                 "reported but not turned into advice.")
    return text


def recommend_from_study(db: str | Any, *, audit: bool = True) -> StudyRecommendation:
    """A recommendation from the user's own study (an ``actlab study`` database).

    One answer per architecture present in the study (``mlp``, ``cnn``, ``transformer``,
    as each task declares), from that architecture's settings only: the activation to use,
    the confidence in it (paired statistics of
    :func:`actlab.experiments.stats.summarize`), its cost relative to ReLU (wall time, the
    FFN block's timing for transformers, peak memory where measured), the comparison with
    the article's decision framework for that architecture (agrees / differs / not
    tested, on what evidence), and for a tie the seeds that would separate the best from
    the runner-up with the command that adds them. A tie keeps the framework's answer when
    the study cannot separate it from the best. Per quality setting, the best activation;
    warnings: diverged or failed runs, more than 10% dead units, and activations that fail
    the numerical stability audit (when ``audit`` is true).

    Raises:
        FileNotFoundError: no database at ``db``.

    Example:
        >>> print(recommend_from_study("actlab-study.sqlite"))     # doctest: +SKIP
    """
    from actlab.experiments.store import ResultsStore, load_results
    from actlab.experiments.study import extend_command

    df = load_results(db)
    with ResultsStore(db, create=False) as store:
        runs = store.runs()
    summary = summarize_runs(df)
    archs = task_architectures(df, runs)
    if "dataset" in df:  # as summarize_runs does: no dataset -> "" (groups and looks up alike)
        df = df.assign(dataset=df["dataset"].map(lambda d: d if isinstance(d, str) else ""))
    ok = df[df["status"] == "ok"] if not df.empty else df
    keys = ["task", "dataset", "config_hash", "activation"]
    wall = ok.groupby(keys, dropna=False)["wall_time"].mean() if not ok.empty else None
    memory = (ok.groupby(keys, dropna=False)["peak_memory_mb"].mean()
              if not ok.empty and "peak_memory_mb" in ok else None)
    configs = {h: c for h, c in zip(df["config_hash"], df["config"], strict=True)} if len(
        df) else {}
    dead: dict[tuple[str, str, str], list[float]] = {}
    cpu: dict[tuple[str, str, str], list[float]] = {}
    for run in runs:
        if run.result.status != "ok":
            continue
        key = (run.spec.task, run.spec.config_hash, run.spec.activation)
        d = _dead_fraction(run)
        if d is not None:
            dead.setdefault(key, []).append(d)
        c = run.result.artifacts.get("cpu_time") if isinstance(run.result.artifacts, dict) else None
        if _finite(c) and float(c) > 0:
            cpu.setdefault(key, []).append(float(c))
    choices: list[TaskChoice] = []
    per_setting: dict[str, dict[str, Any]] = {}
    quality = summary[~summary["task"].isin(COST_TASKS + DIAGNOSTIC_TASKS)]
    for setting, g in quality.groupby("setting", sort=True):
        first = g.iloc[0]
        measured: dict[str, dict[str, float]] = {"wall": {}, "memory": {}, "dead": {},
                                                 "time": {}}
        for act in g["activation"]:
            vals = dead.get((first["task"], first["config_hash"], act))
            if vals:
                measured["dead"][act] = sum(vals) / len(vals)
        for name, table in (("wall", wall), ("memory", memory)):
            if table is None:
                continue
            for act in g["activation"]:
                k = (first["task"], first["dataset"], first["config_hash"], act)
                if k in table.index and _finite(table[k]):
                    measured[name][act] = float(table[k])
        cpu_means = {a: sum(v) / len(v) for a in g["activation"]
                     if (v := cpu.get((first["task"], first["config_hash"], a)))}
        finished = [a for a, n in zip(g["activation"], g["n"], strict=True) if n > 0]
        use_cpu = bool(finished) and all(a in cpu_means for a in finished)
        measured["time"] = cpu_means if use_cpu else measured["wall"]
        per_setting[str(setting)] = measured
        task, cfg = str(first["task"]), configs.get(first["config_hash"], {})

        def extend(acts: list[str], seeds: int, task: str = task, cfg: dict = cfg) -> Any:
            return extend_command(task, cfg, acts, seeds, db)

        choice = _task_choice(str(setting), g, measured["time"], archs.get(str(first["task"])),
                              extend)
        choices.append(replace(choice, time_kind="CPU time" if use_cpu else "wall time"))
    ffn: dict[str, float] = {}
    for _, g in summary[summary["task"].isin(COST_TASKS)].groupby("setting", sort=True):
        ffn.update({a: float(v) for a, v in zip(g["activation"], g["mean"], strict=True)
                    if COST_ARCHITECTURE.get(str(g["task"].iloc[0])) == "transformer"})
    answers = [
        _answer(arch, [c for c in choices if c.architecture == arch], summary, per_setting, ffn)
        for arch in STUDIED_ARCHITECTURES if any(c.architecture == arch for c in choices)
    ]
    warnings = study_warnings(df, summary, runs)
    activations = list(dict.fromkeys(df["activation"])) if not df.empty else []
    if audit:
        warnings += audit_warnings(activations)
    coverage = _coverage(answers, choices, summary)
    if not choices:
        text = (
            f"{db} has no finished run on a quality task: no recommendation from the study; "
            "use the decision framework (actlab recommend --arch ... --task ...)."
        )
    elif not answers:
        text = ("None of this study's quality tasks declares an architecture: see the best "
                "activation per task; the decision framework gives the per-architecture "
                "defaults.")
    else:
        text = " ".join(a.line for a in answers)
        if all(a.confidence != "clear" for a in answers):
            text += (" No activation is significantly better than all others on any "
                     "architecture studied: these are weak preferences; more seeds would "
                     "separate them (see the seeds needed).")
    return StudyRecommendation(
        db=str(db),
        tasks=tuple(choices),
        answers=tuple(answers),
        coverage=coverage,
        summary=text,
        cost=tuple(_cost_lines(summary, choices)),
        warnings=tuple(warnings),
    )


__all__ = [
    "ARCHITECTURES",
    "DEAD_THRESHOLD",
    "TASKS",
    "Alternative",
    "ArchitectureAnswer",
    "Recommendation",
    "StudyRecommendation",
    "TaskChoice",
    "recommend",
    "recommend_from_study",
]
