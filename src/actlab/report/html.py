"""The self-contained HTML report: one file, figures embedded, opens offline.

:func:`write_report` reads a study's database (if any), measures the analysis of the
activations it studied (properties, gain and edge of chaos, gradient flow, stability
audit), and renders ``templates/report.html`` with Jinja2 (autoescaping on). Figures are
base64 PNG data URIs; CSS is inline; there is no external script, font or image.

Sections whose data is absent are left out or say so; the report never invents results.

Example:
    >>> write_report("actlab-study.sqlite", "report.html")        # doctest: +SKIP
    PosixPath('report.html')
    >>> write_report(None, "zoo.html", activations=["relu", "gelu"])  # doctest: +SKIP
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from actlab.analysis.properties import properties as measure_properties
from actlab.catalog import Activation, get
from actlab.experiments.base import actlab_version
from actlab.report import blocks as B
from actlab.report.figures import plot_activations
from actlab.report.study_figures import plot_overlay

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("actlab.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=False,
    lstrip_blocks=False,
)

ARTICLE_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "mish")


def _dedupe(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


# ----------------------------------------------------------------------------- catalog


def _activation_card(act: Activation, properties: bool) -> B.Card:
    pairs: list[tuple[str, Any]] = [
        ("formula", act.formula),
        ("reference", act.reference),
        ("family", act.family),
    ]
    if act.params:
        pairs.append(("parameters", ", ".join(f"{k}={v:g}" for k, v in act.params.items())))
    pairs.append(("native", act.native or "none"))
    if act.gated:
        pairs.append(("gated", "splits the last dimension into value a and gate b"))
    card_blocks = [B.kv(pairs)]
    card_blocks.append(
        B.figure(
            plot_activations([act], x_range=(-5.0, 5.0), points=400),
            alt=f"{act.name} and its derivative",
            dpi=48,
        )
    )
    if properties:
        card_blocks.append(_properties_block(act))
    return B.Card(id=f"act-{B.slug(act.name)}", title=act.name, blocks=card_blocks)


def _properties_block(act: Activation) -> B.Block:
    try:
        props = measure_properties(act)
    except ImportError:
        return B.absent("measured properties: the analysis stage is not installed")
    except Exception as exc:  # a user activation the analysis cannot handle
        return B.absent(f"measured properties could not be computed: {exc}")
    rows = [[k, _prop_text(v)] for k, v in props.as_dict().items()]
    return B.table(["measured property", "value"], rows)


def _prop_text(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return B.fmt(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_prop_text(x) for x in v) + "]" if v else "none"
    return str(v)


def catalog_section(acts: Sequence[Activation], properties: bool = True) -> B.Section:
    """The activations studied: overlay figure, then one card per activation."""
    blocks = [
        B.p(
            f"{len(acts)} activation(s). Each card gives the formula, the reference, the "
            "function and its analytic derivative on [-5, 5], and properties measured "
            "numerically by actlab (not typed by hand)."
        ),
        B.figure(
            plot_overlay(acts),
            alt="all activations and their derivatives",
            caption="All activations overlaid: f(x) left, f'(x) right "
            "(gated ones along a = b = x).",
            dpi=72,
        ),
        B.cards([_activation_card(a, properties) for a in acts]),
    ]
    return B.Section("activations", "Activations studied", blocks)


# ----------------------------------------------------------------------------- assembly


def _resolve(activations: Sequence[str | Activation]) -> list[Activation]:
    out, seen = [], set()
    for a in activations:
        act = get(a)
        if act.key not in seen:
            seen.add(act.key)
            out.append(act)
    return out


#: what :func:`build_context` reports to its ``progress`` callback, in order
REPORT_STEPS = (
    "reading the study",
    "activation cards and figures",
    "gain, gradient flow and audit",
    "study results and figures",
)


def build_context(
    db: str | Path | None = None,
    *,
    activations: Sequence[str | Activation] | None = None,
    bench: Any = None,
    title: str = "actlab report",
    analysis: bool = True,
    gradflow_depths: Sequence[int] = (5, 10, 20, 50),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Everything the template needs (plain data; the template escapes all text).

    ``progress(step)`` is called as each of the :data:`REPORT_STEPS` begins.
    """
    from actlab.report import sections as S

    step = progress or (lambda _name: None)

    depths = list(gradflow_depths)
    if not depths or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in depths):
        raise ValueError(
            f"gradflow_depths must be positive whole numbers of layers, got {gradflow_depths!r}"
        )
    step(REPORT_STEPS[0])
    study = S.load_study(db) if db is not None else None
    names = list(activations or [])
    if not names and study is not None:
        names = study.activations
    if not names:
        names = list(ARTICLE_ACTIVATIONS)
    acts = _resolve(names)
    rec = S.study_recommendation(study) if study is not None else None

    sections: list[B.Section] = []
    sections.append(S.recommendation_section(study, rec))
    step(REPORT_STEPS[1])
    sections.append(catalog_section(acts, properties=analysis))
    step(REPORT_STEPS[2])
    if analysis:
        sections.append(S.analysis_section(acts, study, depths))
    step(REPORT_STEPS[3])
    if study is not None:
        sections.extend(S.study_sections(study))
    cost = S.cost_section(study, bench)
    if cost is not None:
        sections.append(cost)
    sections.append(S.about_section(study, db))

    studied = S.studied_sentence(study, acts)
    headline = S.headline(study, rec)
    host = platform.node() or "an unnamed host"
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {
        "title": title,
        "subtitle": f"generated {now} by actlab {actlab_version()} on {host}",
        "studied": studied,
        "headline": headline,
        "sections": sections,
        "version": actlab_version(),
        "footer": (
            "actlab report: one self-contained file; figures are embedded PNG images. "
            "Numbers come from the study database and from measurements made when the report "
            "was written."
        ),
    }


def render_report(db: str | Path | None = None, **options: Any) -> str:
    """The report as one HTML string (see :func:`write_report` for the options)."""
    context = build_context(db, **options)
    return _ENV.get_template("report.html").render(**context)


def write_report(db: str | Path | None, out: str | Path, **options: Any) -> Path:
    """Write the self-contained HTML report and return its path.

    Args:
        db: a study's SQLite database (``actlab study --db``), or ``None`` for a report on
            ``activations`` only (catalog and analysis sections).
        out: the ``.html`` file to write (its directory must exist).
        **options:
            activations: activations to describe (default: those in the study, else the
                article's eight);
            bench: a kernel benchmark table (pandas DataFrame, or a ``.csv`` / ``.json``
                file) to include;
            title: the report title;
            analysis: compute properties, gain, gradient flow and audit (default True);
            gradflow_depths: depths of the gradient-flow table (default 5, 10, 20, 50).

    Returns:
        The path written.
    """
    out = Path(out)
    if out.suffix.lower() not in {".html", ".htm"}:
        raise ValueError(f"report file {str(out)!r} must end in .html")
    if db is not None and not Path(db).exists():
        raise FileNotFoundError(f"no results database at {db}; run `actlab study --db {db}` first")
    if not out.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write the report to {out}: the directory {out.parent} does not exist"
        )
    text = render_report(db, **options)
    out.write_text(text, encoding="utf-8")
    return out
