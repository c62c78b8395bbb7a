r"""Metrics of continual learning and of backward-compatible model updates; the results accumulator.

- `clarena.metrics.CLResults`: the accumulator the task loop feeds with test predictions after
  each task; it computes the accuracy matrix (task-aware and task-agnostic in CIL), the summary
  metrics, the compatibility of consecutive models (and against a user-supplied old model), keeps a
  weights-only-safe `state_dict` for resuming, and `record`s the content of `metrics.json`
  (`clarena.reports.writers.write_results` writes the files and plots from it).
- `clarena.metrics.functional`: the math, once: `average_accuracy`, `backward_transfer`,
  `forgetting`, `forward_transfer` over an accuracy matrix; `compatibility_counts`,
  `compatibility_scores` (NFR, PFR, NFI, BTC, BEC) and `negative_flips_per_class` over predictions;
  the statistics of a release decision (`clarena.metrics.functional.release`: Wilson intervals,
  exact McNemar, NFR per class and group, gates). Imported on first use, so that the release
  statistics and `clarena.metrics.provenance` load without torch.
- `clarena.metrics.compatibility`: the same counts as `torchmetrics.Metric`s with summed states
  (pooled over batches and DDP processes): `CompatibilityCounts`, `NegativeFlipRate`,
  `PositiveFlipRate`, `NegativeFlipImpact`, `BackwardTrustCompatibility`,
  `BackwardErrorCompatibility`, `IncompatiblePointsPerClass`. They are imported on first use
  (`import torchmetrics` imports matplotlib), like the submodules.
- `clarena.metrics.sweep` and `clarena.metrics.sweep_summary`: a $\lambda_c$ sweep's runs read
  from their `metrics.json` (`SweepPoint`s), and their mean ± standard error over seeds, Pareto
  front and ensemble reference.
- `clarena.metrics.study`: a study's runs grouped by method and scenario, mean ± standard error
  over seeds.
- `clarena.metrics.provenance` and `clarena.metrics.class_names`: which run a results file belongs
  to (experiment, algorithm, dataset, scenario, seed), what produced it (versions, git commit,
  device, wall times, command line), and the names of its classes.

The files, plots and pages made from these numbers are `clarena.reports`.

A task loop uses it like this:

    results = CLResults(scenario="CIL")
    for t in range(1, num_tasks + 1):
        ...  # train task t
        for j in range(1, t + 1):
            preds, preds_task_aware, targets = ...  # whole test set of task j, fixed order
            results.add(after_task=t, test_task=j, preds=preds, targets=targets,
                        preds_task_aware=preds_task_aware)
        checkpoint["metrics"] = results.state_dict()  # torch.load(..., weights_only=True) safe
        write_results(results.record(resolved_config), output_dir / "results")  # clarena.reports
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clarena.core.lazy import lazy_exports

if TYPE_CHECKING:  # what `__getattr__` imports on first use, for type checkers
    from clarena.metrics.compatibility import (
        BackwardErrorCompatibility,
        BackwardTrustCompatibility,
        CompatibilityCounts,
        IncompatiblePointsPerClass,
        NegativeFlipImpact,
        NegativeFlipRate,
        PositiveFlipRate,
    )
    from clarena.metrics.functional import (
        average_accuracy,
        average_accuracy_per_task,
        backward_error_compatibility,
        backward_transfer,
        backward_trust_compatibility,
        compatibility_counts,
        compatibility_scores,
        forgetting,
        forward_transfer,
        negative_flip_impact,
        negative_flip_rate,
        negative_flips_per_class,
        positive_flip_rate,
    )
    from clarena.metrics.results import CLResults

#: The functions of `clarena.metrics.functional` exported here, imported on first use (torch):
#: `clarena.metrics.functional.release` and `clarena.core` stay importable without it.
_FUNCTIONS = frozenset(
    {
        "average_accuracy",
        "average_accuracy_per_task",
        "backward_error_compatibility",
        "backward_transfer",
        "backward_trust_compatibility",
        "compatibility_counts",
        "compatibility_scores",
        "forgetting",
        "forward_transfer",
        "negative_flip_impact",
        "negative_flip_rate",
        "negative_flips_per_class",
        "positive_flip_rate",
    }
)

#: The torchmetrics classes, imported on first use: `import torchmetrics` imports matplotlib.
_METRIC_CLASSES = frozenset(
    {
        "BackwardErrorCompatibility",
        "BackwardTrustCompatibility",
        "CompatibilityCounts",
        "IncompatiblePointsPerClass",
        "NegativeFlipImpact",
        "NegativeFlipRate",
        "PositiveFlipRate",
    }
)

__all__ = [  # the submodules are listed so that pdoc documents them
    "BackwardErrorCompatibility",
    "BackwardTrustCompatibility",
    "CLResults",
    "CompatibilityCounts",
    "IncompatiblePointsPerClass",
    "NegativeFlipImpact",
    "NegativeFlipRate",
    "PositiveFlipRate",
    "average_accuracy",
    "average_accuracy_per_task",
    "backward_error_compatibility",
    "backward_transfer",
    "backward_trust_compatibility",
    "class_names",
    "compatibility",
    "compatibility_counts",
    "compatibility_scores",
    "forgetting",
    "forward_transfer",
    "functional",
    "negative_flip_impact",
    "negative_flip_rate",
    "negative_flips_per_class",
    "positive_flip_rate",
    "provenance",
    "results",
    "study",
    "sweep",
    "sweep_summary",
]

_SUBMODULES = frozenset(n for n in __all__ if n[0].islower() and n not in _FUNCTIONS)


__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        **dict.fromkeys(_METRIC_CLASSES, "compatibility"),
        **dict.fromkeys(_FUNCTIONS, "functional"),
        "CLResults": "results",
    },
    _SUBMODULES,
)
