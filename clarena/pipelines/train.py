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

Before anything runs, the overrides are composed and checked (`clarena.pipelines.config`); a bad
key, option, type or scenario stops with one line and exit code 2, and no folder is created. Each
run gets a fresh folder (`output_dir`); an existing folder is never written into, except by
`resume=`, which continues an unfinished run in place with its saved config.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from pathlib import Path

from clarena.pipelines.errors import (
    EXIT_BAD_INPUT,
    EXIT_RUN_FAILED,
    ConfigError,
    RunFailed,
    one_line,
)

log = logging.getLogger("clarena.pipelines.train")

PROG = "clarena train"
VERBOSE_ENV = "CLARENA_VERBOSE"
"""Set by `--verbose` (so that the jobs of a parallel sweep see it too)."""

_HYDRA_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--info", "--experimental-rerun"}
_HYDRA_FLAGS = {"--resolve", "--run", "-r", "--shell-completion", "-sc", "--hydra-help"}


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
    """The run folder: `resolved` if it is new or empty; else refuse (explicit) or add a suffix."""
    path = Path(resolved).expanduser().absolute()

    def taken(p: Path) -> bool:
        return p.exists() and (not p.is_dir() or any(p.iterdir()))

    if not taken(path):
        return path
    if explicit:
        raise ConfigError(
            f"output_dir {str(path)!r} already holds files; choose a new folder "
            f"(a finished run is never overwritten), or continue an interrupted run with "
            f"resume={path}"
        )
    n = 2
    while taken(path.with_name(f"{path.name}_{n}")):
        n += 1
    return path.with_name(f"{path.name}_{n}")


def prepare(overrides: list[str], multirun: bool) -> list[str]:
    """Compose and check the config; return the overrides to launch with (fresh `output_dir`).

    Raises:
        ConfigError: One line naming the cause and the fix.
    """
    from clarena.pipelines.config import compose_config, validate_config

    single = _first_of_sweeps(overrides) if multirun else overrides
    cfg = compose_config(single)
    validate_config(cfg)
    explicit = any(_key(o) == "output_dir" for o in overrides)
    output_dir = _fresh_output_dir(str(cfg.output_dir), explicit)
    kept = [o for o in overrides if _key(o) != "output_dir"]
    return [*kept, f"output_dir={_quote(str(output_dir))}"]


def _task_function(cfg) -> None:
    """The Hydra job: one run in Hydra's output folder; failures become one line."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir).absolute()
    with open_dict(cfg):
        cfg.output_dir = str(run_dir)
    try:
        execute(cfg, run_dir, resume=False)
    except RunFailed as exc:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise  # Hydra names the failed job, runs the others, then exits with 1
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_RUN_FAILED) from None


def execute(cfg, run_dir: Path, resume: bool) -> None:
    """Run `cfg` in `run_dir`, print the summary; raise `RunFailed` with one line on failure."""
    try:
        from clarena.pipelines.config import validate_config
        from clarena.pipelines.summary import print_summary
        from clarena.pipelines.task_loop import run_experiment

        validate_config(cfg, build=False)  # again: every job of a sweep has its own values
        results = run_experiment(cfg, run_dir, resume=resume)
        print_summary(results, run_dir)
    except (KeyboardInterrupt, RunFailed):
        raise
    except Exception as exc:
        log.debug("the run failed", exc_info=True)
        if _verbose():
            traceback.print_exc()
        raise RunFailed(
            f"{PROG}: error: {one_line(exc)} [traceback in {run_dir / 'train.log'}]"
        ) from None


def _launch(hydra_args: list[str]) -> int:
    """Run the Hydra application with `hydra_args`; return its exit code."""
    import hydra

    app = hydra.main(version_base="1.3", config_path="pkg://clarena.configs", config_name="train")(
        _task_function
    )
    saved = sys.argv
    sys.argv = [PROG, *hydra_args]
    try:
        app()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else EXIT_RUN_FAILED
    finally:
        sys.argv = saved
    return 0


def resume_run(run_dir_arg: str) -> int:
    """`clarena train resume=<run dir>`: continue an interrupted run with its saved config."""
    from omegaconf import OmegaConf

    from clarena.pipelines import checkpoint as ckpt
    from clarena.pipelines.task_loop import CONFIG_FILE

    run_dir = Path(run_dir_arg).expanduser().absolute()
    config_file = run_dir / CONFIG_FILE
    if not config_file.is_file():
        _error(
            f"resume={run_dir_arg}: no {CONFIG_FILE} there, so it is not a clarena run folder; "
            "pass the folder of the interrupted run (the one holding config.yaml and checkpoints/)"
        )
        return EXIT_BAD_INPUT
    cfg = OmegaConf.load(config_file)
    done = ckpt.saved_tasks(run_dir)
    if done:
        state = ckpt.load_task_checkpoint(ckpt.task_checkpoint_path(run_dir, done[-1]))
        if done[-1] >= int(state["num_tasks"]):
            print(f"{PROG}: {run_dir} already finished all {done[-1]} tasks; nothing to resume")
            return 0
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s"))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger().addHandler(handler)
    logging.getLogger("clarena").setLevel(logging.DEBUG)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
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
    args = list(sys.argv[1:] if argv is None else argv)
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
    from clarena.pipelines.config import searchpath_override

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
        return resume_run(resume[-1].split("=", 1)[1].strip("'\""))
    inspect_only = any(f.startswith(("--cfg", "-c", "--info", "--hydra-help")) for f in hydra_flags)
    if not inspect_only:
        try:
            overrides = prepare(overrides, multirun)
        except ConfigError as exc:
            _error(str(exc))
            return EXIT_BAD_INPUT
    return _launch([*hydra_flags, *overrides])
