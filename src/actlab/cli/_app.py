"""The typer application that every stage's command module adds its commands to."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="actlab",
    help="Understand, verify, measure and choose activation functions, with evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class UserError(ValueError):
    """A bad argument or input: the CLI prints its message and exits with status 2."""
