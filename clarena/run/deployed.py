"""The `update` options of a run: the deployed model to update (`update.old_model`) and the
reference models ELODI distils from (`update.ensemble`), read from disk before anything is built.

Each is a checkpoint file, a clarena run folder (its last finished task's checkpoint) or a saved
state dict (the layouts of `clarena.cl_algorithms.deployed`), read with `weights_only=True` and
checked against the run's backbone, so a wrong file stops the run in one line, before its folder is
written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from clarena.cl_algorithms.deployed import DeployedModel, DeployedModelError
from clarena.core.errors import ConfigError, one_line
from clarena.run_folder import checkpoint as ckpt


def weights_file(option: str, spec: str) -> Path:
    """The file `spec` names: itself, or a run folder's last task checkpoint.

    Raises:
        ConfigError: for a path that does not exist, a run folder without a finished task, or a
            symbolic link (never followed).
    """
    path = Path(spec).expanduser()
    if path.is_symlink():
        raise ConfigError(f"{option}: {path} is a symbolic link; give the file or folder itself")
    if path.is_dir():
        done = ckpt.finished_tasks(path)
        if not done:
            raise ConfigError(
                f"{option}: {path} holds no finished task checkpoint "
                f"({ckpt.CHECKPOINT_DIR}/after_task_<t>.pt); give a finished run folder or a "
                "weights file"
            )
        path = ckpt.task_checkpoint_path(path, done[-1])
        if path.is_symlink():
            raise ConfigError(f"{option}: {path} is a symbolic link, which is never followed")
    if not path.is_file():
        raise ConfigError(
            f"{option}: {path} does not exist; give a checkpoint file, a clarena run folder or "
            "a saved state dict"
        )
    return path


def read_deployed_model(option: str, spec: str) -> DeployedModel:
    """The weights `spec` names (`option` is the config key, for the messages).

    Raises:
        ConfigError: one line naming the key, the file and the cause.
    """
    path = weights_file(option, spec)
    try:
        payload = ckpt.safe_load(path)
    except Exception as exc:  # unreadable, foreign or unsafe: bad input either way
        message = one_line(exc).split("; delete it", 1)[0]  # the resume advice does not apply
        raise ConfigError(
            f"{option}: {message}; give a weights file written by torch.save or a run folder"
        ) from None
    try:
        return DeployedModel.from_payload(payload, str(path))
    except DeployedModelError as exc:
        raise ConfigError(f"{option}: {exc}") from None


def update_options(update: DictConfig, backbone: Any, num_tasks: int) -> dict[str, Any]:
    """The algorithm's keyword arguments from the `update` node: `deployed_model` (from `old_model`)
    and `ensemble` (from `ensemble`, a list), each checked against `backbone`.

    Raises:
        ConfigError: for an unreadable or mismatched file, or a deployed model with fewer than two
            tasks (the deployed model is task 1; the update is task 2).
    """
    options: dict[str, Any] = {}
    old_model = update.get("old_model")
    if old_model is not None:
        if num_tasks < 2:
            raise ConfigError(
                f"update.old_model: the dataset has {num_tasks} task; the deployed model takes "
                "the place of task 1, so the update needs cl_dataset.num_tasks >= 2"
            )
        options["deployed_model"] = _checked("update.old_model", str(old_model), backbone)
    ensemble = update.get("ensemble")
    if ensemble:
        if isinstance(ensemble, str) or not OmegaConf.is_list(ensemble):
            raise ConfigError(
                "update.ensemble: give a list of files or run folders, e.g. "
                "'update.ensemble=[runs/a,runs/b]'"
            )
        options["ensemble"] = [
            _checked(f"update.ensemble[{i}]", str(spec), backbone)
            for i, spec in enumerate(ensemble)
        ]
    return options


def _checked(option: str, spec: str, backbone: Any) -> DeployedModel:
    model = read_deployed_model(option, spec)
    try:
        model.check_backbone(backbone)
    except DeployedModelError as exc:
        raise ConfigError(f"{option}: {exc}") from None
    return model
