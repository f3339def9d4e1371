"""Name -> spec registry, with aliases, case-insensitive lookup and helpful errors.

One small function, :func:`get`, turns whatever a caller holds (a name, an
:class:`Activation`, a spec, a Python callable) into an :class:`Activation`, so that no
caller ever switches on strings (the pattern of timm's ``create_act``).
"""

from __future__ import annotations

import dataclasses
import difflib
import pickle
from collections.abc import Callable, Iterable
from typing import Any

from actlab.catalog.activation import Activation
from actlab.catalog.builtins import SPECS
from actlab.catalog.spec import ActivationSpec

_SPECS: dict[str, ActivationSpec] = {}
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _add(spec: ActivationSpec, overwrite: bool = False) -> None:
    keys = [_key(spec.name), *(_key(a) for a in spec.aliases)]
    if not overwrite:
        for k in keys:
            if k in _SPECS or k in _ALIASES:
                raise ValueError(
                    f"an activation named {k!r} is already registered; pass overwrite=True "
                    "to replace it or choose another name"
                )
    _SPECS[_key(spec.name)] = spec
    for alias in spec.aliases:
        _ALIASES[_key(alias)] = _key(spec.name)


for _s in SPECS:
    _add(_s)


def names(include_aliases: bool = False, builtin_only: bool = False) -> list[str]:
    """Sorted canonical names of every registered activation (and aliases if asked)."""
    out = [k for k, s in _SPECS.items() if s.builtin or not builtin_only]
    if include_aliases:
        out += [a for a, k in _ALIASES.items() if _SPECS[k].builtin or not builtin_only]
    return sorted(out)


def spec_of(name: str) -> ActivationSpec:
    """The spec registered under ``name`` (or an alias); ``KeyError`` lists close names."""
    if not isinstance(name, str):
        raise TypeError(f"activation name must be a string, got {type(name).__name__}")
    k = _key(name)
    k = _ALIASES.get(k, k)
    if k in _SPECS:
        return _SPECS[k]
    candidates = list(_SPECS) + list(_ALIASES)
    close = difflib.get_close_matches(k, candidates, n=5, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else "see `actlab list` for all names"
    raise KeyError(f"unknown activation {name!r}; {hint}")


def get(
    activation: str | Activation | ActivationSpec | Callable[..., Any],
    *,
    learn: Iterable[str] | None = None,
    **params: float,
) -> Activation:
    """Return an :class:`Activation` for a name, spec, activation object or callable.

    Args:
        activation: a registered name or alias (case-insensitive), an ``Activation``
            (returned, with ``params`` applied), an ``ActivationSpec``, or a Python
            callable ``f(x)`` on tensors (wrapped with :func:`from_callable`).
        learn: parameters that ``module()`` makes learnable.
        **params: hyper-parameters, e.g. ``alpha=0.1``.

    Example:
        >>> actlab.get("Swish").name
        'silu'
    """
    if isinstance(activation, Activation):
        if not params and learn is None:
            return activation
        return Activation(
            activation.spec,
            learn=activation.learn if learn is None else learn,
            **{**activation.params, **params},
        )
    if isinstance(activation, ActivationSpec):
        return Activation(activation, learn=learn, **params)
    if isinstance(activation, str):
        if activation.strip().lower().startswith("formula:"):
            from actlab.catalog.formula import formula

            return formula(activation.strip()[len("formula:"):], learn=learn, **params)
        return Activation(spec_of(activation), learn=learn, **params)
    if callable(activation):
        return from_callable(activation, **params)
    raise TypeError(
        "activation must be a name, an Activation, an ActivationSpec or a callable; "
        f"got {type(activation).__name__}"
    )


def from_callable(
    fn: Callable[..., Any], name: str | None = None, *, gated: bool = False, **params: float
) -> Activation:
    """Wrap a Python callable ``fn(x, **params)`` written with torch ops as an activation.

    Its derivative comes from autograd (exact, not finite differences).
    """
    if not callable(fn):
        raise TypeError(f"expected a callable, got {type(fn).__name__}")
    label = name or getattr(fn, "__name__", "custom")
    if label == "<lambda>":
        label = "custom"
    spec = ActivationSpec(
        name=label,
        forward=fn,
        derivative=None,
        family="custom",
        formula=f"user callable {label}",
        reference="user-defined",
        params=dict(params),
        gated=gated,
        builtin=False,
    )
    return Activation(spec)


def register(activation: Activation | ActivationSpec, overwrite: bool = False) -> Activation:
    """Add a user activation (from :func:`formula`, :func:`from_callable` or a spec).

    After this, ``actlab.get(name)`` finds it, and every stage (analysis, studies,
    report) can use it by name; studies send it to their worker processes
    (:func:`export_user`).
    """
    spec = activation.spec if isinstance(activation, Activation) else activation
    if not isinstance(spec, ActivationSpec):
        raise TypeError(
            f"register expects an Activation or ActivationSpec, got {type(activation).__name__}"
        )
    _add(spec, overwrite=overwrite)
    return activation if isinstance(activation, Activation) else Activation(spec)


def unregister(name: str) -> None:
    """Remove a user activation (built-ins cannot be removed)."""
    spec = spec_of(name)
    if spec.builtin:
        raise ValueError(f"{spec.name} is built in and cannot be unregistered")
    del _SPECS[_key(spec.name)]
    for alias in [a for a, k in _ALIASES.items() if k == _key(spec.name)]:
        del _ALIASES[alias]


def export_user(keys: Iterable[str]) -> bytes:
    """Pickle the user-registered activations among ``keys`` for another process.

    Worker processes start with the built-ins only; :func:`import_user` there registers
    what this returns. Formula activations travel as their text; others as their spec,
    so their functions must be importable (defined with ``def`` at module level).
    Built-in names, ``formula:`` keys and unknown names are skipped.

    Raises:
        ValueError: an activation cannot be pickled (a lambda or a nested function).
    """
    out: dict[str, tuple[str, Any]] = {}
    for key in keys:
        if key.startswith("formula:"):
            continue
        try:
            spec = spec_of(key)
        except KeyError:
            continue  # the run reports the unknown name itself
        if spec.builtin or spec.name in out:
            continue
        if spec.source is not None:
            out[spec.name] = ("formula", (spec.source, dict(spec.params), spec.aliases))
            continue
        try:
            pickle.dumps(spec)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise ValueError(
                f"activation {spec.name!r} cannot be sent to worker processes "
                f"({type(exc).__name__}: {exc}); define its function with `def` at the top "
                "level of a module (or of the script), register it as a formula, or run "
                "with workers=0"
            ) from None
        out[spec.name] = ("spec", spec)
    return pickle.dumps(list(out.items()))


def import_user(blob: bytes) -> list[str]:
    """Register the activations exported by :func:`export_user`; return their names.

    A name that is already registered (e.g. by a script re-imported in a ``spawn``
    worker) is left as it is.
    """
    from actlab.catalog.formula import formula

    added = []
    for name, (kind, payload) in pickle.loads(blob) if blob else []:
        if _key(name) in _SPECS or _key(name) in _ALIASES:
            continue
        if kind == "formula":
            text, params, aliases = payload
            spec = dataclasses.replace(formula(text, name=name, **params).spec, aliases=aliases)
        else:
            spec = payload
        _add(spec)
        added.append(name)
    return added


def _rebuild(key: str, name: str, params: dict[str, float], learn: tuple[str, ...]) -> Activation:
    """Unpickle an :class:`Activation` (by registry name, or by formula text)."""
    if key.startswith("formula:"):
        from actlab.catalog.formula import formula

        return formula(key[len("formula:"):], name=name, learn=list(learn), **params)
    return get(key, learn=learn, **params)
