"""The ensemble reference of a sweep, from the saved models of its $\\lambda_c = 0$ runs.

The models are rebuilt from each run folder (read as data: `load_run_config`, weights-only
checkpoints) and run on the test points of the tasks before the last; the scoring is
`clarena.metrics.sweep_summary.score_ensemble`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from clarena.metrics.sweep import SweepPoint
from clarena.metrics.sweep_summary import EnsembleReference, baseline_runs, score_ensemble


def _outputs(run_dir: Path) -> tuple[Any, Any, Any] | None:
    """(softmax of the run's final model, its h1's predictions, the labels) on the test points of
    the tasks before the last, or None when the run has fewer than two task checkpoints."""
    import torch

    from clarena.run.components import build_components
    from clarena.run.saved_config import load_run_config
    from clarena.run.spec import RunSpec
    from clarena.run_folder import checkpoint as ckpt
    from clarena.run_folder.folder import CONFIG_FILE

    tasks = ckpt.saved_tasks(run_dir)
    if len(tasks) < 2 or not (run_dir / CONFIG_FILE).is_file():
        return None
    spec = RunSpec.of(load_run_config(run_dir), run_dir)  # data: allow-listed components only
    models = []
    for task_id in tasks[-2:]:
        components = build_components(spec)
        state = ckpt.load_task_checkpoint(ckpt.task_checkpoint_path(run_dir, task_id))
        components.algorithm.load_cl_state_dict(state["cl_state"])
        components.algorithm.eval()
        models.append(components.algorithm)
    datamodule = components.datamodule
    datamodule.setup_task(tasks[-1])
    probabilities, old_preds, labels = [], [], []
    with torch.no_grad():
        for test_task in range(1, tasks[-1]):
            for x, y, task_ids in datamodule.task_test_dataloader(test_task):
                probabilities.append(torch.softmax(models[1](x, task_ids).float(), dim=1))
                old_preds.append(models[0](x, task_ids).argmax(dim=1))
                labels.append(y)
    return torch.cat(probabilities), torch.cat(old_preds), torch.cat(labels)


@lru_cache(maxsize=8)
def _ensemble(run_dirs: tuple[str, ...]) -> EnsembleReference | None:
    outputs = [o for o in (_outputs(Path(d)) for d in run_dirs) if o is not None]
    return score_ensemble(outputs)


def ensemble_reference(points: Sequence[SweepPoint]) -> EnsembleReference | None:
    """The ensemble reference of the sweep's $\\lambda_c = 0$ runs (one per seed), or None when
    it has fewer than two of them with saved models (checkpoints) of a model update."""
    runs = baseline_runs(points)
    if len(runs) < 2:
        return None
    return _ensemble(tuple(str(r) for r in runs))
