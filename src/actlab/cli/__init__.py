"""``actlab`` command line: thin wrappers that parse arguments, call the API, print.

Each stage keeps its commands in its own module here (``catalog``, ``analysis``,
``study``, ``bench``, ``report``); they all register on one typer app.
"""

from __future__ import annotations

import sys

import typer

from actlab.cli import analysis, bench, catalog, report, study  # noqa: F401  (registers commands)
from actlab.cli._app import UserError, app

__all__ = ["UserError", "app", "main", "run"]


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return the exit status: 0 ok, 1 a failure of the work
    itself (failed runs, a failed audit), 2 bad arguments or input (one line on stderr)."""
    try:
        rv = app(args=argv, prog_name="actlab", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.exceptions.TyperException as exc:  # usage errors: unknown option, bad value
        print(f"actlab: error: {exc.format_message()} (see 'actlab --help')", file=sys.stderr)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        print("actlab: aborted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as exc:  # bad input: UserError, StoreError, ...
        msg = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
        print(f"actlab: error: {msg}", file=sys.stderr)
        return 2
    return int(rv) if isinstance(rv, int) else 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run(sys.argv[1:]))
