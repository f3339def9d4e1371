"""Analysis: how an activation behaves, measured (the second stage, after the catalog).

* :func:`properties`: range, monotonicity, zero-centring, smoothness, saturation, dying risk;
* :func:`gain`: the second-moment preserving init gain, by Gaussian quadrature;
* :func:`fixed_point`, :func:`critical_weight_variance`: mean-field signal propagation
  (Poole et al. 2016, Schoenholz et al. 2017): q*, chi_1, depth scales, edge of chaos;
* :func:`gradient_flow`: per-layer gradient norms of a deep MLP at initialisation;
* :func:`init_`: initialise any model's Linear/Conv layers with the gain of the activation
  each one reads;
* :func:`audit`: forward and derivative accuracy in float64/32/16 and bfloat16;
* :class:`DeadUnitMonitor`: dead units of any PyTorch model's activation layers.

Everything accepts what :func:`actlab.get` accepts: a name, an ``Activation``, a
``"formula:..."`` string or a callable.
"""

from actlab.analysis.audit import AuditResult, audit
from actlab.analysis.dead_units import DeadUnitMonitor
from actlab.analysis.gain import gain, gain_table, torch_gain
from actlab.analysis.gradflow import GradientFlow, gradient_flow
from actlab.analysis.init import Inits, LayerInit, init_
from actlab.analysis.kinks import find_breaks
from actlab.analysis.propagation import (
    FixedPoint,
    c_map,
    chi_1,
    critical_weight_variance,
    fixed_point,
    q_map,
)
from actlab.analysis.properties import Properties, properties
from actlab.analysis.quadrature import act_moments

__all__ = [
    "AuditResult",
    "DeadUnitMonitor",
    "FixedPoint",
    "GradientFlow",
    "Inits",
    "LayerInit",
    "Properties",
    "act_moments",
    "audit",
    "c_map",
    "chi_1",
    "critical_weight_variance",
    "find_breaks",
    "fixed_point",
    "gain",
    "gain_table",
    "gradient_flow",
    "init_",
    "properties",
    "q_map",
    "torch_gain",
]
