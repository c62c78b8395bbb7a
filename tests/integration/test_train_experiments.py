"""Every experiment config runs end to end, shrunk to a few batches per task (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clarena.cl_datasets.paths import default_data_root
from clarena.cl_datasets.sources import _IDX_FILES, DEBIAN_FASHION_MNIST
from clarena.run.config import compose_config, searchpath_override, validate_config
from clarena.run.spec import RunSpec
from clarena.run.task_loop import run_experiment

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CONFIGS, EXAMPLES = ROOT / "clarena" / "configs", ROOT / "example_configs"
HAVE_FMNIST = (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file()
HAVE_MNIST = all(
    any((default_data_root() / "MNIST" / "raw" / f"{stem}{ext}").is_file() for ext in ("", ".gz"))
    for stem in _IDX_FILES
)


def _experiments(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "experiment").glob("*.yaml"))


CASES = [(e, False) for e in _experiments(CONFIGS)] + [(e, True) for e in _experiments(EXAMPLES)]


@pytest.mark.parametrize(("experiment", "user"), CASES)
def test_experiment_runs_end_to_end_on_a_few_batches(
    experiment: str, user: bool, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    overrides = [
        *(searchpath_override([str(EXAMPLES)]) if user else []),
        f"experiment={experiment}",
        f"output_dir={run}",
        "trainer.max_epochs=-1",
        "trainer.max_steps=2",
        "++trainer.limit_test_batches=1",
        "trainer.enable_progress_bar=false",
        "logger=none",
    ]
    cfg = compose_config(overrides)
    if cfg.cl_dataset.source == "fashion_mnist" and not HAVE_FMNIST:
        pytest.skip("needs Debian's dataset-fashion-mnist")
    if cfg.cl_dataset.source == "mnist" and not HAVE_MNIST and cfg.data_root is None:
        pytest.skip("needs MNIST's IDX files in the data root: bash .ci/fetch_mnist.sh <data_root>")
    if "fisher_num_samples" in cfg.cl_algorithm:
        cfg.cl_algorithm.fisher_num_samples = 64
    validate_config(cfg)
    run.mkdir()
    results = run_experiment(RunSpec.of(cfg, run))
    tasks = int(cfg.cl_dataset.num_tasks)
    assert results.num_tasks == tasks
    metrics = json.loads((run / "results" / "metrics.json").read_text())
    assert metrics["scenario"] == cfg.scenario and len(metrics["accuracy_matrix"]) == tasks
    assert (run / "checkpoints" / f"after_task_{tasks}.pt").is_file()
    if "bcwi" in experiment:  # the alpha chosen at each update is in the results
        record = metrics["algorithm"]["bcwi"]
        assert sorted(record) == [f"task_{t}" for t in range(2, tasks + 1)]
        assert all(r["alpha"] in r["alphas"] for r in record.values())
