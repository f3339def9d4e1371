"""The HTML report: self-contained, escaped, complete, and honest about absent data."""

from __future__ import annotations

import base64
import math
import sqlite3
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

import actlab
from actlab.cli import run
from actlab.report.html import write_report

STUDY_ACTIVATIONS = ("relu", "tanh")  # as in conftest.py
STUDY_TASKS = ("xor", "mlp/digits", "depth/digits", "ffn_timing", "gradflow")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        self.tags.append((tag, d))
        if d.get("id"):
            self.ids.add(str(d["id"]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Collect:
    p = _Collect()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_self_contained(report_file: Path) -> None:
    page = _parse(report_file)
    text = report_file.read_text(encoding="utf-8")
    imgs = [a for t, a in page.tags if t == "img"]
    assert len(imgs) >= 5
    for a in imgs:
        src = a["src"] or ""
        assert src.startswith("data:image/png;base64,"), src[:60]
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        w, h = struct.unpack(">II", png[16:24])
        assert (str(w), str(h)) == (a["width"], a["height"])
        assert a.get("alt")
    for tag, attrs in page.tags:
        for key in ("src", "href", "action", "srcset", "poster", "data"):
            val = (attrs.get(key) or "").strip().lower()
            assert not val.startswith(("http:", "https:", "//", "ftp:", "file:")), (tag, val)
        assert tag not in {"link", "iframe", "object", "embed"}, tag
        if tag == "script":
            assert "src" not in attrs
        if tag == "a":  # every link points inside the page, to an element that exists
            href = attrs.get("href") or ""
            assert href.startswith("#") and href[1:] in page.ids, href
    assert "@import" not in text and "url(" not in text
    assert "http://" not in text and "https://" not in text


def test_sections_and_numbers(report_file: Path, study_db: Path) -> None:
    page = _parse(report_file)
    for sid in ("headline", "recommendation", "activations", "analysis", "analysis-gradflow",
                "analysis-gain", "analysis-audit", "results", "cost", "about"):
        assert sid in page.ids, sid
    for task in ("xor", "mlp/digits", "depth/digits"):  # ranked tasks; timing is a cost
        assert f"task-{task.replace('/', '-')}" in page.ids
    assert "task-ffn-timing" not in page.ids and "task-gradflow" not in page.ids
    for act in STUDY_ACTIVATIONS:
        assert f"act-{act.replace('_', '-')}" in page.ids
    text = " ".join(page.text)
    needles = (
        "Training curves, dead units and wall time", "Fraction of hidden units that never fired",
        "Decision boundaries", "Accuracy against depth", "forward+backward (ms)",
        "Rows from the study use its gradflow task", "95% CI", "paired t",
    )
    for needle in needles:
        assert needle in text, needle
    # one answer per architecture: the study's MLP tasks answer for the MLP, nothing else
    assert "This study's evidence covers the MLP (depth/digits, mlp/digits)" in text
    assert "One answer per architecture" in text and "CNN: use" not in text
    assert "xor, ffn_timing, gradflow: diagnostics" in text and "Schedules" in text
    # the mean shown for every (task, activation) equals one computed here from the raw rows
    con = sqlite3.connect(study_db)
    rows = con.execute(
        "SELECT task, dataset, activation, AVG(value), COUNT(*) FROM runs WHERE status='ok' "
        "AND task != 'gradflow' GROUP BY task, dataset, activation"
    ).fetchall()
    con.close()
    assert len(rows) == (len(STUDY_TASKS) - 1) * len(STUDY_ACTIVATIONS)
    from actlab.report.blocks import fmt

    for _task, _ds, act, mean, n in rows:
        assert n == 2 and math.isfinite(mean)
        assert fmt(mean) in text, (act, mean)


def test_escapes_user_strings(tmp_path: Path, clean_registry: None) -> None:
    act = actlab.formula("where(x < 0, 0.1*x, x)", name="evil<b>name</b>")
    out = write_report(
        None, tmp_path / "r.html", activations=[act], title="<script>alert(1)</script>",
        analysis=False,
    )
    text = out.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text
    assert "evil<b>" not in text and "evil&lt;b&gt;name" in text
    assert "x &lt; 0" in text and "x < 0" not in text
    assert text.count("<script>") == 1  # only the report's own inline self-check


def test_without_a_study(tmp_path: Path) -> None:
    out = write_report(None, tmp_path / "zoo.html", activations=["relu", "swish"],
                       gradflow_depths=(3, 6))
    page = _parse(out)
    text = " ".join(page.text)
    assert "results" not in page.ids and "cost" not in page.ids
    assert "No study database" in text
    assert "act-silu" in page.ids  # the alias resolves to the canonical name
    assert "From the decision framework" in text


def test_bench_csv_included(tmp_path: Path) -> None:
    csv = tmp_path / "kernels.csv"
    csv.write_text("activation,fwd_vs_clone,fwdbwd_vs_floor\nrelu,1.02,1.10\nmish,1.21,1.24\n")
    out = write_report(None, tmp_path / "r.html", activations=["relu"], bench=csv, analysis=False)
    page = _parse(out)
    assert "cost" in page.ids
    text = " ".join(page.text)
    assert "Kernel benchmark" in text and "1.21" in text and "fwdbwd_vs_floor" in text


def test_bench_json_from_actlab_bench(tmp_path: Path) -> None:
    """The layout `actlab bench --json` writes: {"kernels": [row.as_dict(), ...], ...}."""
    import json

    from actlab.bench.kernels import bench_activation

    row = bench_activation("relu", size=4096, min_run_time=0.01, rounds=1, eager=False)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"kernels": [row.as_dict()], "ffn": [], "threads": 1}))
    out = write_report(None, tmp_path / "r.html", activations=["relu"], bench=path,
                       analysis=False)
    text = " ".join(_parse(out).text)
    assert "fwd / clone" in text and "fwd+bwd / floor" in text
    from actlab.report.blocks import fmt

    assert fmt(row.fwd_ratio) in text and fmt(row.fb_ratio) in text
    bad = tmp_path / "bad.json"
    bad.write_text('{"something": 1}')
    with pytest.raises(ValueError, match="'kernels'"):
        write_report(None, tmp_path / "r2.html", activations=["relu"], bench=bad, analysis=False)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must end in \.html"):
        write_report(None, tmp_path / "r.txt", activations=["relu"])
    with pytest.raises(FileNotFoundError, match="no results database"):
        write_report(tmp_path / "missing.sqlite", tmp_path / "r.html")
    with pytest.raises(ValueError, match=r"\.csv or \.json"):
        bad = tmp_path / "b.xlsx"
        bad.write_text("x")
        write_report(None, tmp_path / "r.html", activations=["relu"], bench=bad, analysis=False)
    with pytest.raises(KeyError, match="unknown activation"):
        write_report(None, tmp_path / "r.html", activations=["nope_not_real"])


def test_cli_report(study_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.html"
    assert run(["report", "--db", str(study_db), "--out", str(out), "--no-analysis"]) == 0
    assert out.exists() and str(out) in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["report", "--db", "missing.sqlite"], "no such file"),
        (["report", "--out", "r.html"], "give --db FILE"),
        (["report", "-a", "relu", "--out", "r.pdf"], "use a .html, .htm file name"),
        (["report", "-a", "relu", "--bench", "nope.csv"], "no such file"),
    ],
)
def test_cli_report_errors(
    argv: list[str], needle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no default study database here
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_empty_and_failed_only_studies(tmp_path: Path) -> None:
    from actlab.experiments.base import RunResult, RunSpec
    from actlab.experiments.store import ResultsStore

    db = tmp_path / "s.sqlite"
    ResultsStore(db).close()
    page = _parse(write_report(db, tmp_path / "empty.html", activations=["relu"],
                               analysis=False))
    assert "holds no runs yet" in " ".join(page.text) and "results" not in page.ids
    with ResultsStore(db) as store:
        store.record(RunSpec("mlp", "relu", 0, {"dataset": "digits"}),
                     RunResult("failed", error="boom <b>"), metric="test_accuracy",
                     higher_is_better=True)
    out = write_report(db, tmp_path / "failed.html", analysis=False)
    text = out.read_text(encoding="utf-8")
    assert "boom &lt;b&gt;" in text and "1 failed" in text
    assert "no activation finished a run" in text
