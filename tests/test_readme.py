"""The README is the contract: every Python block and every command line in it runs.

The blocks run in the README's order in one scratch directory (later examples read what
earlier ones wrote, as a reader's would). Commands that take minutes run here in a quick form
(:data:`QUICK`: the same command with smaller sizes, ``--quick`` or fewer seeds), and in full
only in the slow test. Commands that cannot run here are listed in :data:`NOT_RUN` with the
reason, and a test checks that each of those lines is still in the README, so neither list
can rot. A comment that is a Python literal (``# ('silu', 'gating', 'F.silu')``) is checked
against the value of its line.
"""

from __future__ import annotations

import ast
import gzip
import os
import re
import shlex
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from actlab.cli import run

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # line number of the first line of code
    text: str


def blocks() -> list[Block]:
    out, lang, start, buf = [], None, 0, []
    for i, line in enumerate(README.read_text().splitlines(), start=1):
        if line.startswith("```"):
            if lang is None:
                lang, start, buf = line[3:].strip() or "text", i + 1, []
            else:
                out.append(Block(lang, start, "\n".join(buf)))
                lang = None
        elif lang is not None:
            buf.append(line)
    return out


def commands() -> list[tuple[int, str]]:
    """``(line number, command)`` of every line of the README's bash blocks."""
    out = []
    for b in blocks():
        if b.lang != "bash":
            continue
        for k, line in enumerate(b.text.splitlines()):
            words = shlex.split(line, comments=True)
            if words:
                out.append((b.line + k, shlex.join(words)))
    return out


# Commands that take minutes: what runs instead in the default test (same command, smaller)
QUICK: dict[str, str] = {
    "actlab study": "actlab study --quick --seeds 1",
    "actlab audit": "actlab audit relu gelu mish --dtype float32",
    "actlab study -t cnn/fashion_mnist/short -a elu -a gelu --seeds 8":
        "actlab study -t cnn/fashion_mnist/short -a elu --seeds 1 --quick",
    "actlab bench mish gelu tanh --size '2**24'":
        "actlab bench mish gelu tanh --size '2**12' --quick",
    "actlab bench gelu --precise": "actlab bench gelu --precise --size '2**12' --quick",
    "actlab bench swiglu --ffn": "actlab bench swiglu --ffn --quick --size '2**12'",
    "python benchmarks/stack_floor.py --seeds 8":
        "python benchmarks/stack_floor.py --seeds 2 --rounds 1 --min-time 0.01",
    "python benchmarks/pau_forms.py": "python benchmarks/pau_forms.py --size 4096 --rounds 1",
}
# Commands too long even for the slow test (an hour): their quick form runs there
CAPPED: dict[str, str] = {
    "python benchmarks/fashion_reference.py --db fashion-ref.sqlite --short":
        "python benchmarks/fashion_reference.py --db fashion-ref.sqlite --tasks mlp -a relu"
        " --seeds 1",
}
# Commands run only in the slow test (in full, or as in CAPPED), with the reason. Studies
# that other tests already run end to end are here, to keep the default suite short; so
# are the README's scripts (blocks with ``if __name__ == "__main__":``), which the default
# test only compiles.
SLOW_ONLY: dict[str, str] = {
    "actlab study --tasks mlp/digits -a relu -a 'formula:x * tanh(softplus(x))' --db runs.sqlite":
        "a study with a formula (test_cli_study.py)",
    "actlab study --tasks cnn/mnist1d/paper --activations relu --seeds 3":
        "a paper preset (test_tasks.py)",
    "actlab study --tasks mlp/mnist --data-dir '~/data' --grid epochs=5":
        "MNIST from IDX files (test_data.py, test_tasks.py)",
    "actlab study --quick -t mlp/mnist1d -a relu,gelu --seeds 4 --workers 1 --db stacked.sqlite":
        "stacked seeds (test_stacked.py, test_grouping.py)",
    "actlab study --quick -t mlp/mnist1d -a relu,gelu --seeds 4 --workers 1 --db alone.sqlite"
    " --no-stack": "one by one (test_grouping.py)",
    "python benchmarks/fashion_reference.py --db fashion-ref.sqlite --short":
        "trains the full MLP recipe (half a minute, capped)",
    "actlab study --tasks xor --executor ray --address 10.0.0.5:6379 --db cluster.sqlite":
        "waits for Ray's connection timeout (20 s); test_cli_study.py covers it",
    "python benchmarks/engine.py --tasks mlp/mnist1d --rounds 1 --seeds 4 --no-stack-table":
        "a benchmark (a minute)",
    "actlab study --tasks examples/fashion_resnet.py:train -a relu,gelu,silu,mish --quick"
    " --db fr.sqlite": "trains a ResNet (minutes)",
    "actlab study --tasks examples/fashion_resnet.py:train -a relu,mish --quick --grid"
    " lr=0.002,0.005 --executor ray --db fr.sqlite": "starts a local Ray instance",
    "actlab results --db fr.sqlite --failed": "reads what the two lines above wrote",
    "actlab study --tasks xor --lr 1e-3,1e-2 --executor ray": "starts a local Ray instance",
    "actlab bench --quick --size '2**20' --no-hand": "compiles every activation (minutes)",
    "python benchmarks/kernels.py --sizes '2**24' --clock cpu": "a benchmark (minutes)",
    "python benchmarks/modules.py": "a benchmark (minutes)",
    "python benchmarks/memory.py": "a benchmark (minutes)",
    "python benchmarks/accuracy.py": "a benchmark (a minute)",
    "python benchmarks/training.py --epochs 2": "a benchmark (minutes)",
}
# Commands that cannot run in a test, with the reason
NOT_RUN: dict[str, str] = {
    "make demo": "the set-up itself (CI runs `make test`)",
    "make test": "the set-up itself (CI runs it)",
}
# Commands whose documented outcome is not exit status 0
EXPECTED_STATUS: dict[str, int] = {
    "actlab audit --formula 'x*tanh(log(1+exp(x)))'": 1,  # naive Mish fails: the point
    # no such cluster (its own database, so that it has runs to do and must connect)
    "actlab study --tasks xor --executor ray --address 10.0.0.5:6379 --db cluster.sqlite": 2,
}


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """The directory the README runs in, with a small MNIST in IDX format under ``~/data``."""
    return _home(tmp_path_factory.mktemp("home"))


def _home(home: Path) -> Path:
    """``home/work`` to run the README in, with a small MNIST under ``home/data``."""
    mnist = home / "data" / "mnist"
    mnist.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 600), ("t10k", 200)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 40, (n, 28, 28)) + (labels[:, None, None] * 20)
        _write_idx(mnist / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(mnist / f"{split}-labels-idx1-ubyte.gz", labels)
    work = home / "work"
    work.mkdir()
    # the README's commands run from a checkout: its example files where they say
    (work / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    return work


def _run_command(command: str, scratch: Path) -> int:
    words = shlex.split(command)
    words = [os.path.expanduser(w) if w.startswith("~") else w for w in words]
    if words[0] == "actlab":
        return run(words[1:])
    if words[0] == "python":
        done = subprocess.run([sys.executable, str(ROOT / words[1]), *words[2:]], cwd=scratch,
                              timeout=1800)
        return done.returncode
    raise AssertionError(f"the README runs {words[0]!r}: teach tests/test_readme.py about it")


def _check_literal_comments(block: Block, namespace: dict) -> None:
    """Lines ``expression  # literal``: the expression's value equals the literal."""
    for k, line in enumerate(block.text.splitlines()):
        code, sep, comment = line.partition("  #")
        if not sep or not code.strip() or code.startswith((" ", "\t")):
            continue
        try:
            expected = ast.literal_eval(comment.strip())
            tree = ast.parse(code.strip(), mode="eval")
        except (SyntaxError, ValueError):
            continue
        body = tree.body
        if (isinstance(body, ast.Call) and isinstance(body.func, ast.Name)
                and body.func.id == "print" and len(body.args) == 1):
            tree = ast.Expression(body.args[0])  # print(x)  # value: check x
        got = eval(compile(tree, f"README.md:{block.line + k}", "eval"), namespace)
        if isinstance(expected, float):
            assert got == pytest.approx(expected, rel=1e-3), (block.line + k, got)
        else:
            assert got == expected, (block.line + k, got, expected)


def _walk(scratch: Path, monkeypatch, slow: bool) -> None:
    monkeypatch.chdir(scratch)
    monkeypatch.setenv("HOME", str(scratch.parent))
    namespace: dict = {"__name__": "__main__"}
    for block in blocks():
        if block.lang == "python" and 'if __name__ == "__main__":' in block.text:
            # a script (worker processes re-import it): run it as one, as a reader must
            compile(block.text, f"README.md:{block.line}", "exec")
            if not slow:
                continue
            script = scratch / f"readme_{block.line}.py"
            script.write_text(block.text)
            done = subprocess.run([sys.executable, script.name], cwd=scratch, timeout=1800,
                                  capture_output=True, text=True)
            assert done.returncode == 0, f"README.md:{block.line}: {done.stderr[-3000:]}"
        elif block.lang == "python":
            code = compile(block.text, f"README.md:{block.line}", "exec")
            exec(code, namespace)
            _check_literal_comments(block, namespace)
        elif block.lang == "bash":
            for k, line in enumerate(block.text.splitlines()):
                words = shlex.split(line, comments=True)
                if not words:
                    continue
                command = shlex.join(words)
                if command in NOT_RUN:
                    continue
                if command in SLOW_ONLY and not slow:
                    continue
                actual = CAPPED.get(command, command) if slow else QUICK.get(command, command)
                status = _run_command(actual, scratch)
                want = EXPECTED_STATUS.get(command, 0)
                assert status == want, f"README.md:{block.line + k}: {actual} -> {status}"


FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION / "train-images-idx3-ubyte.gz").exists() and not os.environ.get("ACTLAB_DATA_DIR"),
    reason="the default study needs Fashion-MNIST (Debian's dataset-fashion-mnist; `make system`)",
)


@needs_fashion
def test_the_readme_runs(scratch, monkeypatch, capsys):
    _walk(scratch, monkeypatch, slow=False)


@needs_fashion
@pytest.mark.slow
@pytest.mark.timeout(3600)  # every command in full: the default study, the ResNet, benchmarks
def test_the_readme_runs_in_full(tmp_path, monkeypatch):
    _walk(_home(tmp_path), monkeypatch, slow=True)


def test_every_special_case_is_still_in_the_readme():
    lines = {c for _, c in commands()}
    for table in (QUICK, CAPPED, SLOW_ONLY, NOT_RUN, EXPECTED_STATUS):
        stale = sorted(set(table) - lines)
        assert not stale, f"no longer in the README (update tests/test_readme.py): {stale}"


def test_every_command_is_one_the_test_knows_how_to_run():
    for line, command in commands():
        head = shlex.split(command)[0]
        assert head in {"actlab", "python", "make"}, f"README.md:{line}: {command}"
        if head == "make":
            assert command in NOT_RUN or re.fullmatch(r"make [a-z-]+", command)
            target = command.split()[1]
            assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), re.M), command
