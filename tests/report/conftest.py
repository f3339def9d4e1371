"""Fixtures for the report tests: a small real study, and its report.

The study is real: actlab's own tasks in their ``quick`` setting, run by
:func:`actlab.experiments.study.run_study` in this process and written by the real store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

STUDY_TASKS = ("xor", "mlp/digits", "depth/digits", "ffn_timing", "gradflow")
STUDY_ACTIVATIONS = ("relu", "tanh")
STUDY_SEEDS = 2


@pytest.fixture(scope="session")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from actlab.experiments.study import Study, run_study

    db = tmp_path_factory.mktemp("study") / "study.sqlite"
    study = Study(tasks=STUDY_TASKS, activations=STUDY_ACTIVATIONS, seeds=STUDY_SEEDS, quick=True,
                  overrides={"steps": 100})  # xor: 100 Adam steps are enough to draw it
    summary = run_study(study, db, workers=0, progress=False)
    assert summary.ok == summary.total, summary.line()
    return db


@pytest.fixture(scope="session")
def report_file(study_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from actlab.report.html import write_report

    out = tmp_path_factory.mktemp("report") / "report.html"
    return write_report(study_db, out)
