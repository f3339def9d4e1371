"""The activation catalog: specs, the registry, activation objects and modules, and
:func:`swap` (replace the activations of any model), :func:`low_memory` (train at ReLU's
memory with any activation)."""

from actlab.catalog.activation import Activation, ActivationModule
from actlab.catalog.formula import FUNCTIONS, formula
from actlab.catalog.recompute import low_memory
from actlab.catalog.registry import from_callable, get, names, register, spec_of, unregister
from actlab.catalog.spec import ActivationSpec
from actlab.catalog.swap import Swap, Swaps, swap

__all__ = [
    "FUNCTIONS",
    "Activation",
    "ActivationModule",
    "ActivationSpec",
    "Swap",
    "Swaps",
    "formula",
    "from_callable",
    "get",
    "low_memory",
    "names",
    "register",
    "spec_of",
    "swap",
    "unregister",
]
