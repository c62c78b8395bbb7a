"""What `clarena compare` reads: prediction files, run folders and task checkpoints, as data.

- **A prediction file**, `.csv` (a header row) or `.npz` (numpy arrays, read with
  `allow_pickle=False`): a `label` and a `prediction` column, one row per sample; optionally `id`
  (checked to be in the same order in both files) and `group` (a slice of each sample: a
  region, a customer tier, ...). Labels are integers or strings; a column whose every value is an
  integer is read as integers.
- **A run folder** (holding `config.yaml`): the predictions of its final model on the test data of
  every task it was tested on, as saved in the metrics state of its last task checkpoint
  (`checkpoints/after_task_<T>.pt`, `clarena.metrics.CLResults.state_dict`), so no model runs.
  The config is read by `clarena.pipelines.run_folder.load_run_config` (no resolver, allow-listed
  targets) and the checkpoint with `weights_only=True`. Each sample's group is its task.
- **A task checkpoint** (`after_task_<t>.pt`): the same predictions, from that file alone.

Nothing read runs code; a file that cannot be read, lacks a column or holds a bad value stops
with one `CompareInputError` line naming the file, the cause and the fix. Prediction files need
numpy only; run folders and checkpoints import torch (and Lightning) when they are read.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS: tuple[str, ...] = ("label", "prediction", "id", "group")
"""The columns of a prediction file; `label` and `prediction` are required."""

DATA_KEYS_IGNORED = frozenset(
    {"data_root", "download", "batch_size", "eval_batch_size", "device", "num_workers"}
)
"""Keys of a `cl_dataset` config that do not change which samples are tested or their labels."""

_INTEGER = re.compile(r"[+-]?\d+")


class CompareInputError(ValueError):
    """An input `clarena compare` cannot use; the message is one line with the cause and the fix."""


@dataclass
class Predictions:
    """One model's predictions on a list of samples, and where they came from."""

    source: str
    labels: np.ndarray
    predictions: np.ndarray
    ids: np.ndarray | None = None
    groups: np.ndarray | None = None
    tasks: np.ndarray | None = None
    """The test task of each sample (run folders and checkpoints)."""
    positions: np.ndarray | None = None
    """The index of each sample in its task's test set (run folders and checkpoints)."""
    config: dict[str, Any] | None = None
    """The run's resolved config (run folders and checkpoints)."""
    run_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    def select(self, keep: np.ndarray) -> Predictions:
        """The samples where `keep` is true, in order."""

        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[keep]

        return Predictions(
            self.source,
            self.labels[keep],
            self.predictions[keep],
            cut(self.ids),
            cut(self.groups),
            cut(self.tasks),
            cut(self.positions),
            self.config,
            self.run_dir,
            list(self.notes),
        )


def class_labels(values: np.ndarray) -> np.ndarray:
    """`values` as int64 when every one is an integer, else as strings (stripped for text).

    Raises:
        CompareInputError: on an empty or missing value, or a non-integral number.
    """
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise CompareInputError("holds numbers that are not integer class labels")
        return values.astype(np.int64)
    if values.dtype.kind not in "US":
        raise CompareInputError(f"holds values of dtype {values.dtype}, not class labels")
    text = np.char.strip(values.astype(str))
    empty = np.flatnonzero(text == "")
    if empty.size:
        raise CompareInputError(f"has an empty value at row {int(empty[0]) + 1}")
    if all(_INTEGER.fullmatch(v) for v in text.tolist()):
        return text.astype(np.int64)
    return text


def _columns_of_csv(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        rows = list(reader)
    wanted = [c for c in COLUMNS if c in header]
    for i, row in enumerate(rows, start=2):
        if None in row or any(row[c] is None for c in wanted):
            raise CompareInputError(f"row {i} has {len(header)} columns expected as in the header")
    return {c: np.asarray([row[c] for row in rows], dtype=str) for c in wanted}


def _columns_of_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        columns = {c: archive[c] for c in COLUMNS if c in archive.files}
    for name, values in columns.items():
        if values.ndim != 1:
            raise CompareInputError(f"array {name!r} has shape {values.shape}; save a 1-D array")
    return columns


def read_prediction_file(path: Path) -> Predictions:
    """Read a `.csv` or `.npz` prediction file (module docstring).

    Raises:
        CompareInputError: the file is unreadable, lacks a column or holds a bad value.
    """
    reader = {".csv": _columns_of_csv, ".npz": _columns_of_npz}[path.suffix.lower()]
    try:
        columns = reader(path)
    except CompareInputError as exc:
        raise CompareInputError(f"{path}: {exc}") from None
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as exc:  # also a damaged zip
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CompareInputError(
            f"cannot read {path} ({cause}); pass a CSV with a header row or an .npz of arrays"
        ) from None
    missing = [c for c in ("label", "prediction") if c not in columns]
    if missing:
        raise CompareInputError(
            f"{path} has no {' or '.join(repr(c) for c in missing)} column; a prediction file "
            "needs 'label' and 'prediction' (optional: 'id', 'group'), one row per sample"
        )
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise CompareInputError(f"{path}: its arrays differ in length; save one value per sample")
    if not next(iter(lengths)):
        raise CompareInputError(f"{path} holds no sample; pass the predictions on a test set")
    try:
        labels = class_labels(columns["label"])
    except CompareInputError as exc:
        raise CompareInputError(f"{path}: column 'label' {exc}") from None
    try:
        preds = class_labels(columns["prediction"])
    except CompareInputError as exc:
        raise CompareInputError(f"{path}: column 'prediction' {exc}") from None
    text = {c: columns[c].astype(str) for c in ("id", "group") if c in columns}
    return Predictions(str(path), labels, preds, text.get("id"), text.get("group"))


def _final_predictions(state: dict[str, Any], source: str) -> Predictions:
    """The predictions of the last model in a task checkpoint's metrics state."""
    import torch

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
    cat = torch.cat

    def column(tensors: list[Any]) -> np.ndarray:
        return cat(tensors).numpy().astype(np.int64)

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
    from clarena.pipelines import checkpoint as ckpt
    from clarena.pipelines.errors import ClarenaError
    from clarena.pipelines.run_folder import load_run_config

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
    found.run_dir = run_dir
    return found


def read_checkpoint(path: Path) -> Predictions:
    """The saved predictions of the model of one task checkpoint (module docstring)."""
    from clarena.pipelines import checkpoint as ckpt
    from clarena.pipelines.errors import ClarenaError

    try:
        state = ckpt.load_task_checkpoint(path)
    except ClarenaError as exc:
        raise CompareInputError(str(exc)) from None
    found = _final_predictions(state, str(path))
    config = state.get("config")
    found.config = config if isinstance(config, dict) else None
    return found


def read_input(path: Path, trust: bool = False) -> Predictions:
    """Read OLD or NEW, whichever kind it is.

    Raises:
        CompareInputError: a path that is none of the kinds, or that cannot be read.
    """
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            raise CompareInputError(
                f"{path} is a folder without config.yaml, so not a clarena run folder; pass a "
                "run folder, a task checkpoint or a prediction file (.csv, .npz)"
            )
        return read_run_folder(path, trust)
    if not path.is_file():
        raise CompareInputError(f"{path} does not exist; check the path")
    if path.suffix.lower() in (".csv", ".npz"):
        return read_prediction_file(path)
    if path.suffix.lower() == ".pt":
        return read_checkpoint(path)
    raise CompareInputError(
        f"{path} is not a prediction file (.csv, .npz), a task checkpoint (.pt) or a run folder"
    )


def _dataset(config: dict[str, Any] | None) -> dict[str, Any] | None:
    node = (config or {}).get("cl_dataset")
    if not isinstance(node, dict):
        return None
    return {k: v for k, v in node.items() if k not in DATA_KEYS_IGNORED}


def _shown(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _first_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.flatnonzero(a != b)[0])


def align(old: Predictions, new: Predictions) -> tuple[Predictions, Predictions]:
    """Check that OLD and NEW are predictions on the same samples, and make them comparable.

    Two runs are compared on the test tasks both final models were tested on, and only when
    their datasets match (`cl_dataset` equal but for `DATA_KEYS_IGNORED`). Labels of both
    inputs must be equal sample by sample (and `id`s, when both have them); labels are compared
    as integers when every label and prediction is one, else as strings.

    Raises:
        CompareInputError: one line naming the first disagreement.
    """
    if old.tasks is not None and new.tasks is not None:
        common = np.intersect1d(old.tasks, new.tasks)
        if not common.size:
            raise CompareInputError(
                f"{old.source} and {new.source} were tested on no common task; compare runs of "
                "the same task sequence"
            )
        old, new = old.select(np.isin(old.tasks, common)), new.select(np.isin(new.tasks, common))
    data_old, data_new = _dataset(old.config), _dataset(new.config)
    if data_old is not None and data_new is not None and data_old != data_new:
        key = next(k for k in sorted({*data_old, *data_new}) if data_old.get(k) != data_new.get(k))
        raise CompareInputError(
            f"{old.source} and {new.source} were tested on different datasets (cl_dataset.{key}: "
            f"{data_old.get(key)!r} vs {data_new.get(key)!r}); compare models on the same data"
        )
    if len(old.labels) != len(new.labels):
        raise CompareInputError(
            f"{old.source} has {len(old.labels)} samples and {new.source} {len(new.labels)}; "
            "pass predictions on the same samples, one row per sample in the same order"
        )
    columns = [old.labels, old.predictions, new.labels, new.predictions]
    if not all(c.dtype.kind == "i" for c in columns):
        old.labels, old.predictions, new.labels, new.predictions = (c.astype(str) for c in columns)
    if old.ids is not None and new.ids is not None and not np.array_equal(old.ids, new.ids):
        i = _first_difference(old.ids, new.ids)
        raise CompareInputError(
            f"the ids of {old.source} and {new.source} differ at row {i + 1} "
            f"({_shown(old.ids[i])} vs {_shown(new.ids[i])}); write both files in the same order"
        )
    if not np.array_equal(old.labels, new.labels):
        i = _first_difference(old.labels, new.labels)
        raise CompareInputError(
            f"the labels of {old.source} and {new.source} disagree at row {i + 1} "
            f"({_shown(old.labels[i])} vs {_shown(new.labels[i])}); pass predictions on the same "
            "samples in the same order"
        )
    if old.groups is not None and new.groups is not None:
        if not np.array_equal(old.groups, new.groups):
            i = _first_difference(old.groups, new.groups)
            raise CompareInputError(
                f"the groups of {old.source} and {new.source} disagree at row {i + 1} "
                f"({_shown(old.groups[i])} vs {_shown(new.groups[i])}); give each sample one group"
            )
    elif old.groups is not None or new.groups is not None:
        old.groups = new.groups = old.groups if old.groups is not None else new.groups
    return old, new


def test_images(found: Predictions, indices: np.ndarray) -> tuple[list[np.ndarray], str]:
    """The test images of the samples `indices` of a run folder's predictions, as uint8
    `(H, W, C)` arrays read from the run's dataset (before any normalisation or task transform).

    The dataset is built from the run's config (already checked by `load_run_config`) and its
    labels are checked against the saved ones, task by task, so an image is never shown beside
    another sample's predictions.

    Returns:
        The images, or `[]` and one line saying why there are none.
    """
    if found.run_dir is None or found.tasks is None or found.positions is None:
        return [], "the gallery needs run folders (prediction files carry no images)"
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
