"""A study killed with SIGKILL resumes and loses only the runs that were in flight."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

DRIVER = """
import sys
sys.path.insert(0, {here!r})
import study_tasks  # registers tiny_slow
from actlab.experiments.study import Study, run_study
study = Study(tasks=["tiny_slow"], activations=["relu", "tanh"], seeds=7,
              overrides={{"sleep": 0.4, "log": {log!r}}})
print(run_study(study, {db!r}, workers=int(sys.argv[1]), progress=False).line())
"""


def _finished(db: Path) -> dict[str, str]:
    """``{key: started_at}`` of the finished runs (read while the study writes: WAL)."""
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT key, started_at FROM runs WHERE status = 'ok'").fetchall()
    except sqlite3.OperationalError:  # the schema is being created
        rows = []
    finally:
        con.close()
    return dict(rows)


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the process group."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _wait_for_no_orphans(pgid: int, timeout: float = 30.0) -> None:
    """The workers notice that their parent died and exit (no orphans keep running)."""
    deadline = time.monotonic() + timeout
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            os.killpg(pgid, signal.SIGKILL)
            raise AssertionError("worker processes outlived the killed study")
        time.sleep(0.1)


def test_sigkill_resume(tmp_path):
    db, log = tmp_path / "study.sqlite", tmp_path / "executions.txt"
    script = DRIVER.format(here=str(HERE), log=str(log), db=str(db))
    cmd = [sys.executable, "-c", script]
    proc = subprocess.Popen([*cmd, "2"], start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while len(_finished(db)) < 4:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the study did not finish 4 runs in 120 s"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 the study (its workers are not told)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    _wait_for_no_orphans(proc.pid)
    before = _finished(db)
    started = log.read_text().splitlines()
    assert 4 <= len(before) < 14, "kill the study while it still has runs to do"
    in_flight = len(started) - len(before)
    assert 0 <= in_flight <= 2  # at most one run per worker was lost

    # the same study again (in one process this time, to keep the test short)
    out = subprocess.run([*cmd, "0"], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert f"{len(before)} already in the database" in out.stdout
    after = _finished(db)
    assert len(after) == 14  # every run present, once (the key is the primary key)
    assert all(after[k] == v for k, v in before.items())  # finished runs untouched
    counts = Counter(line.split("\t")[0] for line in log.read_text().splitlines())
    assert set(counts) == set(after)
    assert all(counts[k] == 1 for k in before)  # no finished run executed again
    assert sum(counts.values()) == 14 + in_flight


# SIGINT's default handler, as in a terminal: a test run started in the background by a
# non-interactive shell inherits SIGINT ignored, and Python keeps it so
CTRL_C = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {here!r})
import study_tasks  # registers tiny_slow
from actlab.cli import run
sys.exit(run(["study", "-t", "tiny_slow", "-a", "relu", "--seeds", "30", "--workers", "2",
              "--grid", "sleep=0.3", "--grid", "log={log}", "--db", {db!r}]))
"""


def test_ctrl_c_stops_cleanly(tmp_path):
    db, log = tmp_path / "study.sqlite", tmp_path / "executions.txt"
    script = CTRL_C.format(here=str(HERE), log=str(log), db=str(db))
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(_finished(db)) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the study did not finish 2 runs in 120 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert "interrupted: 30 runs:" in err and "re-run the same command to resume" in err
    _wait_for_no_orphans(proc.pid)
    finished = _finished(db)
    assert 2 <= len(finished) < 30
    assert len(log.read_text().splitlines()) - len(finished) <= 2  # only in-flight runs lost


def _sigint_held(queue) -> None:  # runs in a spawned process, before anything else
    queue.put(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_workers_spawned_under_ctrl_c_held_hold_it_from_the_start():
    # a worker still importing torch when Ctrl-C reaches the process group must not
    # print a traceback: it inherits SIGINT blocked from the parent's spawn
    import multiprocessing

    from actlab.experiments.executors import _ctrl_c_held

    ctx = multiprocessing.get_context("spawn")
    seen = []
    for held in (True, False):
        queue = ctx.Queue()
        proc = ctx.Process(target=_sigint_held, args=(queue,))
        if held:
            with _ctrl_c_held():
                proc.start()
        else:
            proc.start()
        seen.append(queue.get(timeout=60))
        proc.join(timeout=60)
    assert seen == [True, False]
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # restored


def test_ctrl_c_inside_the_spawn_window_is_delivered_after_it_not_lost():
    import threading

    from actlab.experiments.executors import _ctrl_c_held

    reached_end_of_window = False
    # the default handler, as in a terminal (see CTRL_C)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), _ctrl_c_held():
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(0.05)  # Python would run the handler here if it were not held
            reached_end_of_window = True
    finally:
        signal.signal(signal.SIGINT, previous)
    assert reached_end_of_window
