"""actlab: understand, verify, measure and choose activation functions, with evidence.

Stages (each depends only on those before it)::

    catalog -> analysis -> experiments (studies) -> report / recommend
"""

from actlab import analysis
from actlab.analysis import DeadUnitMonitor, gain, init_
from actlab.catalog import (
    Activation,
    ActivationModule,
    ActivationSpec,
    formula,
    from_callable,
    get,
    low_memory,
    names,
    register,
    swap,
    unregister,
)
from actlab.experiments.base import actlab_version
from actlab.experiments.store import load_results
from actlab.experiments.study import Study, run_study
from actlab.experiments.user import task, track
from actlab.recommend import recommend

__version__ = actlab_version()

__all__ = [
    "Activation",
    "ActivationModule",
    "ActivationSpec",
    "DeadUnitMonitor",
    "Study",
    "__version__",
    "analysis",
    "formula",
    "from_callable",
    "gain",
    "get",
    "init_",
    "load_results",
    "low_memory",
    "names",
    "recommend",
    "register",
    "run_study",
    "swap",
    "task",
    "track",
    "unregister",
]
