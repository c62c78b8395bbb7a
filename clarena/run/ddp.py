"""`clarena train` on several processes: how the DDP children of Fabric's launcher re-enter a run.

`trainer.devices=N` (N > 1) runs N processes: the run's Fabric
(`clarena.run.loop.make_fabric`) launches them with its subprocess launcher, which runs this
process's command again
(`python <script> ...` or `python -m clarena ...`) with `LOCAL_RANK` and friends in the environment.
clarena does not let such a child go through `clarena train` again (a second Hydra folder, a second
`config.yaml`, a lock it could never take). Before it launches them, rank zero puts the run
folder and the resume flag in the environment (`DDP_RUN_DIR_ENV`, `DDP_RESUME_ENV`); a process
that starts with those and a non-zero `LOCAL_RANK` is a *worker*: `clarena.cli` hands it to
`clarena.run.task_loop.worker_main`, which rebuilds the run from the folder's `config.yaml`
(written by rank zero before any child exists) and runs the same task loop. Under SLURM (`srun`
starts every rank of the job), the ranks are told apart by `SLURM_PROCID`, with the same effect.

Who does what:

- every rank: builds the components from the same config and seed, trains its shard of each batch
  (gradients averaged by DDP), tests its shard, and takes part in the gathers, so that the test
  predictions, the replay buffer and the Fisher are the same on every rank;
- rank zero alone: holds the folder's lock, writes `config.yaml`, the results, the reports and the
  checkpoints, the logs and the within-task checkpoints.

A rank that dies ends the run: Fabric's launcher watches its children and kills the whole group when
one dies, and a worker asks the kernel to kill it when rank zero dies (`PR_SET_PDEATHSIG`), so no
process is left waiting in a collective. SIGTERM (or Ctrl-C) to rank zero stops it with the resume
line (`clarena.commands.train`), and its workers die with it. `clarena train resume=<dir>` then
continues as for a one-process run.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clarena.run.loop_settings import LoopSettings

DDP_RUN_DIR_ENV = "CLARENA_DDP_RUN_DIR"
"""Set by rank zero for its DDP children: the run folder they join."""

DDP_RESUME_ENV = "CLARENA_DDP_RESUME"
"""Set by rank zero for its DDP children: "1" when the run continues from its checkpoints."""

_LAUNCH_ENV = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def is_child() -> bool:
    """Whether this process is a DDP child that rank zero's Fabric started for its run."""
    return bool(os.environ.get(DDP_RUN_DIR_ENV)) and os.environ.get("LOCAL_RANK", "0") != "0"


def slurm_rank(settings: LoopSettings) -> int:
    """This task's rank when SLURM started every rank of a DDP run (`srun`), else 0."""
    several = str(settings.num_nodes) != "1" or str(settings.devices) not in ("1", "auto")
    if not ("ddp" in str(settings.strategy or "") or several) or "SLURM_NTASKS" not in os.environ:
        return 0
    return int(os.environ.get("SLURM_PROCID", "0") or 0)


def announce(run_dir: Path, resume: bool) -> list[str]:
    """Tell the children rank zero is about to start where to go; return what to undo later."""
    os.environ[DDP_RUN_DIR_ENV] = str(run_dir)
    os.environ[DDP_RESUME_ENV] = "1" if resume else "0"
    return [name for name in _LAUNCH_ENV if name not in os.environ]


def finish(launched_here: list[str]) -> None:
    """After a run: close the process group and forget the launch variables Fabric set.

    The next run of this process (a job of a sweep) then starts its own children.
    """
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for name in (*launched_here, DDP_RUN_DIR_ENV, DDP_RESUME_ENV):
        os.environ.pop(name, None)


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent (rank zero) dies."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
