"""State collectors of the parameter-change penalties: what EWC, SI and MAS gather over the tasks.

A collector keeps, for the parameters a penalty protects, the anchors $\\theta^*$ and the
importances $\\Omega$ the `ParameterChange` term weighs their change with, and updates them in the
task hooks (and, for SI, after every optimizer step). It is not a module: it reads the
algorithm's backbone and heads, which it is bound to, and its state travels in the algorithm's
checkpoint through `state_dict` / `load_state_dict`.

- `FisherImportance`: EWC's diagonal Fisher, online (one running Fisher) or offline (one per task).
- `PathIntegralImportance`: SI's path integral, accumulated after every optimizer step.
- `OutputSensitivityImportance`: MAS's sensitivity of the output's squared norm.
"""

from clarena.cl_algorithms.collectors.base import ImportanceCollector
from clarena.cl_algorithms.collectors.fisher import FISHER_LABELS, FisherImportance
from clarena.cl_algorithms.collectors.path_integral import PathIntegralImportance
from clarena.cl_algorithms.collectors.sensitivity import OutputSensitivityImportance

COLLECTORS: dict[str, type[ImportanceCollector]] = {
    "ewc": FisherImportance,
    "si": PathIntegralImportance,
    "mas": OutputSensitivityImportance,
}
"""The collectors by the name a `ParameterChange` term's `importance` gives."""

__all__ = [
    "COLLECTORS",
    "FISHER_LABELS",
    "FisherImportance",
    "ImportanceCollector",
    "OutputSensitivityImportance",
    "PathIntegralImportance",
]
