"""`clarena eval RUN_DIR [-o OUT]`: re-evaluate the saved models of a run on its test tasks.

For every task checkpoint `checkpoints/after_task_<t>.pt` of the run, the model saved after task
$t$ is rebuilt from the run's `config.yaml` and tested on tasks $1..t$; the accuracy matrix, the
metrics and the plots are written into a fresh folder (`RUN_DIR/eval`, or `eval_2`, ... if that
exists, or `-o OUT`), and compared with the results saved by training. Nothing else of the run is
rewritten: its results, checkpoints and config stay as they are.

The output is the summary only: Lightning's banners and the libraries' deprecation warnings are
hidden (`clarena.commands.quiet`); `--verbose` shows them, and the traceback of a failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from clarena.core.errors import EXIT_BAD_INPUT, EXIT_RUN_FAILED, one_line

PROG = "clarena eval"


def _fresh(path: Path) -> Path:
    if not path.exists():
        return path
    n = 2
    while path.with_name(f"{path.name}_{n}").exists():
        n += 1
    return path.with_name(f"{path.name}_{n}")


def evaluate_run(run_dir: Path, output: Path, trust: bool = False) -> tuple[object, float | None]:
    """Re-test the saved models of `run_dir`, write the results into `output`.

    The run's `config.yaml` is read as data (`clarena.run.saved_config.load_run_config`):
    components outside the allow-list are refused unless `trust` is set.

    Returns:
        The new `CLResults`, and the largest absolute difference from the run's saved accuracy
        matrix (`None` when the run has no saved results to compare with).
    """
    from clarena.core.lazy import collector_paused

    with collector_paused():  # the heavy imports (torch, Lightning): it says why
        from clarena.metrics import CLResults
        from clarena.run.callbacks import RecordPredictions
        from clarena.run.components import build_components
        from clarena.run.loop import Loop
        from clarena.run.saved_config import load_run_config
        from clarena.run.spec import RunSpec
        from clarena.run.task_loop import one_process_fabric
        from clarena.run_folder import checkpoint as ckpt

    spec = RunSpec.of(load_run_config(run_dir, trust=trust), run_dir)
    tasks = ckpt.finished_tasks(run_dir)
    if not tasks:
        raise FileNotFoundError(
            f"{run_dir} has no task checkpoint (checkpoints/after_task_<t>.pt) yet: finish or "
            f"resume the run first (clarena train resume={run_dir})"
        )
    components = build_components(spec)
    fabric, settings = one_process_fabric(spec)  # one process, also for a run trained with DDP
    results = CLResults(spec.scenario)
    saved = CLResults(spec.scenario)
    for task_id in tasks:
        state = ckpt.load_task_checkpoint(ckpt.task_checkpoint_path(run_dir, task_id))
        components.algorithm.load_cl_state_dict(state["cl_state"])
        components.datamodule.setup_task(task_id)
        Loop(fabric, task_id, settings).test(
            components.algorithm,
            datamodule=components.datamodule,
            recorders=[RecordPredictions(results, task_id)],
        )
        saved.load_state_dict(state["results"])
    from clarena.reports.writers import write_results  # lazily: matplotlib

    write_results(results.record(spec.plain_config()), output)
    new, old = results.accuracy_matrix(), saved.accuracy_matrix()
    diff = None
    if old.shape == new.shape:
        both = np.isfinite(old) & np.isfinite(new)
        diff = float(np.max(np.abs(old[both] - new[both]), initial=0.0))
    return results, diff


def main(argv: list[str] | None = None) -> int:
    """Entry point of `clarena eval`; returns the exit code."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the folder of a run (holding config.yaml)")
    parser.add_argument("-o", "--output", type=Path, help="where to write (default RUN_DIR/eval)")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Lightning's messages and warnings, and the traceback of a failure",
    )
    parser.add_argument(
        "--trust-config",
        action="store_true",
        help="rebuild components outside clarena's allow-list (only for configs you wrote)",
    )
    args = parser.parse_args(argv)
    run_dir = args.run_dir.expanduser().absolute()
    if not (run_dir / "config.yaml").is_file():
        print(
            f"{PROG}: error: {run_dir} holds no config.yaml, so it is not a clarena run folder; "
            "pass the folder of a run (outputs/<experiment>/<date>_<time>)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    output = (args.output or _fresh(run_dir / "eval")).expanduser().absolute()
    if output.exists() and not output.is_dir():
        print(
            f"{PROG}: error: --output {output} is a file; pass a folder to write the results "
            "into (a new or empty one)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if output.exists() and any(output.iterdir()):
        print(f"{PROG}: error: {output} is not empty; choose a new --output", file=sys.stderr)
        return EXIT_BAD_INPUT
    from clarena.core.errors import ClarenaError
    from clarena.run.saved_config import load_run_config
    from clarena.run_folder.folder import config_digest, lock_run_folder, writable_parent

    try:
        if not writable_parent(output):
            raise ClarenaError(
                f"cannot write the results into {output}: the disk or folder is read-only; "
                "pass -o <a folder you can write to>"
            )
        lock_run_folder(run_dir, read_only_ok=True)
        load_run_config(run_dir, trust=args.trust_config)  # refuse before anything is built
        from clarena.run_folder.checkpoint import check_task_checkpoints

        check_task_checkpoints(run_dir, config_digest(run_dir))
    except ClarenaError as exc:  # ConfigError, CheckpointError
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from clarena.commands.quiet import quiet_output

    try:
        with quiet_output(args.verbose):
            results, diff = evaluate_run(run_dir, output, trust=args.trust_config)
    except Exception as exc:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_RUN_FAILED
    from clarena.reports.summary import print_summary

    print_summary(results, output, heading="re-evaluated accuracy (%)")  # type: ignore[arg-type]
    if diff is None:
        print("no saved results of the same shape to compare with")
    elif diff == 0.0:
        print("identical to the accuracy matrix saved by training")
    else:
        print(f"differs from the accuracy matrix saved by training by up to {diff:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
