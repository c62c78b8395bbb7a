"""What `clarena compare` reads from clarena's own runs: run folders and task checkpoints.

- **A run folder** (holding `config.yaml`): the predictions of its final model on the test data of
  every task it was tested on, as saved in the metrics state of its last task checkpoint
  (`checkpoints/after_task_<T>.pt`, `clarena.metrics.CLResults.state_dict`), so no model runs.
  The config is read by `clarena.run.saved_config.load_run_config` (no resolver, allow-listed
  targets) and the checkpoint with `weights_only=True`. Each sample's group is its task.
- **A task checkpoint** (`after_task_<t>.pt`): the same predictions, from that file alone; or,
  with a dataset config (`--dataset FILE`), the predictions of the checkpoint's model on that
  dataset's test data: the model is rebuilt from the checkpoint's config (allow-listed targets,
  no resolver) and its weights, and tested on every task of the dataset its heads know.

Nothing read runs code from the files; every failure is one `CompareInputError` line. These
readers import torch (and Lightning for the checkpoints).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clarena.commands.compare_inputs import CompareInputError, Predictions


def _final_predictions(state: dict[str, Any], source: str) -> Predictions:
    """The predictions of the last model in a task checkpoint's metrics state."""
    from clarena.metrics.results import CLResults

    results = CLResults()
    try:
        results.load_state_dict(state["results"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CompareInputError(
            f"{source}: the checkpoint holds no readable metrics state ({exc}); pass a "
            "checkpoint written by clarena train"
        ) from None
    last = results.num_tasks
    parts = []
    for j in range(1, results.accuracy_matrix().shape[1] + 1):
        try:
            parts.append((j, results.predictions(last, j), results.targets(j)))
        except KeyError:
            continue
    if not parts:
        raise CompareInputError(f"{source}: its final model was tested on no task; finish the run")
    return _per_task(source, parts)


def _per_task(source: str, parts: list[tuple[int, Any, Any]]) -> Predictions:
    """Predictions from `(task, predictions, labels)` per test task (int64 tensors)."""
    import torch

    def column(tensors: list[Any]) -> np.ndarray:
        return torch.cat(tensors).numpy().astype(np.int64)

    tasks = np.concatenate([np.full(len(y), j) for j, _, y in parts])
    return Predictions(
        source,
        labels=column([y for _, _, y in parts]),
        predictions=column([p for _, p, _ in parts]),
        tasks=tasks,
        positions=np.concatenate([np.arange(len(y)) for _, _, y in parts]),
        groups=np.asarray([f"task {t}" for t in tasks.tolist()], dtype=str),
    )


def read_run_folder(run_dir: Path, trust: bool = False) -> Predictions:
    """The final model's saved predictions of a run folder (module docstring)."""
    from clarena.core.errors import ClarenaError
    from clarena.run.saved_config import load_run_config
    from clarena.run_folder import checkpoint as ckpt

    try:
        config = load_run_config(run_dir, trust=trust)
        done = ckpt.finished_tasks(run_dir)
        if not done:
            raise CompareInputError(
                f"{run_dir} has no task checkpoint (checkpoints/after_task_<t>.pt) yet; finish "
                f"or resume the run first (clarena train resume={run_dir})"
            )
        state = ckpt.load_task_checkpoint(ckpt.task_checkpoint_path(run_dir, done[-1]))
    except ClarenaError as exc:
        raise CompareInputError(str(exc)) from None
    from omegaconf import OmegaConf

    found = _final_predictions(state, str(run_dir))
    found.config = OmegaConf.to_container(config, resolve=True)  # type: ignore[assignment]
    found.images = True  # the config passed load_run_config's checks
    return found


def read_checkpoint(path: Path) -> Predictions:
    """The saved predictions of the model of one task checkpoint (module docstring)."""
    from clarena.core.errors import ClarenaError
    from clarena.run_folder import checkpoint as ckpt

    try:
        state = ckpt.load_task_checkpoint(path)
    except ClarenaError as exc:
        raise CompareInputError(str(exc)) from None
    found = _final_predictions(state, str(path))
    config = state.get("config")
    found.config = config if isinstance(config, dict) else None
    return found


NOT_BUILT = frozenset({"trainer", "callbacks", "logger", "hydra"})
"""Config groups of a checkpoint that testing its model never instantiates."""


def predict_on_dataset(path: Path, dataset_file: Path, trust: bool = False) -> Predictions:
    """The predictions of a task checkpoint's model on the test data of a dataset config.

    The dataset file is a `cl_dataset` config (as in `clarena/configs/cl_dataset/`); its
    references (`${scenario}`, `${seed}`, `${data_root}`) resolve against the checkpoint's own
    config. Every task of the dataset whose head the model has is tested, on the CPU.
    """
    from omegaconf import OmegaConf

    from clarena.core.errors import ClarenaError
    from clarena.metrics.predictions import PredictionLog
    from clarena.run.components import build_components
    from clarena.run.loop_settings import SETTINGS_TARGET
    from clarena.run.spec import RunSpec
    from clarena.run_folder import checkpoint as ckpt
    from clarena.run_folder import received

    try:
        state = ckpt.load_task_checkpoint(path)
        config, dataset = state.get("config"), received.read_yaml(dataset_file)
        if not isinstance(config, dict) or "cl_algorithm" not in config:
            raise CompareInputError(f"{path} holds no run config to rebuild its model from")
        if not isinstance(dataset, dict) or "_target_" not in dataset:
            raise CompareInputError(
                f"{dataset_file} is not a dataset config (a mapping with a _target_); pass a "
                "file like clarena/configs/cl_dataset/split_fmnist.yaml"
            )
        received.refuse_resolvers(config, path)  # the checkpoint's config is received data too
        received.refuse_resolvers(dataset, dataset_file)
        merged = received.resolve_received({**config, "cl_dataset": dataset}, dataset_file)
        if not trust:  # what build_components instantiates (never the trainer, loggers, ...)
            received.check_targets({k: v for k, v in merged.items() if k not in NOT_BUILT}, path)
        merged["trainer"] = {"_target_": SETTINGS_TARGET}  # testing uses none of the run's
        components = build_components(RunSpec.of(OmegaConf.create(merged), path.parent))
        algorithm, datamodule = components.algorithm, components.datamodule
        algorithm.load_cl_state_dict(state["cl_state"])
    except ClarenaError as exc:
        raise CompareInputError(str(exc)) from None
    except (OSError, KeyError, ValueError, RuntimeError) as exc:  # e.g. weights of other shapes
        cause = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise CompareInputError(
            f"cannot rebuild the model of {path} for {dataset_file} ({cause}); pass a dataset "
            "with the inputs and classes the model was trained on"
        ) from None
    algorithm.eval()
    parts = []
    try:
        for task in range(1, int(datamodule.num_tasks) + 1):
            log = PredictionLog()
            for batch in datamodule.task_test_dataloader(task):
                log.update(algorithm.test_step(batch, 0))
            tested = log.compute().get(task)
            if tested is not None:
                parts.append((task, tested["preds"], tested["targets"]))
    except (RuntimeError, ValueError, OSError) as exc:  # shapes that do not fit, missing files
        cause = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise CompareInputError(
            f"the model of {path} cannot be tested on {dataset_file} ({cause}); pass a dataset "
            "with the inputs and classes the model was built for"
        ) from None
    if not parts:
        raise CompareInputError(f"the model of {path} has a head for no task of {dataset_file}")
    found = _per_task(str(path), parts)
    found.config, found.images = merged, True  # checked above (or trusted)
    return found


def test_images(found: Predictions, indices: np.ndarray) -> tuple[list[np.ndarray], str]:
    """The test images of the samples `indices` of a run folder's predictions, as uint8
    `(H, W, C)` arrays read from the run's dataset (before any normalisation or task transform).

    The dataset is built from the run's config (already checked by `load_run_config`) and its
    labels are checked against the saved ones, task by task, so an image is never shown beside
    another sample's predictions.

    Returns:
        The images, or `[]` and one line saying why there are none.
    """
    if not found.images or found.tasks is None or found.positions is None:
        return [], "the images come from run folders, or checkpoints tested with --dataset"
    node = (found.config or {}).get("cl_dataset")
    if not isinstance(node, dict) or not indices.size:
        return [], "no image to show"
    try:
        from hydra.utils import instantiate

        datamodule = instantiate(node)
        test_x = datamodule.data.test_x
        images, rows_of = [], {}
        for i in indices.tolist():
            task = int(found.tasks[i])
            if task not in rows_of:
                rows, classes = datamodule.task_samples(task, "test")
                lut = datamodule.label_map(task)
                labels = np.asarray([lut[int(c)] for c in classes.tolist()])
                if not np.array_equal(labels, found.labels[found.tasks == task]):
                    return [], f"the dataset now gives task {task} other test labels than the run"
                rows_of[task] = rows
            image = test_x[rows_of[task][int(found.positions[i])]].cpu().numpy()
            images.append(np.ascontiguousarray(image.transpose(1, 2, 0)))
    except Exception as exc:  # the data may be gone, or be read lazily: the page says so
        cause = " ".join(str(exc).split()) or type(exc).__name__
        return [], f"the run's test images could not be read ({cause})"
    return images, ""
