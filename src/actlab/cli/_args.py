"""The one convention every ``actlab`` command follows for its arguments.

* Lists: a list option repeats or takes commas, or both: ``-a relu,gelu -a mish``; numbers
  too: ``--depth 5,10,20`` (the older ``--depth 5 10 20`` still works where it did).
  Commas inside parentheses belong to the item: ``-a "formula:max(x, 0)"``.
* Activations: ``-a/--activations NAME`` (names, aliases, or ``formula:TEXT``); commands about
  activations also take the names as arguments (``actlab plot relu gelu``); ``--formula TEXT``
  is the same as ``-a formula:TEXT``.
* Study tasks: ``-t/--tasks ID`` (``--task`` is accepted as well).
* Results database: ``--db PATH`` on every command that reads or writes one (default
  :data:`~actlab.experiments.study.DEFAULT_DB`; ``recommend --from`` is accepted as well).
* Output files: ``-o/--out PATH``; the directory must exist (nothing is created silently).
* Bad arguments: :class:`~actlab.cli._app.UserError`, printed as one line, exit status 2.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from actlab.cli._app import UserError

IMAGE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")

# the shared option declarations (every command spells them the same way)
ActivationsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--activations", "-a", "--activation",
        help="Activations: names, aliases or formula:TEXT (repeat, or separate with commas).",
    ),
]
FormulaOpt = Annotated[
    list[str] | None,
    typer.Option("--formula", "-f", help="A formula in x: the same as -a formula:TEXT."),
]
NamesArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="[NAME...]", help="Activation names (the same as -a)."),
]
TasksOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tasks", "-t", "--task", help="Task ids TASK[/DATASET[/PRESET]] (repeat, or commas)."
    ),
]


def split(items: list[str] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``; commas inside parentheses are kept
    (``"formula:max(x, 0),relu"`` -> ``["formula:max(x, 0)", "relu"]``)."""
    out: list[str] = []
    for item in items or []:
        depth, start = 0, 0
        for i, ch in enumerate(item):
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth = max(0, depth - 1)
            elif ch == "," and depth == 0:
                out.append(item[start:i])
                start = i + 1
        out.append(item[start:])
    return [p.strip() for p in out if p.strip()]


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def activation_names(
    names: list[str] | None = None,
    activations: list[str] | None = None,
    formulas: list[str] | None = None,
) -> list[str]:
    """The activations of a command: positional names, ``-a`` items, then ``--formula``
    texts (as ``formula:TEXT``), in order and without repeats."""
    keys = [*split(names), *split(activations)]
    keys += [f if f.startswith("formula:") else f"formula:{f}" for f in formulas or []]
    return list(dict.fromkeys(keys))


def resolve_activations(keys: list[str], params: dict[str, float] | None = None) -> list[Any]:
    """``Activation`` objects for the keys; an unknown name or bad formula is a UserError."""
    from actlab.catalog import get

    acts = []
    for key in keys:
        try:
            acts.append(get(key, **(params or {})))
        except (KeyError, ValueError, TypeError) as exc:
            raise UserError(exc.args[0] if exc.args else str(exc)) from None
    return acts


def numbers(
    items: list[str] | None, option: str, *, integer: bool = False, low: float | None = None,
    strict_low: bool = False,
) -> list[float]:
    """Numbers of a list option (repeat or commas); ``low`` is the smallest accepted value
    (excluded with ``strict_low``)."""
    out: list[float] = []
    for text in split(items):
        try:
            value = float(text) if not integer else float(int(float(text)))
        except ValueError:
            raise UserError(f"{option} {text!r} is not a number") from None
        if not math.isfinite(value) or (integer and value != float(text)):
            kind = "an integer" if integer else "a finite number"
            raise UserError(f"{option} {text!r} must be {kind}")
        if low is not None and (value < low or (strict_low and value == low)):
            sign = ">" if strict_low else ">="
            raise UserError(f"{option} values must be {sign} {low:g}, got {text}")
        out.append(int(value) if integer else value)
    return out


def positive(value: int, option: str) -> int:
    """``value`` if it is >= 1, else a UserError naming the option."""
    if value < 1:
        raise UserError(f"{option} must be at least 1, got {value}")
    return value


def out_path(path: Path, option: str = "--out", suffixes: tuple[str, ...] = ()) -> Path:
    """An output file: its directory must exist, its suffix be one of ``suffixes``."""
    if suffixes and path.suffix.lower() not in suffixes:
        raise UserError(f"{option} {path}: use a {', '.join(suffixes)} file name")
    parent = path.expanduser().parent
    if not parent.is_dir():
        raise UserError(f"{option} {path}: the directory {parent} does not exist; create it first")
    if path.is_dir():
        raise UserError(f"{option} {path} is a directory; give a file name")
    return path


def existing_db(db: Path, option: str = "--db") -> Path:
    """A results database that must exist (results, report, recommend)."""
    if not db.exists():
        raise UserError(f"{option} {db}: no such file; run `actlab study --db {db}` first")
    if db.is_dir():
        raise UserError(f"{option} {db} is a directory; give the .sqlite file")
    from actlab.experiments.store import ResultsStore

    ResultsStore(db, create=False).close()  # damaged or foreign: refused before any work
    return db


def device(name: str | None, option: str = "--device") -> Any:
    """A checked ``torch.device`` (``None``: ``$ACTLAB_DEVICE``, else CUDA if any, else CPU)."""
    from actlab.catalog.runtime import resolve_device

    try:
        return resolve_device(name)
    except ValueError as exc:
        msg = str(exc)
        raise UserError(msg.replace("device ", f"{option} ", 1) if name else msg) from None
