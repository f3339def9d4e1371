"""The SQLite results store: one row per run, written when the run finishes.

The database is the study's only state. Each finished run is written in its own
transaction (WAL journal, ``synchronous=FULL``), so a study killed at any moment (even
with ``SIGKILL``) keeps every run that had finished and loses only the runs in flight.
One process writes (the study driver); any number may read at the same time.

Layout (schema version 1)::

    schema_version(version)          one row; checked on open
    runs(key PRIMARY KEY, task, dataset, activation, seed, config_hash, spec_json,
         status, metric, higher_is_better, value, metrics_json, curves_json,
         artifacts_json, diverged_step, error, wall_time, started_at, finished_at,
         host, device, actlab_version, torch_version, python_version, attempts)

A run is *finished* when its status is ``ok`` or ``diverged``; a ``failed`` run (an
exception) is retried by the next study and its row replaced. A finished row is never
replaced. A database written by another schema version is refused with a clear error and
left untouched (there are no older versions to migrate from yet; :data:`MIGRATIONS` is
where a future version adds them).

Example:
    >>> with ResultsStore("runs.sqlite") as store:        # doctest: +SKIP
    ...     for run in store.runs(task="mlp"):
    ...         print(run.spec.activation, run.result.metrics, run.result.curves.keys())
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import platform
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actlab.experiments.base import (
    STATUS_DIVERGED,
    STATUS_FAILED,
    STATUS_OK,
    RunResult,
    RunSpec,
)

SCHEMA_VERSION = 1
FINISHED = (STATUS_OK, STATUS_DIVERGED)
STATUSES = (STATUS_OK, STATUS_DIVERGED, STATUS_FAILED)

#: ``MIGRATIONS[v]`` upgrades a connection from schema ``v`` to ``v + 1`` (in a transaction).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    dataset TEXT,
    activation TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config_hash TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'diverged', 'failed')),
    metric TEXT,
    higher_is_better INTEGER,
    value REAL,
    metrics_json TEXT NOT NULL,
    curves_json TEXT NOT NULL,
    artifacts_json TEXT NOT NULL,
    diverged_step INTEGER,
    error TEXT,
    wall_time REAL,
    started_at TEXT,
    finished_at TEXT,
    host TEXT,
    device TEXT,
    actlab_version TEXT,
    torch_version TEXT,
    python_version TEXT,
    attempts INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS runs_task ON runs (task, dataset, config_hash);
"""

_COLUMNS = (
    "key", "task", "dataset", "activation", "seed", "config_hash", "spec_json", "status",
    "metric", "higher_is_better", "value", "metrics_json", "curves_json", "artifacts_json",
    "diverged_step", "error", "wall_time", "started_at", "finished_at", "host", "device",
    "actlab_version", "torch_version", "python_version",
)


class StoreError(ValueError):
    """The database cannot be used (wrong schema version, not an actlab database...)."""


def _unreadable(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    """One sentence for an SQLite error while reading or writing ``path``."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return StoreError(
            f"results database {path} is locked by another process ({text}); wait for it "
            "or give another --db"
        )
    return StoreError(
        f"results database {path} is damaged ({text}); its runs cannot be read safely: "
        "restore a copy, or give another --db (actlab never repairs or overwrites it)"
    )


@contextlib.contextmanager
def _sql(path: Path) -> Iterator[None]:
    """Turn SQLite errors into one clear :class:`StoreError`."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise _unreadable(path, exc) from None


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a store method (or generator) under :func:`_sql`."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def gen(self: ResultsStore, *args: Any, **kwargs: Any) -> Any:
            with _sql(self.path):
                yield from method(self, *args, **kwargs)

        return gen

    @functools.wraps(method)
    def wrapper(self: ResultsStore, *args: Any, **kwargs: Any) -> Any:
        with _sql(self.path):
            return method(self, *args, **kwargs)

    return wrapper


def now_iso() -> str:
    """The current UTC time as ISO 8601 text (what the store writes for timestamps)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class RunMeta:
    """Where and when a run executed (filled in by the executor's worker)."""

    started_at: str = ""
    finished_at: str = ""
    host: str = field(default_factory=platform.node)
    device: str = ""
    actlab_version: str = ""
    torch_version: str = ""
    python_version: str = field(default_factory=platform.python_version)


@dataclass
class StoredRun:
    """One row of the store, decoded.

    Attributes:
        key: ``RunSpec.key``.
        spec: the run's :class:`RunSpec`.
        result: its :class:`RunResult` (metrics, curves, artifacts, status...).
        metric: the task's primary metric name; ``higher_is_better`` its direction.
        value: the primary metric's value (``None`` when the run did not produce it).
        meta: timestamps, host, device and versions.
        attempts: how many times the run was executed and written (failed runs retry).
    """

    key: str
    spec: RunSpec
    result: RunResult
    metric: str | None
    higher_is_better: bool | None
    value: float | None
    meta: RunMeta
    attempts: int

    @property
    def dataset(self) -> str | None:
        return _dataset(self.spec)


def _dataset(spec: RunSpec) -> str | None:
    ds = spec.config.get("dataset") if isinstance(spec.config, dict) else None
    return None if ds is None else str(ds)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=_json_default)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays / scalars, tensors
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def _finite_or_none(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class ResultsStore:
    """A study's SQLite database of runs.

    Args:
        path: the database file (``.sqlite``); created with the schema if missing
            (unless ``create=False``, which raises ``FileNotFoundError`` instead).
        create: allow creating a new database.

    Raises:
        StoreError: the file is not an actlab results database, or was written with
            another schema version (the file is left untouched).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise FileNotFoundError(
                    f"no results database at {self.path}; run `actlab study --db {self.path}` first"
                )
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._open()

    # ------------------------------------------------------------------ opening
    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open results database {self.path}: {exc}") from None
        try:
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(
                f"{self.path} is not an SQLite database ({exc}); give another --db file"
            ) from None
        if not tables:
            self._set_pragmas(conn)
            try:
                conn.executescript(
                    "BEGIN IMMEDIATE;" + _SCHEMA + "INSERT INTO schema_version (version) "
                    f"SELECT {SCHEMA_VERSION} WHERE NOT EXISTS (SELECT 1 FROM schema_version);"
                    "COMMIT;"
                )
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()
                raise
            tables = {"schema_version", "runs"}
        if "schema_version" not in tables:
            conn.close()
            raise StoreError(
                f"{self.path} is an SQLite database but not an actlab results database "
                f"(no schema_version table; it has {', '.join(sorted(tables))}); "
                "give another --db file"
            )
        try:
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _unreadable(self.path, exc) from None
        version = row[0] if row else None
        if version == SCHEMA_VERSION:
            self._check_pages(conn)
            self._set_pragmas(conn)
            return conn
        if isinstance(version, int) and version < SCHEMA_VERSION and all(
            v in MIGRATIONS for v in range(version, SCHEMA_VERSION)
        ):
            self._set_pragmas(conn)
            self._migrate(conn, version)
            return conn
        conn.close()
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer actlab (results schema version {version}); "
                f"this actlab reads version {SCHEMA_VERSION}: upgrade actlab or give another --db"
            )
        raise StoreError(
            f"{self.path} has results schema version {version!r}, which this actlab "
            f"(schema version {SCHEMA_VERSION}) cannot read or migrate; the file was left "
            "untouched: give another --db file"
        )

    def _check_pages(self, conn: sqlite3.Connection) -> None:
        """SQLite's ``quick_check`` (every page and index, in milliseconds for a study's
        database): a file with a valid header but damaged pages is refused at once."""
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _unreadable(self.path, exc) from None
        lines = [line.strip() for r in rows if r and r[0] for line in str(r[0]).splitlines()]
        problems = [line for line in lines if line not in ("ok", "*** in database main ***")]
        if problems:
            conn.close()
            more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
            raise _unreadable(self.path, sqlite3.DatabaseError(f"{problems[0]}{more}"))

    @staticmethod
    def _set_pragmas(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=60000")

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for v in range(version, SCHEMA_VERSION):
                MIGRATIONS[v](conn)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    @_guarded
    def schema_version(self) -> int:
        return int(self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    # ------------------------------------------------------------------ writing
    @_guarded
    def record(
        self,
        spec: RunSpec,
        result: RunResult,
        meta: RunMeta | None = None,
        *,
        metric: str | None = None,
        higher_is_better: bool | None = None,
    ) -> bool:
        """Write one run in its own transaction; return whether the row was written.

        A new key is inserted. An existing ``failed`` row is replaced (``attempts`` + 1).
        An existing finished row (``ok``/``diverged``) is never replaced: returns False.

        Args:
            spec: the run.
            result: what it produced (``result.status`` must be ok, diverged or failed).
            meta: timestamps, host, versions (defaults: now, this host).
            metric: the task's primary metric name (stored so that statistics need no
                task registry); ``higher_is_better`` its direction.
        """
        if result.status not in STATUSES:
            raise ValueError(
                f"run status {result.status!r} is not one of {', '.join(STATUSES)}"
            )
        meta = meta or RunMeta(started_at=now_iso(), finished_at=now_iso())
        value = _finite_or_none(result.metrics.get(metric)) if metric else None
        row = (
            spec.key, spec.task, _dataset(spec), spec.activation, int(spec.seed),
            spec.config_hash, spec.to_json(), result.status, metric,
            None if higher_is_better is None else int(bool(higher_is_better)), value,
            _dumps(result.metrics), _dumps(result.curves), _dumps(result.artifacts),
            result.diverged_step, result.error, float(result.wall_time),
            meta.started_at, meta.finished_at, meta.host, meta.device,
            meta.actlab_version, meta.torch_version, meta.python_version,
        )
        names = ", ".join(_COLUMNS)
        marks = ", ".join("?" for _ in _COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "key")
        sql = (
            f"INSERT INTO runs ({names}) VALUES ({marks}) ON CONFLICT(key) DO UPDATE SET "
            f"{updates}, attempts = runs.attempts + 1 WHERE runs.status = 'failed'"
        )
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            cur = self._conn.execute(sql, row)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return cur.rowcount > 0

    # ------------------------------------------------------------------ reading
    @_guarded
    def statuses(self) -> dict[str, str]:
        """``{key: status}`` for every stored run."""
        return dict(self._conn.execute("SELECT key, status FROM runs").fetchall())

    @_guarded
    def finished_keys(self) -> set[str]:
        """Keys of runs that a study skips (status ``ok`` or ``diverged``)."""
        rows = self._conn.execute(
            "SELECT key FROM runs WHERE status IN (?, ?)", FINISHED
        ).fetchall()
        return {r[0] for r in rows}

    @_guarded
    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    @_guarded
    def runs(
        self,
        task: str | None = None,
        *,
        dataset: str | None = None,
        activation: str | None = None,
        status: str | Iterable[str] | None = None,
    ) -> list[StoredRun]:
        """Stored runs, optionally filtered, ordered by task, dataset, activation, seed.

        ``task`` may be ``"mlp"`` or ``"mlp/digits"`` (task/dataset).
        """
        where, args = [], []
        if task is not None:
            name, _, ds = task.partition("/")
            where.append("task = ?")
            args.append(name)
            if ds:
                dataset = ds
        if dataset is not None:
            where.append("dataset = ?")
            args.append(dataset)
        if activation is not None:
            where.append("activation = ?")
            args.append(activation)
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' for _ in wanted)})")
            args.extend(wanted)
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY task, dataset, config_hash, activation, seed"
        cur = self._conn.execute(sql, args)
        cols = [d[0] for d in cur.description]
        return [_decode(dict(zip(cols, r, strict=False))) for r in cur.fetchall()]

    @_guarded
    def run(self, key: str) -> StoredRun:
        """The stored run with this ``RunSpec.key`` (``KeyError`` if absent)."""
        cur = self._conn.execute("SELECT * FROM runs WHERE key = ?", (key,))
        row = cur.fetchone()
        if row is None:
            raise KeyError(f"no run with key {key!r} in {self.path}")
        return _decode(dict(zip([d[0] for d in cur.description], row, strict=True)))

    def curves(self, key: str) -> dict[str, list[float]]:
        """Per-epoch series of one run (e.g. ``train_loss``, ``test_accuracy``)."""
        return self.run(key).result.curves

    def artifacts(self, key: str) -> dict[str, Any]:
        """Other outputs of one run (decision-boundary grid, timing tables, ...)."""
        return self.run(key).result.artifacts

    @_guarded
    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """Raw rows as dicts (JSON columns still encoded)."""
        cur = self._conn.execute("SELECT * FROM runs ORDER BY task, dataset, activation, seed")
        cols = [d[0] for d in cur.description]
        for r in cur:
            yield dict(zip(cols, r, strict=True))


def _decode(row: dict[str, Any]) -> StoredRun:
    spec_d = json.loads(row["spec_json"])
    spec = RunSpec(
        task=spec_d["task"],
        activation=spec_d["activation"],
        seed=int(spec_d["seed"]),
        config=spec_d.get("config", {}),
    )
    result = RunResult(
        status=row["status"],
        metrics=json.loads(row["metrics_json"]),
        curves=json.loads(row["curves_json"]),
        wall_time=row["wall_time"] or 0.0,
        diverged_step=row["diverged_step"],
        error=row["error"],
        artifacts=json.loads(row["artifacts_json"]),
    )
    meta = RunMeta(
        started_at=row["started_at"] or "",
        finished_at=row["finished_at"] or "",
        host=row["host"] or "",
        device=row["device"] or "",
        actlab_version=row["actlab_version"] or "",
        torch_version=row["torch_version"] or "",
        python_version=row["python_version"] or "",
    )
    hib = row["higher_is_better"]
    return StoredRun(
        key=row["key"],
        spec=spec,
        result=result,
        metric=row["metric"],
        higher_is_better=None if hib is None else bool(hib),
        value=row["value"],
        meta=meta,
        attempts=int(row["attempts"]),
    )


def task_id(task: str, dataset: str | None) -> str:
    """``("mlp", "digits")`` -> ``"mlp/digits"``; ``("xor", None)`` -> ``"xor"``."""
    return f"{task}/{dataset}" if dataset else task


_FIXED = (
    "key", "task", "dataset", "task_id", "activation", "seed", "config_hash", "status",
    "metric", "higher_is_better", "value", "diverged_step", "error", "wall_time",
    "started_at", "finished_at", "host", "device", "attempts", "actlab_version",
    "torch_version", "python_version", "config",
)


def load_results(db: str | Path) -> Any:
    """All runs of a results database as a pandas DataFrame, one row per run.

    Columns: ``key, task, dataset, task_id`` (``"mlp/digits"``), ``activation, seed,
    config_hash, status`` (ok/diverged/failed), ``metric`` (the task's primary metric
    name), ``higher_is_better, value`` (that metric's value; NaN unless finite),
    ``diverged_step, error, wall_time, started_at, finished_at, host, device, attempts``,
    versions, ``config`` (dict), then one column per final metric (e.g.
    ``test_accuracy``; a metric whose name clashes with a fixed column gets the prefix
    ``metric.``). Curves and artifacts stay in the database:
    ``ResultsStore(db).curves(key)`` / ``.artifacts(key)``.

    Example:
        >>> df = actlab.load_results("actlab-study.sqlite")          # doctest: +SKIP
        >>> df.groupby(["task_id", "activation"]).value.mean()       # doctest: +SKIP
    """
    import pandas as pd

    with ResultsStore(db, create=False) as store:
        rows = list(store.iter_rows())
    records = []
    for r in rows:
        spec = json.loads(r["spec_json"])
        rec: dict[str, Any] = {c: r.get(c) for c in _FIXED if c in r}
        rec["task_id"] = task_id(r["task"], r["dataset"])
        rec["config"] = spec.get("config", {})
        hib = r["higher_is_better"]
        rec["higher_is_better"] = None if hib is None else bool(hib)
        rec["value"] = float("nan") if r["value"] is None else float(r["value"])
        for name, v in json.loads(r["metrics_json"]).items():
            col = f"metric.{name}" if name in _FIXED else name
            rec[col] = _finite_or_none(v) if not isinstance(v, str) else v
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    if df.empty:
        df = pd.DataFrame(columns=list(_FIXED))
    metric_cols = [c for c in df.columns if c not in _FIXED]
    return df[[c for c in _FIXED if c in df.columns] + metric_cols]
