"""CLI commands of the bench stage."""

from __future__ import annotations

from actlab.cli._app import app  # noqa: F401
