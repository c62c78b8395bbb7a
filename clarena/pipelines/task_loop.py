"""The task loop behind `clarena train`: fit task $t$, test on tasks $\\le t$, checkpoint, write.

For each task $t = 1..T$ of the dataset:

1. `datamodule.setup_task(t, cumulative=algorithm.cumulative_data)`;
2. `algorithm.on_task_start(t, datamodule)` (snapshot h1, grow the heads, ...);
3. a fresh Lightning `Trainer` (so `trainer.max_epochs` / `trainer.max_steps` count per task) fits
   the task, with Lightning checkpoints at the end of every epoch;
4. `trainer.test` on every task so far; the predictions in `algorithm.test_outputs` feed the
   `clarena.metrics.CLResults` accumulator;
5. `algorithm.on_task_end(t, datamodule)` (Fisher, replay buffer, ...);
6. the results files are rewritten and the whole CL state is checkpointed atomically
   (`clarena.pipelines.checkpoint`).

`run_experiment(cfg, run_dir, resume=True)` continues a run from its last task checkpoint and, when
the process died inside a task, from Lightning's last checkpoint of that task: the random-number
states travel with both, so the resumed run ends with the same accuracy matrix as an uninterrupted
one.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from omegaconf import DictConfig, OmegaConf

from clarena.heads import make_heads
from clarena.metrics import CLResults
from clarena.pipelines import checkpoint as ckpt
from clarena.pipelines.callbacks import (
    KillSwitch,
    ResumeStateCallback,
    TaskProgressBar,
    kill_now,
    kill_point,
)
from clarena.pipelines.config import callback_nodes, logger_nodes, to_plain

log = logging.getLogger(__name__)

RESULTS_DIR = "results"
"""Sub-folder of a run folder holding its results files."""

WITHIN_TASK_FILE = "last.ckpt"
"""Lightning's checkpoint of the task in progress (`filename: last` in `callbacks/default.yaml`)."""

CONFIG_FILE = "config.yaml"
"""The resolved config of a run, written when it starts (what `resume` and `eval` rebuild from)."""


@dataclass
class Components:
    """What a run is made of: the dataset and the algorithm (with its backbone and heads)."""

    datamodule: Any
    algorithm: Any


def build_components(cfg: DictConfig) -> Components:
    """Instantiate the dataset, backbone, heads, optimizer factory and algorithm of `cfg`.

    The dataset's files are loaded here, so a missing dataset stops the run before any training.
    """
    datamodule = instantiate(cfg.cl_dataset)
    datamodule.prepare_data()
    backbone = instantiate(cfg.backbone, input_shape=tuple(datamodule.input_shape))
    heads = make_heads(cfg.scenario, backbone.output_dim)
    optimizer = instantiate(cfg.optimizer)
    algorithm = instantiate(
        cfg.cl_algorithm,
        backbone=backbone,
        heads=heads,
        optimizer=optimizer,
        scenario=cfg.scenario,
    )
    return Components(datamodule, algorithm)


def build_loggers(cfg: DictConfig) -> list[Any]:
    """The experiment loggers of `cfg` (one instance per run, shared by the tasks' Trainers)."""
    return [instantiate(node) for node in logger_nodes(cfg).values()]


def build_trainer(
    cfg: DictConfig, run_dir: Path, task_id: int, loggers: list[Any], extra: list[Any]
) -> pl.Trainer:
    """A fresh Trainer for task `task_id` with the configured callbacks plus the pipeline's own."""
    callbacks = [instantiate(node) for node in callback_nodes(cfg).values()]
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint):
            callback.dirpath = str(ckpt.within_task_dir(run_dir))
    # without a configured ModelCheckpoint, Lightning would add its own (into the run folder)
    checkpointing = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    callbacks += [ResumeStateCallback(task_id), *extra]
    has_bar = any(isinstance(c, ProgressBar) for c in callbacks)
    if cfg.trainer.get("enable_progress_bar", True) and not has_bar:
        callbacks.append(TaskProgressBar())
    return instantiate(
        cfg.trainer,
        logger=loggers if loggers else False,
        callbacks=callbacks,
        plugins=[ckpt.AtomicCheckpointIO()],
        enable_checkpointing=checkpointing,
    )


def _within_task_checkpoint(run_dir: Path, task_id: int) -> Path | None:
    """Lightning's last checkpoint of task `task_id` if the run died inside that task."""
    path = ckpt.within_task_dir(run_dir) / WITHIN_TASK_FILE
    if not path.is_file():
        return None
    state = ckpt.safe_load(path).get("callbacks", {}).get(ResumeStateCallback.__qualname__, {})
    if state.get("task_id") != task_id:
        return None
    return path


def record_test_results(
    trainer: pl.Trainer, components: Components, results: CLResults, task_id: int
) -> None:
    """Test the model on the datamodule's test tasks and add the predictions to `results`."""
    algorithm, datamodule = components.algorithm, components.datamodule
    trainer.test(algorithm, datamodule=datamodule, verbose=False)
    task_aware = algorithm.scenario == "CIL"
    for test_task, out in sorted(algorithm.test_outputs.items()):
        results.add(
            after_task=task_id,
            test_task=test_task,
            preds=out["preds"],
            targets=out["targets"],
            preds_task_aware=out["preds_task_aware"] if task_aware else None,
        )


def _restore(run_dir: Path, components: Components, results: CLResults) -> int:
    """Load the last task checkpoint of `run_dir`; return the task to continue with."""
    done = ckpt.saved_tasks(run_dir)
    if not done:
        return 1
    state = ckpt.load_task_checkpoint(ckpt.task_checkpoint_path(run_dir, done[-1]))
    components.algorithm.load_cl_state_dict(state["cl_state"])
    results.load_state_dict(state["results"])
    ckpt.restore_rng(state["rng"])
    log.info("resuming %s after task %d", run_dir, done[-1])
    return done[-1] + 1


#: Lightning warnings that would repeat at every task and say nothing about the run.
_QUIET = (
    r".*isinstance\(treespec, LeafSpec\).*",
    r"The number of training batches .* is smaller than the logging interval.*",
    r"Checkpoint directory .* exists and is not empty.*",
)


def run_experiment(cfg: DictConfig, run_dir: Path, resume: bool = False) -> CLResults:
    """Run (or, with `resume`, continue) the experiment `cfg` in `run_dir`; return its results.

    Args:
        cfg: The composed config (`cfg.output_dir` should equal `run_dir`).
        run_dir: The run folder: `config.yaml`, `checkpoints/`, `results/`, logs.
        resume: Continue from the checkpoints already in `run_dir`.
    """
    with warnings.catch_warnings():
        for pattern in _QUIET:
            warnings.filterwarnings("ignore", message=pattern)
        return _run(cfg, Path(run_dir), resume)


def _run(cfg: DictConfig, run_dir: Path, resume: bool) -> CLResults:
    plain = to_plain(cfg)
    if not resume:
        ckpt.atomic_write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(plain))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    components = build_components(cfg)
    algorithm, datamodule = components.algorithm, components.datamodule
    results = CLResults(cfg.scenario)
    start = _restore(run_dir, components, results) if resume else 1
    loggers = build_loggers(cfg)
    kill = kill_point()
    num_tasks = int(datamodule.num_tasks)
    for task_id in range(start, num_tasks + 1):
        log.info("task %d/%d", task_id, num_tasks)
        datamodule.setup_task(task_id, cumulative=bool(algorithm.cumulative_data))
        algorithm.on_task_start(task_id, datamodule)
        resume_from = _within_task_checkpoint(run_dir, task_id) if resume else None
        if resume_from is not None:
            log.info("continuing task %d from %s", task_id, resume_from)
        extra = [KillSwitch(task_id, kill[2])] if kill and kill[:2] == ("step", task_id) else []
        trainer = build_trainer(cfg, run_dir, task_id, loggers, extra)
        trainer.fit(algorithm, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        record_test_results(trainer, components, results, task_id)
        algorithm.on_task_end(task_id, datamodule)
        results.write(run_dir / RESULTS_DIR, plain)
        ckpt.save_task_checkpoint(
            run_dir, task_id, num_tasks, algorithm.cl_state_dict(), results.state_dict(), plain
        )
        shutil.rmtree(ckpt.within_task_dir(run_dir), ignore_errors=True)
        if kill and kill[:2] == ("after_task", task_id):
            kill_now()
    return results
