"""The examples a user copies run as written (their quick forms)."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason="Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)")
def test_fashion_resnet_example_quick(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    db, html = tmp_path / "ex.sqlite", tmp_path / "ex.html"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "fashion_resnet.py"), "--quick",
         "--db", str(db), "--out", str(html), "--workers", "2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    # the gain table init_ applied, for each activation: the stem reads the image (gain 1),
    # every other layer an activation (its gain)
    assert re.search(r"stem\.0 +Conv2d\(1->16, 3x3\) +- +1\.0000", out)
    for act, gain in [("relu", "1.4142"), ("gelu", "1.5335"), ("silu", "1.6765"),
                      ("mish", "1.4868")]:
        assert re.search(rf"layers\.1\.shortcut\.0 +Conv2d\(16->32, 1x1\) +{act} +{gain}", out)
    # the study: 4 activations x 3 seeds, all finished, ranked, with a confidence statement
    assert "12 runs: 12 ok, 0 diverged, 0 failed" in out
    assert "fashion_resnet: test accuracy over 3 seed(s)" in out
    for act in ("relu", "gelu", "silu", "mish"):
        assert re.search(rf"\d\. {act} +0\.\d{{4}} ± 0\.\d{{4}}", out)
    rows = sqlite3.connect(db).execute(
        "SELECT activation, COUNT(*), MIN(value), MAX(value) FROM runs WHERE status = 'ok' "
        "GROUP BY activation").fetchall()
    assert {r[0] for r in rows} == {"relu", "gelu", "silu", "mish"}
    assert all(r[1] == 3 and 0.1 <= r[2] <= r[3] <= 1.0 for r in rows)
    assert html.exists() and "fashion_resnet" in html.read_text()
