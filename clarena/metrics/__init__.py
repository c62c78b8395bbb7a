"""Metrics of continual learning and of backward-compatible model updates, and the results files.

- `clarena.metrics.CLResults`: the accumulator the task loop feeds with test predictions after
  each task; it computes the accuracy matrix (task-aware and task-agnostic in CIL), the summary
  metrics, the compatibility of consecutive models (and against a user-supplied old model), keeps a
  weights-only-safe `state_dict` for resuming, and `write`s the results files.
- `clarena.metrics.functional`: the math, once: `average_accuracy`, `backward_transfer`,
  `forgetting`, `forward_transfer` over an accuracy matrix; `compatibility_counts`,
  `compatibility_scores` (NFR, PFR, BTC, BEC) and `negative_flips_per_class` over predictions.
- `clarena.metrics.compatibility`: the same counts as `torchmetrics.Metric`s with summed states
  (pooled over batches and DDP processes): `CompatibilityCounts`, `NegativeFlipRate`,
  `PositiveFlipRate`, `BackwardTrustCompatibility`, `BackwardErrorCompatibility`,
  `IncompatiblePointsPerClass`.
- `clarena.metrics.writers`: `metrics.json`, `accuracy_matrix.csv`, `compatibility.csv` and the PNG
  plots of `clarena.metrics.plots`, all written atomically.
- `clarena.metrics.html`, `clarena.metrics.sweep` and `clarena.metrics.sweep_plots`: the pages
  and plots of `clarena report`.
- `clarena.metrics.provenance` and `clarena.metrics.class_names`: which run a results file belongs
  to (experiment, algorithm, dataset, scenario, seed), what produced it (versions, git commit,
  device, wall times, command line), and the names of its classes.

A task loop uses it like this:

    results = CLResults(scenario="CIL")
    for t in range(1, num_tasks + 1):
        ...  # train task t
        for j in range(1, t + 1):
            preds, preds_task_aware, targets = ...  # whole test set of task j, fixed order
            results.add(after_task=t, test_task=j, preds=preds, targets=targets,
                        preds_task_aware=preds_task_aware)
        checkpoint["metrics"] = results.state_dict()  # torch.load(..., weights_only=True) safe
        results.write(output_dir / "results", config=resolved_config)
"""

from clarena.metrics.compatibility import (
    BackwardErrorCompatibility,
    BackwardTrustCompatibility,
    CompatibilityCounts,
    IncompatiblePointsPerClass,
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
    negative_flip_rate,
    negative_flips_per_class,
    positive_flip_rate,
)
from clarena.metrics.results import CLResults

__all__ = [  # the submodules are listed so that pdoc documents them
    "BackwardErrorCompatibility",
    "BackwardTrustCompatibility",
    "CLResults",
    "CompatibilityCounts",
    "IncompatiblePointsPerClass",
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
    "html",
    "negative_flip_rate",
    "negative_flips_per_class",
    "plots",
    "positive_flip_rate",
    "provenance",
    "results",
    "sweep",
    "sweep_plots",
    "writers",
]
