"""Shared pytest configuration for every area of actlab's tests (keep it small)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

# Shared CI machines are slow and noisy: no per-example deadline, a modest example count.
settings.register_profile("actlab", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("actlab")


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Unregister every user activation that the test registered."""
    import actlab

    before = set(actlab.names())
    yield
    for name in set(actlab.names()) - before:
        actlab.unregister(name)
