"""The activation catalog: specs, the registry, activation objects and modules."""

from actlab.catalog.activation import Activation, ActivationModule
from actlab.catalog.formula import FUNCTIONS, formula
from actlab.catalog.registry import from_callable, get, names, register, spec_of, unregister
from actlab.catalog.spec import ActivationSpec

__all__ = [
    "FUNCTIONS",
    "Activation",
    "ActivationModule",
    "ActivationSpec",
    "formula",
    "from_callable",
    "get",
    "names",
    "register",
    "spec_of",
    "unregister",
]
