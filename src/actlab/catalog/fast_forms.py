"""Cheaper formulations of some built-ins, used only by the compiled fast path.

``FAST_FORMS[name] = (forward, derivative)`` with the spec's signatures. Each form is
algebraically equal to the catalog's, as stable in both tails, and cheaper to compute
(fewer transcendental calls); ``tests/bench`` holds them to the catalog's tolerances.
"""

from __future__ import annotations

from collections.abc import Callable

FAST_FORMS: dict[str, tuple[Callable, Callable]] = {}
