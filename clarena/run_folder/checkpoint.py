"""Checkpoints of a continual-learning run: atomic files, safe loading, random-number states.

A run folder holds, under `checkpoints/`:

- `after_task_<t>.pt` after every task $t$: the algorithm's `cl_state_dict()` (model, heads, h1,
  Fisher, replay buffer, ...), the metrics accumulator's state, the random-number states of python,
  numpy and torch, and the resolved config. Resuming from it continues exactly where the
  uninterrupted run would be.
- `within_task/last.ckpt` during a task, written by the loop (`clarena.run.loop`) every
  `trainer.checkpoint_every_minutes` or `checkpoint_every_n_steps` (`save_within_task`): the
  model, the optimizer (and scheduler), the position inside the task (step, epoch, batches done in
  the epoch), the random-number states, the algorithm's `extra_cl_state()`, the loss terms
  recorded since the last write and the config's digest. The order of an epoch is a function of
  the loader's seed and the epoch, so a resume inside an epoch (`load_within_task`) draws the
  epoch's batches again, skips the ones already trained and restores the random-number states
  just before the next step, where the uninterrupted run stood. Under DDP rank zero writes it and
  every rank reads it. It is deleted once the task's own checkpoint is written.

Every file is written under a temporary name in the same folder and renamed (`os.replace`, see
`clarena.core.files`), so a process killed at any moment leaves either the previous file or the
new one, never half of one.
Checkpoints hold only tensors, numbers, strings, lists and dicts and are read with
`torch.load(..., weights_only=True)`: opening one never runs code from it.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clarena.core.errors import ClarenaError
from clarena.core.files import atomic_write_bytes

FORMAT_VERSION = 1
"""Version of the layout of `after_task_<t>.pt`."""

CHECKPOINT_DIR = "checkpoints"
"""Sub-folder of a run folder holding its checkpoints."""

WITHIN_TASK_DIR = "within_task"
"""Sub-folder of `checkpoints/` holding the checkpoint of the task in progress."""

WITHIN_TASK_FILE = "last.ckpt"
"""The within-task checkpoint's file name."""

WITHIN_TASK_FORMAT = "clarena.within_task"
"""The `format` entry of the within-task checkpoint."""

WITHIN_TASK_VERSION = 1
"""Version of that checkpoint's layout (the same as the lean loop's before the move to Fabric)."""

_TASK_FILE = re.compile(r"after_task_(\d+)\.pt$")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """`torch.save` to `path` atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


class CheckpointError(ClarenaError, ValueError):
    """A checkpoint file that cannot be read (damaged, foreign, unsafe or of an older format)."""


def safe_load(path: Path) -> Any:
    """Load a checkpoint with `weights_only=True` onto the CPU (no code from the file runs).

    Raises:
        CheckpointError: One line naming the file, what is wrong with it and what to do.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except IsADirectoryError:
        raise CheckpointError(
            f"the checkpoint {path} is a folder, not a file; pass the .pt file inside it"
        ) from None
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as exc:  # a truncated zip raises OSError(EINVAL) from torch's reader
        with open(path, "rb") as handle:
            head = handle.read(4)
        if not head:
            kind = "it is empty (a write was cut short)"
        elif head != b"PK\x03\x04":  # every torch.save file since PyTorch 1.6 is a zip archive
            kind = "it is not a PyTorch checkpoint (random bytes or a legacy format)"
        elif "Weights only load failed" in str(exc):
            kind = "it holds Python objects that a checkpoint never holds (refused unopened)"
        else:
            kind = "it is truncated or damaged"
        raise CheckpointError(
            f"cannot read the checkpoint {path}: {kind}; delete it to resume from the checkpoint "
            "before it, or start the run again"
        ) from exc


def capture_rng() -> dict[str, Any]:
    """The random-number states of python, numpy and torch (CPU and CUDA), weights-only safe."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    state: dict[str, Any] = {
        # as one tensor: 625 Python ints pickle one by one (most of a small checkpoint's cost)
        "python": {"version": version, "state": torch.tensor(internal), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore the states `capture_rng` returned."""
    py = state["python"]
    internal = py["state"]  # a tensor (a list in checkpoints of earlier versions)
    internal = internal.tolist() if isinstance(internal, torch.Tensor) else internal
    random.setstate((py["version"], tuple(int(v) for v in internal), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    legacy = (npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    np.random.set_state(legacy)  # noqa: NPY002 - the global state others may draw from
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def task_checkpoint_path(run_dir: Path, task_id: int) -> Path:
    """`<run_dir>/checkpoints/after_task_<task_id>.pt`."""
    return run_dir / CHECKPOINT_DIR / f"after_task_{task_id}.pt"


def within_task_dir(run_dir: Path) -> Path:
    """The folder of the checkpoint of the task in progress."""
    return run_dir / CHECKPOINT_DIR / WITHIN_TASK_DIR


def saved_tasks(run_dir: Path) -> list[int]:
    """The tasks with a checkpoint file in `run_dir`, ascending."""
    folder = run_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = (_TASK_FILE.match(p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def finished_tasks(run_dir: Path, num_tasks: int | None = None) -> list[int]:
    """The tasks `1..k` whose checkpoints are all present (and `k <= num_tasks` when given).

    A stray file (`after_task_10.pt` in a 5-task run, or one after a gap) is not a finished task:
    a run is only as far as its unbroken sequence of task checkpoints.
    """
    saved = set(saved_tasks(run_dir))
    done: list[int] = []
    while len(done) + 1 in saved and (num_tasks is None or len(done) < num_tasks):
        done.append(len(done) + 1)
    return done


def save_task_checkpoint(
    run_dir: Path,
    task_id: int,
    num_tasks: int,
    cl_state: dict[str, Any],
    results_state: dict[str, Any],
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint after `task_id` atomically and return its path.

    The random-number states are captured here, so call it last, after everything of the task
    (testing, `on_task_end`) has consumed random numbers. `extra` adds top-level entries (the
    config's digest, the logging step reached, ...).
    """
    path = task_checkpoint_path(run_dir, task_id)
    atomic_torch_save(
        {
            "format_version": FORMAT_VERSION,
            "task_id": task_id,
            "num_tasks": num_tasks,
            "cl_state": cl_state,
            "results": results_state,
            "rng": capture_rng(),
            "config": config,
            **(extra or {}),
        },
        path,
    )
    return path


def load_task_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_task_checkpoint`, checking its format and, for a file
    named `after_task_<t>.pt`, that it holds task $t$ (not a copy of another task's file)."""
    state = safe_load(path)
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        found = state.get("format_version") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not a clarena task checkpoint of format {FORMAT_VERSION} "
            f"(found {found!r}); "
            "it was written by another clarena version: re-run the experiment"
        )
    named = _TASK_FILE.match(Path(path).name)
    if named and state.get("task_id") != int(named.group(1)):
        raise CheckpointError(
            f"{path} holds the state after task {state.get('task_id')!r}, not after task "
            f"{named.group(1)} as its name says (a copied or renamed file); restore the right "
            "file, or delete it and the later ones to resume from the task before"
        )
    return state


def check_task_checkpoints(run_dir: Path, digest: str) -> list[int]:
    """Read the checkpoint of every finished task of `run_dir` before anything is built: each
    must be readable, hold its own task and have been written with the `config.yaml` whose
    SHA-256 is `digest`. Returns the finished tasks.

    Raises:
        CheckpointError: One line naming the file and what to do.
    """
    done = finished_tasks(run_dir)
    for task_id in done:
        path = task_checkpoint_path(run_dir, task_id)
        found = load_task_checkpoint(path).get("config_digest")
        if found and found != digest:
            raise CheckpointError(
                f"{run_dir / 'config.yaml'} was changed after {path.name} was written, so the "
                "run cannot be rebuilt as it was: restore the config, or start a new run"
            )
    return done


def is_within_task_checkpoint(checkpoint: Any) -> bool:
    """Whether a loaded `within_task/last.ckpt` was written by clarena's loop (not by Lightning's
    Trainer, which wrote it before the loop moved onto Fabric)."""
    return isinstance(checkpoint, dict) and checkpoint.get("format") == WITHIN_TASK_FORMAT


def save_within_task(loop: Any, module: Any, epoch: int, batches_done: int) -> None:
    """Write the within-task checkpoint of `loop` (a `clarena.run.loop.Loop`), which is
    after `batches_done` batches of `epoch`; rank zero writes, the others only restart the
    schedule."""
    if loop.schedule is not None:
        loop.schedule.restart()
    if loop.checkpoint_dir is None or not loop.is_global_zero:
        return
    terms_log = getattr(module, "_train_terms", None)
    extra = getattr(module, "extra_cl_state", None)
    scheduler = loop.lr_scheduler
    state = {
        "format": WITHIN_TASK_FORMAT,
        "format_version": WITHIN_TASK_VERSION,
        "task_id": loop.task_id,
        "config_digest": loop.config_digest,
        "global_step": loop.global_step,
        "epoch": epoch,
        "batches_done": batches_done,
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "optimizer": loop.optimizers[0].state_dict(),
        "lr_scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": capture_rng(),
        "extra_cl_state": extra() if extra is not None else {},
        "train_terms": terms_log.loop_state() if terms_log is not None else None,
        "side": {k: [v.cpu() for v in vs] for k, vs in loop.side.items()},
    }
    for logger in loop.loggers:  # the logs on disk reach the checkpoint's step
        logger.save()
    loop.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(state, loop.checkpoint_dir / WITHIN_TASK_FILE)


def load_within_task(path: Path, loop: Any, module: Any) -> int:
    """Load the within-task checkpoint `path` into `loop` and `module`; return the batches of its
    epoch to skip (the random-number states are restored just before the next step).

    Raises:
        CheckpointError: The file is not the loop's checkpoint of this task.
    """
    state = safe_load(path)
    if not is_within_task_checkpoint(state) or state.get("format_version") != WITHIN_TASK_VERSION:
        raise CheckpointError(
            f"{path} was not written by this clarena's loop; delete it to redo the task from the "
            "checkpoint before it"
        )
    if int(state["task_id"]) != loop.task_id:
        raise CheckpointError(
            f"{path} belongs to task {state['task_id']}, not task {loop.task_id}; delete "
            "checkpoints/within_task/ and resume again"
        )
    device = loop.root_device
    module.load_state_dict(state["state_dict"])
    loop.optimizers[0].load_state_dict(state["optimizer"])
    if loop.lr_scheduler is not None and state["lr_scheduler"] is not None:
        loop.lr_scheduler.load_state_dict(state["lr_scheduler"])
    if state["extra_cl_state"] and hasattr(module, "load_extra_cl_state"):
        module.load_extra_cl_state(state["extra_cl_state"])
    terms_log = getattr(module, "_train_terms", None)
    if terms_log is not None and state["train_terms"] is not None:
        terms_log.load_loop_state(state["train_terms"], device)
    loop.side = {k: [v.to(device) for v in vs] for k, vs in state["side"].items()}
    loop.global_step = int(state["global_step"])
    loop.current_epoch = int(state["epoch"])
    loop.resume_rng = state["rng"]
    return int(state["batches_done"])
