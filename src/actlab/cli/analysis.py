"""CLI commands of the analysis stage."""

from __future__ import annotations

from actlab.cli._app import app  # noqa: F401
