"""The kernel benchmark and ``actlab bench``: structure and arithmetic, not speed."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

import actlab
from actlab.bench.ffn import bench_ffn
from actlab.bench.kernels import (
    KernelRow,
    bench_activation,
    markdown_table,
    parse_dtype,
    parse_size,
    targets,
)
from actlab.bench.timing import measure, reuse_memory
from actlab.cli import run

QUICK = {"min_run_time": 0.005, "rounds": 1}


@pytest.fixture(autouse=True)
def eager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTLAB_NO_COMPILE", "1")  # structure only: skip compile time


def test_parse_size():
    assert parse_size("2**24") == parse_size("2^24") == parse_size("16M") == 1 << 24
    assert parse_size("4096") == parse_size(4096) == parse_size("4k") == 4096
    for bad in ("lots", "2**", "1", "-5"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)


def test_parse_dtype():
    assert parse_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ValueError, match="accepted: float32"):
        parse_dtype("int8")


def test_measure_keeps_the_best_round():
    calls = {"n": 0}

    def f():
        calls["n"] += 1

    t = measure({"f": f}, min_run_time=0.001, rounds=2)
    assert 0 < t["f"] < 0.01 and calls["n"] > 2
    with pytest.raises(ValueError):
        measure({"f": f}, rounds=0)


def test_reuse_memory_is_harmless():
    assert reuse_memory() in (True, False)
    assert torch.randn(10).clone().shape == (10,)


_KEPT = """
import torch
from actlab.bench.timing import release_memory, reuse_memory
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 >> 20  # MiB (4 KiB pages)
assert reuse_memory()
before = rss()
xs = [torch.ones(1 << 20) for _ in range(64)]  # 256 MiB in 4 MiB blocks, from the heap
del xs
kept = rss()
print(release_memory(), kept - before, rss() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_memory_returns_what_reuse_memory_keeps():
    """Under reuse_memory() freed blocks stay in the process (the kernel benchmark grew to
    24 GiB over the activations and was killed); release_memory() hands them back."""
    out = subprocess.run([sys.executable, "-c", _KEPT], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "True"
    kept, released = int(out[1]), int(out[2])
    assert kept > 200 and released < 50


def test_row_ratios_follow_the_definitions():
    row = bench_activation("silu", size=4096, **QUICK)
    assert row.native == "F.silu" and not row.gated and row.size == 4096
    assert row.floor_fwd == 1.0 and row.floor_fb == 2.5
    assert math.isclose(row.fwd_ratio, row.fwd_fast / row.t_clone)
    assert math.isclose(row.fb_ratio, row.fb_fast / (2.5 * row.t_clone))
    assert math.isclose(row.fast_vs_native, row.fwd_fast / row.fwd_native)
    assert row.saved_fast == 4.0 and row.saved_composite > 4.0
    assert row.fwd_fast_again > 0 and math.isclose(row.aa, row.fwd_fast_again / row.fwd_fast)
    d = row.as_dict()
    assert d["fb_ratio"] == row.fb_ratio and d["name"] == "silu" and d["aa"] == row.aa


def test_gated_row_and_activation_without_native():
    row = bench_activation("swiglu", size=8192, backward=False, eager=False, **QUICK)
    assert row.gated and row.floor_fb == 2.0 and row.native is None
    assert math.isnan(row.fwd_native) and math.isnan(row.fb_fast)
    assert row.saved_fast == 4.0 and row.saved_composite >= 8.0  # a, b and more
    with pytest.raises(ValueError, match="even"):
        bench_activation("glu", size=4097, **QUICK)


def test_targets_and_markdown():
    def row(name, fwd, fb, native):
        return KernelRow(name, "F.x", 10, "float32", "cpu", False, "compiled", 1.0, fwd, native,
                         2.0, 3.0, fb, 2.5 * native, 5.0, 6.0, 4.0, 8.0, 0.1)

    rows = [row("good", 1.1, 2.5, 1.2), row("slow", 2.0, 5.0, 1.0)]
    s = targets(rows)
    assert s.fwd_within == ["good"] and s.fwd_over == ["slow"]
    assert s.fb_within == ["good"] and s.fb_over == ["slow"]
    assert s.slower_than_native == ["slow"]
    text = markdown_table(rows)
    assert text.count("\n") == 3 and "| good | F.x | compiled | 1.10 |" in text
    assert "| A/A |" in text and text.endswith("| 8.0 | - |")  # not timed twice: no A/A
    rows[0].fwd_fast_again = 1.21
    assert markdown_table(rows).splitlines()[2].endswith("| 8.0 | 1.10 |")


def test_ffn_rows():
    rows = bench_ffn(["relu", "swiglu"], d_model=16, d_ff=24, batch=2, seq=4, **QUICK)
    assert [r.name for r in rows] == ["relu", "swiglu"]
    assert rows[1].hidden == 16 and math.isnan(rows[1].fwd_native)
    assert rows[0].fwd_speedup > 0 and rows[0].fb_speedup > 0


def test_cli_bench_prints_the_table(capsys, tmp_path):
    out = tmp_path / "rows.json"
    code = run(["bench", "relu", "glu", "-f", "x * sigmoid(x)", "--size", "2**12", "--quick",
                "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "relu" in text and "glu" in text and "fwd/clone" in text and "total" in text
    rows = json.loads(out.read_text())["kernels"]
    assert [r["name"] for r in rows] == ["relu", "glu", "formula:x * sigmoid(x)"]


def test_cli_bench_precise_and_hand_peer(tmp_path):
    out = tmp_path / "rows.json"
    assert run(["bench", "gelu", "--size", "1024", "--quick", "--json", str(out)]) == 0
    row = json.loads(out.read_text())["kernels"][0]
    assert row["path"] == "native" and row["hand_path"] == "eager"  # compile is off here
    assert row["fwd_hand"] > 0 and row["fb_hand"] > 0
    assert run(["bench", "gelu", "--size", "1024", "--quick", "--precise", "--no-hand",
                "--json", str(out)]) == 0
    row = json.loads(out.read_text())["kernels"][0]
    assert row["path"] == "eager" and row["hand_path"] == "-"
    assert math.isnan(row["fwd_hand"])


def test_targets_against_the_better_peer():
    def row(name, fwd, native, hand):
        return KernelRow(name, "F.x", 10, "float32", "cpu", False, "compiled", 1.0, fwd, native,
                         2.0, 3.0, 2.5 * fwd, 2.5 * native, 5.0, 6.0, 4.0, 8.0, 0.1,
                         fwd_hand=hand, fb_hand=2.5 * hand)

    rows = [row("beats both", 1.0, 1.2, 1.1), row("hand wins", 1.2, 1.3, 1.0),
            row("no peer", 1.0, math.nan, math.nan)]
    s = targets(rows)
    assert s.with_peer == ["beats both", "hand wins"]
    assert s.slower_than_best == ["hand wins (1.20/1.20)"]
    assert rows[0].fast_vs_best == pytest.approx(1.0 / 1.1)
    assert math.isnan(rows[2].fast_vs_best)


def test_cli_bench_markdown_without_backward(capsys):
    assert run(["bench", "mish", "--size", "1024", "--quick", "--no-backward", "--markdown"]) == 0
    assert "| mish | F.mish | eager |" in capsys.readouterr().out  # compile is off here


@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "relu", "--size", "huge"], "size 'huge'"),
        (["bench", "relu", "--dtype", "int8"], "unknown dtype"),
        (["bench", "nosuchact", "--size", "1024"], "unknown activation"),
        (["bench", "relu", "--size", "1024", "--rounds", "0"], "--rounds"),
        (["bench", "relu", "--size", "1024", "--threads", "0"], "--threads"),
    ],
)
def test_cli_bench_bad_arguments(args, message, capsys):
    assert run(args) == 2
    assert message in capsys.readouterr().err


def test_article_gelu_as_formula_is_benchmarked():
    act = actlab.formula("0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))",
                         name="article_gelu")
    row = bench_activation(act, size=2048, **QUICK)
    assert row.name.startswith("formula:") and row.saved_fast == 4.0
