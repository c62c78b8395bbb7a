"""`clarena train [options] [overrides]`: run an experiment, a Hydra application.

    clarena train                                   # the embedded default: split digits, MLP, LwF
    clarena train experiment=vdv2022_lwf_til        # a complete experiment from configs/experiment/
    clarena train cl_algorithm=ewc scenario=CIL seed=2 trainer.max_epochs=5
    clarena train --config-dir my_configs experiment=my_experiment
    clarena train -m experiment=bc_update_fmnist cl_algorithm.lambda_c=0,0.5,1   # a sweep
    clarena train resume=outputs/default/2026-01-01_12-00-00   # continue an interrupted run

Options (everything else goes to Hydra: `--cfg job`, `--info`, `hydra/launcher=...`):

- `-m`, `--multirun`: sweep over comma-separated values.
- `-cd DIR`, `--config-dir DIR`: add a folder of your own configs to the search path (repeatable).
- `--verbose`: print the full traceback of a failure (it is always in the run's `train.log`).
- `--trust-config`: with `resume=`, rebuild components that are not on the run folder's
  allow-list (your own classes); without it a run folder can only name clarena's components.

Before anything runs, the overrides are composed and checked (`clarena.run.config`); a bad
key, option, type or scenario stops with one line and exit code 2, and no folder is created. Each
run gets a fresh folder (`output_dir`, or `hydra.run.dir`, which names the same folder); an
existing folder is never written into, except by `resume=`, which continues an unfinished run in
place with its saved config, and except a folder whose run was killed before it wrote its config
(that run never started, so starting it again reuses the folder). The run holds an exclusive lock
on its folder (`clarena.run_folder.folder`). Ctrl-C or SIGTERM stops a run with one line saying
where it stopped and the `resume=` command that continues it (exit codes 130 and 143).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException

from clarena.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_RUN_FAILED,
    ClarenaError,
    ConfigError,
    one_line,
)

log = logging.getLogger("clarena.commands.train")

PROG = "clarena train"
VERBOSE_ENV = "CLARENA_VERBOSE"
"""Set by `--verbose` (so that the jobs of a parallel sweep see it too)."""

_HYDRA_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--info"}
_HYDRA_FLAGS = {"--resolve", "--run", "-r", "--shell-completion", "-sc", "--hydra-help"}
_REFUSED_FLAGS = {
    "--experimental-rerun": "it unpickles the file it is given, which can run any code; "
    "re-run a job from its folder with clarena train resume=<run dir> instead",
}
_RUN_DIR_KEYS = ("output_dir", "hydra.run.dir")
"""Overrides naming the run folder (`hydra.run.dir` defaults to `output_dir`)."""


class RunFailed(CompactHydraException):
    """Raised from inside a Hydra job so that Hydra prints only its one-line message."""


class RunInterrupted(BaseException):
    """Ctrl-C (SIGINT) or SIGTERM arrived while a run was going on."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class _Current:
    """The run of this process (for the message of an interrupted run)."""

    run_dir: Path | None = None
    progress: Any = None


_current = _Current()


def _raise_interrupted(signum: int, frame: object) -> None:
    raise RunInterrupted(signum)


def _install_signal_handlers() -> dict[int, Any]:
    """Make SIGINT and SIGTERM raise `RunInterrupted`; return the handlers they replace."""
    return {signum: signal.signal(signum, _raise_interrupted) for signum in _SIGNALS}


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupted_message(exc: RunInterrupted) -> tuple[str, int]:
    """The one line printed for an interrupted run, and its exit code (128 + signal)."""
    code = 128 + exc.signum
    run_dir, progress = _current.run_dir, _current.progress
    if run_dir is None or not (run_dir / "config.yaml").is_file():
        return f"{PROG}: interrupted ({exc}) before the run started; nothing to resume", code
    where = ""
    if progress is not None and progress.task:
        where = f" at task {progress.task}/{progress.num_tasks}, step {progress.step}"
    return (
        f"{PROG}: interrupted ({exc}){where}; continue it with: {PROG} resume={run_dir}",
        code,
    )


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("~+")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _first_of_sweeps(overrides: list[str]) -> list[str]:
    """The overrides of the first job of a sweep (for checking before the sweep starts)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:  # OverrideParseException and friends
        first = str(exc).splitlines()[0]
        raise ConfigError(f"cannot parse the overrides ({first}): write them as key=value") from exc
    out = []
    for override, text in zip(parsed, overrides):
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            out.append(f"{override.get_key_element()}={first}")
        else:
            out.append(text)
    return out


def _fresh_output_dir(resolved: str, explicit: bool) -> Path:
    """The run folder: `resolved` if it is new or empty; else refuse (explicit) or add a suffix.

    A folder whose run was killed before it wrote `config.yaml` counts as empty: it is reused.
    """
    from clarena.run_folder.folder import never_started
    from clarena.run_folder.layout import check_not_inside_another_run

    path = Path(resolved).expanduser().absolute()
    check_not_inside_another_run(path)

    def taken(p: Path) -> bool:
        return p.exists() and (not p.is_dir() or (any(p.iterdir()) and not never_started(p)))

    if not taken(path):
        return path
    if explicit:
        raise ConfigError(_taken_message(path))
    n = 2
    while taken(path.with_name(f"{path.name}_{n}")):
        n += 1
    return path.with_name(f"{path.name}_{n}")


def _taken_message(path: Path) -> str:
    """Why the folder `output_dir` names cannot take a new run, and what to do instead."""
    from clarena.run_folder.folder import CONFIG_FILE, LOCK_FILE, lock_holder

    if not path.is_dir():
        return f"output_dir {str(path)!r} is a file, not a folder; choose a new folder"
    holder = lock_holder(path) if (path / LOCK_FILE).is_file() else None
    if holder is not None:
        return (
            f"output_dir {str(path)!r} is in use by process {holder} (a clarena run); wait for "
            "it to end, or choose a new folder"
        )
    if (path / CONFIG_FILE).is_file():
        return (
            f"output_dir {str(path)!r} already holds a run; choose a new folder (a run is never "
            f"overwritten), or continue it if it was interrupted: {PROG} resume={path}"
        )
    return (
        f"output_dir {str(path)!r} already holds files that are not a clarena run; choose a new "
        "folder"
    )


def prepare(overrides: list[str], multirun: bool) -> tuple[list[str], Any]:
    """Compose and check the config; return the overrides to launch with (fresh `output_dir`)
    and the composed config (with Hydra's node; of the first job of a sweep), `output_dir` and
    Hydra's record of the overrides set to the ones returned.

    Raises:
        ConfigError: One line naming the cause and the fix.
    """
    from omegaconf import open_dict, read_write

    from clarena.run.config import compose_config, validate_config

    named = [o for o in overrides if _key(o) in _RUN_DIR_KEYS]
    if not multirun and any(_key(o) == "hydra.run.dir" for o in named):
        # one folder, whichever key names it: hydra.run.dir=X is output_dir=X
        overrides = [o for o in overrides if _key(o) not in _RUN_DIR_KEYS]
        overrides.append("output_dir=" + named[-1].split("=", 1)[1])
    single = _first_of_sweeps(overrides) if multirun else overrides
    cfg = compose_config(single, return_hydra_config=True)
    validate_config(cfg)
    output_dir = _fresh_output_dir(str(cfg.output_dir), explicit=bool(named))
    kept = [o for o in overrides if _key(o) != "output_dir"]
    launch = [*kept, f"output_dir={_quote(str(output_dir))}"]
    with read_write(cfg), open_dict(cfg):
        cfg.output_dir = str(output_dir)  # what composing with the `output_dir` override gives
        cfg.hydra.overrides.task = launch
    return launch, cfg


def _task_function(cfg) -> None:
    """The Hydra job: one run in Hydra's output folder; failures become one line."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    from clarena.run.config import validate_config
    from clarena.run.ddp import slurm_rank

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir).absolute()
    with open_dict(cfg):
        cfg.output_dir = str(run_dir)
    try:
        try:
            spec = validate_config(cfg, build=False)  # once per process: cached after pre-flight
        except ConfigError as exc:
            raise RunFailed(f"{PROG}: error: {exc}") from None
        if slurm_rank(spec.settings) > 0:  # SLURM started this rank: rank zero owns the folder
            from clarena.run.task_loop import run_experiment

            run_experiment(spec, worker=True)
            return
        if (run_dir / "config.yaml").exists():
            raise RunFailed(
                f"{PROG}: error: {run_dir} already holds a run; choose a new folder, or continue "
                f"it with {PROG} resume={run_dir}"
            )
        execute(cfg, run_dir, resume=False)
    except RunFailed as exc:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise  # Hydra names the failed job, runs the others, then exits with 1
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_RUN_FAILED) from None


def execute(cfg, run_dir: Path, resume: bool) -> None:
    """Run `cfg` in `run_dir`, print the summary; raise `RunFailed` with one line on failure.

    The run holds the lock of `run_dir` until it ends.
    """
    from clarena.core.files import remove_stale_temporaries
    from clarena.run.task_loop import Progress
    from clarena.run_folder.folder import lock_run_folder, unlock_run_folder

    try:
        lock_run_folder(run_dir)
    except ConfigError as exc:
        raise RunFailed(f"{PROG}: error: {exc}") from None
    _current.run_dir, _current.progress = run_dir, Progress()
    print(f"{PROG}: {'continuing' if resume else 'run folder'} {run_dir}", file=sys.stderr)
    try:
        from clarena.reports.summary import print_summary
        from clarena.run.config import validate_config
        from clarena.run.task_loop import run_experiment

        for stale in remove_stale_temporaries(run_dir):
            log.info("removed %s, left by an interrupted write", stale)
        spec = validate_config(cfg, build=False)  # again: each job of a sweep has its values
        results = run_experiment(spec, resume=resume, progress=_current.progress)
        print_summary(results, run_dir)
    except (KeyboardInterrupt, RunFailed, RunInterrupted):
        raise
    except ConfigError as exc:
        log.debug("the run was refused", exc_info=True)
        raise RunFailed(f"{PROG}: error: {exc}") from None
    except Exception as exc:
        log.debug("the run failed", exc_info=True)
        if _verbose():
            traceback.print_exc()
        raise RunFailed(
            f"{PROG}: error: {one_line(exc)} [traceback in {run_dir / 'train.log'}]"
        ) from None
    finally:
        unlock_run_folder(run_dir)


def _run_composed(cfg: Any) -> int:
    """Run one job on the config `prepare` composed, as Hydra's `run` would (the job's folder,
    `.hydra/` records, logging, callbacks) without composing it a second time; return the exit
    code."""
    from hydra._internal.callbacks import Callbacks  # what Hydra's own `run` calls
    from hydra.core.utils import run_job
    from hydra.types import HydraContext, RunMode
    from omegaconf import open_dict, read_write

    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.RUN
    callbacks = Callbacks(cfg)
    callbacks.on_run_start(config=cfg, config_name="train")
    context = HydraContext(config_loader=None, callbacks=callbacks)  # type: ignore[arg-type]
    try:
        ret = run_job(
            task_function=_task_function,
            config=cfg,
            job_dir_key="hydra.run.dir",
            job_subdir_key=None,
            hydra_context=context,
        )
        callbacks.on_run_end(config=cfg, config_name="train", job_return=ret)
        _ = ret.return_value  # raises the job's exception, as Hydra's run does
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else EXIT_RUN_FAILED
    except Exception as exc:  # outside the run itself (which reports its own failures)
        if _verbose():
            traceback.print_exc()
        _error(one_line(exc))
        return EXIT_RUN_FAILED
    return 0


def _launch(hydra_args: list[str]) -> int:
    """Run the Hydra application with `hydra_args`; return its exit code."""
    import hydra

    app = hydra.main(version_base="1.3", config_path="pkg://clarena.configs", config_name="train")(
        _task_function
    )
    saved = sys.argv
    # argv[0] stays the real script: Lightning's DDP launcher starts the other ranks with it
    sys.argv = [saved[0], *hydra_args]
    try:
        app()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else EXIT_RUN_FAILED
    finally:
        sys.argv = saved
    return 0


def _rerun_command(run_dir: Path) -> str:
    """The command that started the run in `run_dir` (from Hydra's record of its overrides)."""
    import yaml

    try:
        overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return f"{PROG} <your overrides> output_dir={run_dir}"
    if not isinstance(overrides, list):
        return f"{PROG} <your overrides> output_dir={run_dir}"
    return " ".join([PROG, *(str(o) for o in overrides)])


def _console_logging(run_dir: Path) -> logging.Handler:
    """INFO and up to the console, everything to `run_dir/train.log`; return the file handler."""
    from clarena.run_folder.logfile import RunLogHandler

    handler = RunLogHandler(str(run_dir / "train.log"))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = logging.getLogger()
    for existing in root.handlers:
        if type(existing) is logging.StreamHandler:
            existing.setLevel(logging.INFO)  # a failure's traceback goes to the file only
    root.addHandler(handler)
    logging.getLogger("clarena").setLevel(logging.DEBUG)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def resume_run(run_dir_arg: str, trust: bool = False) -> int:
    """`clarena train resume=<run dir>`: continue an interrupted run with its saved config."""
    from clarena.run.saved_config import load_run_config
    from clarena.run_folder import checkpoint as ckpt
    from clarena.run_folder.folder import (
        CONFIG_FILE,
        config_digest,
        lock_run_folder,
        never_started,
    )

    run_dir = Path(run_dir_arg).expanduser().absolute()
    if not (run_dir / CONFIG_FILE).is_file():
        if never_started(run_dir):
            _error(
                f"the run in {run_dir} was stopped before it started (no {CONFIG_FILE} yet), so "
                f"there is nothing to resume; start it again: {_rerun_command(run_dir)}"
            )
        else:
            _error(
                f"resume={run_dir_arg}: no {CONFIG_FILE} there, so it is not a clarena run "
                "folder; pass the folder of the interrupted run (the one holding config.yaml "
                "and checkpoints/)"
            )
        return EXIT_BAD_INPUT
    try:
        lock_run_folder(run_dir)
        cfg = load_run_config(run_dir, trust=trust)
        done = ckpt.check_task_checkpoints(run_dir, config_digest(run_dir))
        if done:
            state = ckpt.load_task_checkpoint(ckpt.task_checkpoint_path(run_dir, done[-1]))
            if done[-1] >= int(state["num_tasks"]):
                print(f"{PROG}: {run_dir} already finished all {done[-1]} tasks; nothing to resume")
                return 0
    except ClarenaError as exc:  # ConfigError, CheckpointError
        _error(str(exc))
        return EXIT_BAD_INPUT
    handler = _console_logging(run_dir)
    try:
        execute(cfg, run_dir, resume=True)
    except RunFailed as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_RUN_FAILED
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    return 0


def _usage() -> str:
    return (__doc__ or "").split("\n\n", 1)[1].split("Before anything runs")[0].rstrip()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `clarena train`; returns the exit code."""
    from clarena.core.lazy import collector_paused

    args = list(sys.argv[1:] if argv is None else argv)
    previous = _install_signal_handlers()
    try:
        with collector_paused():  # through the imports; each run collects (`run_experiment`)
            return _main(args)
    except RunInterrupted as exc:
        message, code = _interrupted_message(exc)
        print(message, file=sys.stderr)
        return code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _main(args: list[str]) -> int:
    trust = False
    hydra_flags: list[str] = []
    overrides: list[str] = []
    config_dirs: list[str] = []
    multirun = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in {"-h", "--help"}:
            print(f"usage: {PROG} [options] [key=value ...]\n\n{_usage()}")
            return 0
        if arg == "--verbose":
            os.environ[VERBOSE_ENV] = "1"
        elif arg == "--trust-config":
            trust = True
        elif arg.split("=", 1)[0] in _REFUSED_FLAGS:
            _error(f"{arg.split('=', 1)[0]} is not supported: {_REFUSED_FLAGS[arg.split('=')[0]]}")
            return EXIT_BAD_INPUT
        elif arg in {"-m", "--multirun"}:
            multirun = True
            hydra_flags.append("--multirun")
        elif arg in {"-cd", "--config-dir"} or re.match(r"--config-dir=", arg):
            if "=" in arg:
                config_dirs.append(arg.split("=", 1)[1])
            elif i + 1 < len(args):
                config_dirs.append(args[i + 1])
                i += 1
            else:
                _error(f"{arg} needs a folder: {arg} my_configs")
                return EXIT_BAD_INPUT
        elif arg in _HYDRA_FLAGS_WITH_VALUE and i + 1 < len(args):
            hydra_flags += [arg, args[i + 1]]
            i += 1
        elif arg in _HYDRA_FLAGS or arg.startswith("--cfg=") or arg.startswith("--info"):
            hydra_flags.append(arg)
        elif arg.startswith("-"):
            _error(f"unknown option {arg!r}; see `{PROG} --help`")
            return EXIT_BAD_INPUT
        else:
            overrides.append(arg)
        i += 1
    for d in config_dirs:
        if not Path(d).expanduser().is_dir():
            _error(f"--config-dir {d!r} is not a folder: create it (clarena init {d}) or fix it")
            return EXIT_BAD_INPUT
    from clarena.run.config import searchpath_override

    if config_dirs and any(_key(o) == "hydra.searchpath" for o in overrides):
        _error("use either --config-dir or hydra.searchpath=[...], not both")
        return EXIT_BAD_INPUT
    overrides = searchpath_override(config_dirs) + overrides
    resume = [o for o in overrides if _key(o) == "resume" and not o.endswith("=null")]
    if resume:
        others = [o for o in overrides if _key(o) not in {"resume", "hydra.searchpath"}]
        if others or multirun:
            _error(
                "resume= continues a run with its saved config and takes no other overrides; "
                f"drop {' '.join(others) or '-m'}"
            )
            return EXIT_BAD_INPUT
        return resume_run(resume[-1].split("=", 1)[1].strip("'\""), trust=trust)
    if trust:
        _error("--trust-config only applies to resume=<run dir> (a new run reads your configs)")
        return EXIT_BAD_INPUT
    inspect_only = any(f.startswith(("--cfg", "-c", "--info", "--hydra-help")) for f in hydra_flags)
    run_dir = None
    composed = None
    if not inspect_only:
        try:
            overrides, composed = prepare(overrides, multirun)
            if not multirun:  # lock before Hydra writes into the folder
                from clarena.run_folder.folder import lock_run_folder

                run_dir = Path(overrides[-1].split("=", 1)[1].strip("'"))
                lock_run_folder(run_dir)
        except ConfigError as exc:
            _error(str(exc))
            return EXIT_BAD_INPUT
    try:
        if composed is not None and not multirun and not hydra_flags:
            return _run_composed(composed)  # one run: the config is composed once
        return _launch([*hydra_flags, *overrides])
    finally:
        if run_dir is not None:
            from clarena.run_folder.folder import unlock_run_folder

            unlock_run_folder(run_dir)
