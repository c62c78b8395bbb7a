"""Which run a result belongs to, and what produced it, for `metrics.json`, plots and reports.

- `run_identity(config)`: the experiment, algorithm, dataset, scenario and seed of a run, read
  from its resolved config; `identity_line` writes them on one line for titles.
- `collect(task_times)`: the provenance stored in `metrics.json` under `provenance`: clarena's
  version and git commit (with a dirty flag, when clarena runs from a git checkout), the versions
  of Python, torch, lightning, hydra-core and of the optional libraries installed beside them
  (the same for a fresh and a resumed run of one environment), the device (GPU name, else CPU
  model), the wall time of every task and in total, the command line, and when the file was written.
- `label_names(datamodule)` / `label_names_from_config(config)`: a name for every label of the
  run's label space, from the class names of the source (`clarena.metrics.class_names`).

Everything here only reads; a value that cannot be found (no git, no `/proc/cpuinfo`) is `None`.
"""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clarena.metrics.class_names import class_names

IDENTITY_KEYS: tuple[str, ...] = ("experiment", "algorithm", "dataset", "scenario", "seed")
"""The keys of `run_identity`, in the order titles show them."""

PROVENANCE_KEYS: tuple[str, ...] = (
    "clarena_version",
    "git_commit",
    "git_dirty",
    "python",
    "libraries",
    "device",
    "cpu",
    "gpus",
    "wall_time_per_task_s",
    "wall_time_total_s",
    "wall_time_measured_by",
    "command_line",
    "written_at",
)
"""The keys of `collect`'s dict (`metrics.json` → `provenance`)."""

#: Distributions whose version is always recorded.
CORE_LIBRARIES: tuple[str, ...] = (
    "torch",
    "lightning",
    "hydra-core",
    "omegaconf",
    "torchmetrics",
    "numpy",
)

#: Optional libraries, recorded when installed: module -> distributions to try.
OPTIONAL_LIBRARIES: dict[str, tuple[str, ...]] = {
    "torchvision": ("torchvision",),
    "sklearn": ("scikit-learn",),
    "matplotlib": ("matplotlib",),
    "tensorboard": ("tensorboard",),
    "tensorboardX": ("tensorboardX",),
    "mlflow": ("mlflow", "mlflow-skinny"),
    "wandb": ("wandb",),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "avalanche": ("avalanche-lib",),
    "hydra_plugins.hydra_joblib_launcher": ("hydra-joblib-launcher",),
    "hydra_plugins.hydra_submitit_launcher": ("hydra-submitit-launcher",),
}

_CONSTRUCTIONS = {
    "SplitCLDataset": "Split",
    "PermutedCLDataset": "Permuted",
    "RotatedCLDataset": "Rotated",
    "DataIncrementalCLDataset": "Data-incremental",
}
_SOURCES = {
    "digits": "digits 8×8",
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
}


def _target_name(node: Any) -> str | None:
    if isinstance(node, Mapping) and isinstance(node.get("_target_"), str):
        return node["_target_"].rsplit(".", 1)[-1]
    return None


def dataset_label(node: Any) -> str | None:
    """`Split Fashion-MNIST (5 tasks)` for a `cl_dataset` config node; `None` without one."""
    name = _target_name(node)
    if name is None:
        return None
    assert isinstance(node, Mapping)
    source = node.get("source")
    if name in _CONSTRUCTIONS and isinstance(source, str):
        label = f"{_CONSTRUCTIONS[name]} {_SOURCES.get(source, source)}"
    else:
        label = name if not isinstance(source, str) else f"{name} {source}"
    tasks = node.get("num_tasks")
    return f"{label} ({tasks} tasks)" if isinstance(tasks, int) else label


def run_identity(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The experiment, algorithm, dataset, scenario and seed of a run (`None` where unknown)."""
    config = config if isinstance(config, Mapping) else {}
    return {
        "experiment": config.get("experiment_name"),
        "algorithm": _target_name(config.get("cl_algorithm")),
        "dataset": dataset_label(config.get("cl_dataset")),
        "scenario": config.get("scenario"),
        "seed": config.get("seed"),
    }


def identity_line(identity: Mapping[str, Any] | None, scenario: Any = None) -> str:
    """`default · LwF · Split digits 8×8 (5 tasks) · TIL · seed 1` (`?` where unknown)."""
    identity = dict(identity or {})
    if identity.get("scenario") is None:
        identity["scenario"] = scenario

    def text(key: str) -> str:
        value = identity.get(key)
        return "?" if value is None else str(value)

    return " · ".join(
        [
            *(text(k) for k in ("experiment", "algorithm", "dataset", "scenario")),
            f"seed {text('seed')}",
        ]
    )


# ------------------------------------------------------------------------------ provenance
def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(package_dir: Path | None = None) -> tuple[str | None, bool | None]:
    """The commit of the checkout clarena runs from and whether tracked files differ from it.

    `(None, None)` when clarena is not imported from the top of a git work tree (an installed
    wheel, or no `git`).
    """
    if package_dir is None:
        import clarena

        package_dir = Path(clarena.__file__).resolve().parent
    top = _git(["rev-parse", "--show-toplevel"], package_dir)
    if top is None or Path(top).resolve() != package_dir.parent:
        return None, None
    commit = _git(["rev-parse", "HEAD"], package_dir)
    status = _git(["status", "--porcelain", "--untracked-files=no"], package_dir)
    return commit, (None if status is None else bool(status))


@functools.lru_cache(maxsize=1)
def cpu_model() -> str | None:
    """The CPU's model name (`/proc/cpuinfo` on Linux, else `platform.processor()`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def gpu_names() -> list[str]:
    """The names of the CUDA devices torch sees (empty without torch or CUDA)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def device_of(config: Mapping[str, Any] | None, gpus: list[str]) -> str | None:
    """What trained: the GPU name when the trainer's accelerator used one, else the CPU model."""
    trainer = (config or {}).get("trainer") if isinstance(config, Mapping) else None
    accelerator = str((trainer or {}).get("accelerator", "auto")).lower()
    if gpus and accelerator in {"auto", "gpu", "cuda"}:
        return gpus[0] if len(set(gpus)) == 1 else ", ".join(gpus)
    if accelerator == "mps":
        return "Apple MPS"
    return cpu_model()


@functools.cache
def _version(distributions: tuple[str, ...]) -> str | None:
    """The installed version of the first of `distributions` found (looked up once a process:
    each lookup scans the installed distributions, 1-2 ms, and a run writes results per task)."""
    for dist in distributions:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def library_versions() -> dict[str, str | None]:
    """Python, the core libraries, and the optional libraries installed in this environment.

    What is installed, not what this process happened to import: a resumed run imports less
    than a fresh one (no data reader, no plotting before its first task), and its record must
    be the same."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in CORE_LIBRARIES:
        versions[dist] = _version((dist,))
    for dists in OPTIONAL_LIBRARIES.values():
        found = _version(dists)
        if found is not None:
            versions[dists[0]] = found
    return versions


def command_line(argv: list[str] | None = None) -> str:
    """The command that started this process, as a shell would take it.

    Read from `sys.orig_argv` (not `sys.argv`, which Hydra's launch rewrites); the console script
    shows as `clarena ...` and `python -m clarena ...` as written.
    """
    argv = list(getattr(sys, "orig_argv", sys.argv) if argv is None else argv)
    if len(argv) >= 2 and Path(argv[1]).name == "clarena" and not argv[1].endswith(".py"):
        return shlex.join(["clarena", *argv[2:]])
    if argv and Path(argv[0]).name.startswith("python"):
        argv = ["python", *argv[1:]]
    return shlex.join(argv)


def collect(
    config: Mapping[str, Any] | None = None,
    task_times: Mapping[int, float] | None = None,
    measured_by: str | None = None,
    num_tasks: int | None = None,
) -> dict[str, Any]:
    """The provenance of a results file written now (the keys of `PROVENANCE_KEYS`).

    Args:
        config: The run's resolved config (for the trainer's accelerator).
        task_times: Wall-clock seconds of each task, by task number (from 1).
        measured_by: Who measured `task_times` (`"task loop"`, ...).
        num_tasks: The length of `wall_time_per_task_s` (default: the largest task timed).
    """
    from clarena import __version__

    times = {int(t): float(s) for t, s in (task_times or {}).items()}
    width = num_tasks if num_tasks is not None else max(times, default=0)
    per_task = [times.get(t) for t in range(1, width + 1)]
    commit, dirty = git_state()
    gpus = gpu_names()
    versions = library_versions()
    return {
        "clarena_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": versions.pop("python"),
        "libraries": versions,
        "device": device_of(config, gpus),
        "cpu": cpu_model(),
        "gpus": gpus,
        "wall_time_per_task_s": per_task,
        "wall_time_total_s": sum(times.values()) if times else None,
        "wall_time_measured_by": measured_by if times else None,
        "command_line": command_line(),
        "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------------------ class names
def label_names(datamodule: Any) -> list[str] | None:
    """A name for every label of the datamodule's label space, or `None` if its source has none.

    A label that stands for several source classes (TIL and DIL splits: label $i$ is the $i$-th
    class of each task) gets their names joined by ` | `.
    """
    names = getattr(datamodule, "class_names", None) or class_names(
        getattr(datamodule, "source_name", None)
    )  # the names a user's source brings (folder names, ...), else the built-in source's
    if names is None:
        return None
    by_label: dict[int, list[str]] = {}
    for t in range(1, int(datamodule.num_tasks) + 1):
        for source_class, label in datamodule.label_map(t).items():
            known = by_label.setdefault(int(label), [])
            if names[source_class] not in known:
                known.append(names[source_class])
    width = max(by_label, default=-1) + 1
    return [" | ".join(by_label.get(label, [str(label)])) for label in range(width)]


def label_names_from_config(config: Mapping[str, Any] | None) -> list[str] | None:
    """`label_names` of the dataset a resolved config describes (clarena's own datasets only).

    The dataset object is built without reading any data file; `None` when the config has no
    clarena dataset, the source has no class names, or the dataset cannot be built.
    """
    node = config.get("cl_dataset") if isinstance(config, Mapping) else None
    if not isinstance(node, Mapping):
        return None
    from clarena.cl_datasets.own_sources import OWN_SOURCES

    if class_names(node.get("source")) is None and node.get("source") not in OWN_SOURCES:
        return None
    target = node.get("_target_")
    if not isinstance(target, str) or not target.startswith("clarena.cl_datasets."):
        return None
    import clarena.cl_datasets as datasets

    klass = getattr(datasets, target.rsplit(".", 1)[-1], None)
    if klass is None:
        return None
    kwargs = {k: v for k, v in node.items() if not k.startswith("_")}
    kwargs["data_root"] = None  # only the task sequence is needed, not the files
    try:
        datamodule = klass(**kwargs)
    except (TypeError, ValueError, OSError):
        return None
    return label_names(datamodule)
