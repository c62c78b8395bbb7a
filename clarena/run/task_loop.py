"""The task loop behind `clarena train`: fit task $t$, test on tasks $\\le t$, checkpoint, write.

For each task $t = 1..T$ of the dataset (`run_tasks`, the loop every caller shares):

1. `datamodule.setup_task(t, cumulative=algorithm.cumulative_data)`;
2. `algorithm.on_task_start(t, datamodule)` (snapshot h1, grow the heads, ...);
3. a fresh `clarena.run.loop.Loop` on the run's one Fabric (so `trainer.max_epochs` /
   `trainer.max_steps` count per task) fits the task, with its within-task checkpoint;
4. the loop tests every task so far; each `test_step` returns its predictions, which
   `RecordPredictions` adds to the `clarena.metrics.CLResults` accumulator (and logs as
   `test/acc/task_<k>`);
5. `algorithm.on_task_end(t, datamodule)` (Fisher, replay buffer, ...);
6. the results tables are rewritten (the plots after the last task) and the whole CL state is
   checkpointed atomically (`clarena.run_folder.checkpoint`).

`run_experiment(spec, resume=True)` continues a run from its last task checkpoint and, when
the process died inside a task, from the within-task checkpoint of that task: the random-number
states travel with both, so the resumed run ends with the same accuracy matrix as an uninterrupted
one. The run's Fabric is made once (`make_fabric`): under DDP it starts the other ranks
(`clarena.run.ddp`), which run this same loop.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.seed import seed_everything
from omegaconf import OmegaConf

from clarena.core.errors import ConfigError
from clarena.core.files import atomic_write_text
from clarena.metrics import CLResults
from clarena.run import ddp
from clarena.run.callbacks import RecordPredictions, kill_now, kill_point, kills_rank
from clarena.run.components import Components, build_components
from clarena.run.loggers import CSVLogger, TaskSteps
from clarena.run.loop import Loop, make_fabric
from clarena.run.loop_settings import LoopSettings
from clarena.run.spec import RunSpec
from clarena.run_folder import checkpoint as ckpt
from clarena.run_folder.folder import CONFIG_FILE, config_digest, relocatable

log = logging.getLogger(__name__)

RESULTS_DIR = "results"
"""Sub-folder of a run folder holding its results files."""


@dataclass
class Progress:
    """Where a run is (for the message of an interrupted run)."""

    task: int = 0
    num_tasks: int = 0
    loop: Any = None
    """The task's `Loop`."""

    @property
    def step(self) -> int:
        """The optimizer steps done in the current task."""
        return int(self.loop.global_step) if self.loop is not None else 0


def build_loggers(spec: RunSpec) -> list[Any]:
    """The experiment loggers of the run (one instance per run, shared by the tasks' loops)."""
    return [instantiate(node) for node in spec.loggers.values()]


def build_callbacks(spec: RunSpec) -> list[Any]:
    """The callbacks of the run, handed to the run's Fabric (`clarena.run.loop`)."""
    return [instantiate(node) for node in spec.callbacks.values()]


def one_process_fabric(spec: RunSpec) -> tuple[Any, LoopSettings]:
    """A Fabric of one process on the run's accelerator and precision, and its settings, for
    testing saved models (`clarena eval`, also of a run trained with DDP)."""
    single = LoopSettings(
        accelerator=spec.settings.accelerator,
        devices=1,
        precision=spec.settings.precision,
        enable_progress_bar=False,
        checkpoint_every_minutes=None,
    )
    return make_fabric(single), single


def _check_digest(found: str | None, digest: str, run_dir: Path, source: Path) -> None:
    if found and found != digest:
        raise ConfigError(
            f"{run_dir / CONFIG_FILE} was changed after {source.name} was written, so the run "
            "cannot continue as it began: restore the config, or start a new run with the change"
        )


def _within_task_checkpoint(run_dir: Path, task_id: int, digest: str) -> tuple[Path, int] | None:
    """The within-task checkpoint of task `task_id` and its step, if the run died in that task."""
    path = ckpt.within_task_dir(run_dir) / ckpt.WITHIN_TASK_FILE
    if not path.is_file():
        return None
    checkpoint = ckpt.safe_load(path)
    if not ckpt.is_within_task_checkpoint(checkpoint):
        log.info(
            "%s was written by Lightning's Trainer (before clarena's loop moved onto Fabric): "
            "task %d starts again from the checkpoint before it",
            path,
            task_id,
        )
        return None
    if checkpoint.get("task_id") != task_id:
        return None
    _check_digest(checkpoint.get("config_digest"), digest, run_dir, path)
    return path, int(checkpoint.get("global_step", 0))


LoopFactory = Callable[[int], Loop]
"""`task_id -> Loop`: a fresh loop for a task."""


def run_tasks(
    components: Components,
    loop_for: LoopFactory,
    tasks: Iterable[int],
    results: CLResults | None = None,
    *,
    resume_from: Path | None = None,
    before_task: Callable[[int], None] | None = None,
    after_task: Callable[[int, Any], None] | None = None,
) -> CLResults:
    """The task loop every caller shares (`clarena train`, `clarena eval`, the tests, the docs'
    examples). For each task $t$ of `tasks`:

    1. `before_task(t)`, then `datamodule.setup_task(t, cumulative=algorithm.cumulative_data)`;
    2. `algorithm.on_task_start(t, datamodule)`;
    3. `loop_for(t)` fits the task (from `resume_from`, the within-task checkpoint of the first
       task, when given) and tests every task so far; the predictions reach `results` through
       `RecordPredictions`;
    4. `algorithm.on_task_end(t, datamodule)`; the algorithm's own record (`results_record`) and
       the task's wall time go into `results`;
    5. `after_task(t, loop)` (the pipeline writes and checkpoints there).

    Returns:
        `results` (a new `CLResults` of the algorithm's scenario when None).
    """
    algorithm, datamodule = components.algorithm, components.datamodule
    results = CLResults(algorithm.scenario) if results is None else results
    for task_id in tasks:
        task_start = time.monotonic()
        if before_task is not None:
            before_task(task_id)
        datamodule.setup_task(task_id, cumulative=bool(algorithm.cumulative_data))
        algorithm.on_task_start(task_id, datamodule)
        loop = loop_for(task_id)
        loop.fit(algorithm, datamodule=datamodule, ckpt_path=resume_from)
        resume_from = None
        loop.test(algorithm, datamodule=datamodule, recorders=[RecordPredictions(results, task_id)])
        algorithm.on_task_end(task_id, datamodule)
        results.set_algorithm_record(algorithm.results_record())  # e.g. BCWI's chosen alpha
        results.set_task_time(task_id, time.monotonic() - task_start)
        if after_task is not None:
            after_task(task_id, loop)
    return results


def _restore(
    run_dir: Path, components: Components, results: CLResults, digest: str
) -> tuple[int, int]:
    """Load the last task checkpoint of `run_dir`; return the task to continue with and the
    logging step reached."""
    done = ckpt.finished_tasks(run_dir, int(components.datamodule.num_tasks))
    if not done:
        return 1, 0
    path = ckpt.task_checkpoint_path(run_dir, done[-1])
    state = ckpt.load_task_checkpoint(path)
    _check_digest(state.get("config_digest"), digest, run_dir, path)
    components.algorithm.load_cl_state_dict(state["cl_state"])
    results.load_state_dict(state["results"])
    ckpt.restore_rng(state["rng"])
    log.info("resuming %s after task %d", run_dir, done[-1])
    return done[-1] + 1, int(state.get("log_step", 0))


#: Lightning warnings that would repeat at every task and say nothing about the run.
_QUIET = (r".*isinstance\(treespec, LeafSpec\).*",)


def flushes_denormals() -> bool:
    """Whether this thread flushes subnormal floats to zero (`torch.set_flush_denormal`)."""
    return bool((torch.tensor([1e-38]) * 0.5).item() == 0.0)


def run_experiment(
    spec: RunSpec,
    resume: bool = False,
    progress: Progress | None = None,
    worker: bool = False,
) -> CLResults:
    """Run (or, with `resume`, continue) the run `spec` describes in `spec.run_dir`; return its
    results.

    Args:
        spec: The run (`RunSpec.of(cfg)`); its folder holds `config.yaml`, `checkpoints/`,
            `results/` and the logs.
        resume: Continue from the checkpoints already in the run folder.
        progress: Updated with the task and loop in progress (for interruption messages).
        worker: This process is a non-zero DDP rank: it trains, tests and gathers, but writes
            nothing (`clarena.run.ddp`).
    """
    launched: list[str] = []
    if spec.settings.fabric_strategy().startswith("ddp") and not worker:
        launched = ddp.announce(spec.run_dir, resume)
    # The ~1M objects the imports made (torch, Lightning, torchmetrics, Hydra) cannot be garbage;
    # freezing them keeps the cyclic collector from walking them again in each of its ~1,200 runs
    # during a default run (1.0 s of a 9 s `clarena train`, measured with `gc.callbacks`). The
    # run collects what it makes even where the caller paused the collector for its imports
    # (`clarena train` does: `collector_paused`).
    gc.freeze()
    collecting = gc.isenabled()
    gc.enable()
    # `flush_denormal` before any torch work of the run (the threads torch starts later inherit
    # it; a pool already running keeps its own); a run folder from before the key had none
    flushing = flushes_denormals()
    torch.set_flush_denormal(spec.flush_denormal)
    try:
        with warnings.catch_warnings():
            for pattern in _QUIET:
                warnings.filterwarnings("ignore", message=pattern)
            return _run(spec, resume, progress or Progress(), worker)
    finally:
        torch.set_flush_denormal(flushing)  # the caller's setting again
        # The run's own cycles (loop, module, callbacks, data) are garbage now: collected here,
        # where the collector walks only what the run made, not the frozen imports, so a sweep's
        # next job does not freeze them with its own `gc.freeze()`.
        gc.collect()
        gc.unfreeze()  # a caller that runs many experiments in one process collects them again
        if not collecting:
            gc.disable()
        if launched or worker:
            ddp.finish(launched)


def _run(spec: RunSpec, resume: bool, progress: Progress, worker: bool) -> CLResults:
    run_dir, plain = spec.run_dir, spec.plain_config()
    if not resume and not worker:  # before the other ranks start: they read it
        text = OmegaConf.to_yaml(relocatable(plain, run_dir))
        atomic_write_text(run_dir / CONFIG_FILE, text)
    digest = config_digest(run_dir) if (run_dir / CONFIG_FILE).is_file() else ""
    settings = spec.settings
    callbacks = build_callbacks(spec)
    loggers = [] if worker else build_loggers(spec)  # rank zero alone writes logs
    fabric = make_fabric(settings, callbacks, loggers)
    seed_everything(spec.seed, workers=True, verbose=False)
    os.environ.pop("PL_GLOBAL_SEED", None)  # one seeding per run: no rank re-seeds from it
    components = build_components(spec)
    algorithm, datamodule = components.algorithm, components.datamodule
    results = CLResults(spec.scenario)
    start, log_step = _restore(run_dir, components, results, digest) if resume else (1, 0)
    num_tasks = int(datamodule.num_tasks)
    resume_from = _within_task_checkpoint(run_dir, start, digest) if resume else None
    for logger in loggers:
        if resume and isinstance(logger, CSVLogger):
            logger.keep_until = (start, log_step, resume_from[1] if resume_from else 0)
    steps = TaskSteps(loggers)
    steps.offset = log_step
    kill = kill_point() if kills_rank(fabric.global_rank) else None
    progress.num_tasks = num_tasks
    if resume_from is not None:
        log.info("continuing task %d from %s", start, resume_from[0])

    def before_task(task_id: int) -> None:
        log.info("task %d/%d", task_id, num_tasks)
        progress.task, progress.loop, steps.task = task_id, None, task_id

    def loop_for(task_id: int) -> Loop:
        progress.loop = Loop(
            fabric,
            task_id,
            settings,
            checkpoint_dir=ckpt.within_task_dir(run_dir),
            config_digest=digest,
            num_tasks=num_tasks,
            kill_step=kill[2] if kill and kill[:2] == ("step", task_id) else None,
            callbacks=callbacks,
        )
        return progress.loop

    def after_task(task_id: int, loop: Loop) -> None:
        steps.offset += int(loop.global_step)
        if worker:
            return  # rank zero writes the results and checkpoints
        # the tables after every task; the plots (0.4 s a task) once the run is complete
        from clarena.reports.writers import write_results  # lazily: matplotlib

        write_results(results.record(plain), run_dir / RESULTS_DIR, plots=task_id == num_tasks)
        ckpt.save_task_checkpoint(
            run_dir,
            task_id,
            num_tasks,
            algorithm.cl_state_dict(),
            results.state_dict(),
            plain,
            extra={"config_digest": digest, "log_step": steps.offset},
        )
        shutil.rmtree(ckpt.within_task_dir(run_dir), ignore_errors=True)
        if kill and kill[:2] == ("after_task", task_id):
            kill_now()

    return run_tasks(
        components,
        loop_for,
        range(start, num_tasks + 1),
        results,
        resume_from=resume_from[0] if resume_from is not None else None,
        before_task=before_task,
        after_task=after_task,
    )


def worker_main() -> int:
    """Run this rank's part of the run rank zero started (`clarena.run.ddp`); return the
    exit code."""
    from clarena.run.saved_config import load_run_config

    ddp.die_with_parent()
    run_dir = Path(os.environ[ddp.DDP_RUN_DIR_ENV])
    resume = os.environ.get(ddp.DDP_RESUME_ENV) == "1"
    cfg = load_run_config(run_dir, trust=True)  # rank zero checked it before starting us
    run_experiment(RunSpec.of(cfg, run_dir), resume=resume, worker=True)
    return 0
