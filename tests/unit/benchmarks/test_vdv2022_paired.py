"""The paired table of `benchmarks/vdv2022_paired.py`: seeds both sides finished, paired
differences, mean ± standard error, and the goal (within 1 point or two standard errors)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).parents[3] / "benchmarks" / "vdv2022_paired.py"


def _module():
    spec = importlib.util.spec_from_file_location("vdv2022_paired", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_pairs_seeds_and_reports_the_mean_difference(tmp_path: Path) -> None:
    paired = _module()
    results = tmp_path / "runs.csv"
    rows = [  # SI Domain-IL: seeds 2-4 on both sides, seed 5 on the reference's only
        ("reference", "si", "domain", 2, "70.00"),
        ("clarena", "si", "domain", 2, "72.00"),
        ("reference", "si", "domain", 3, "60.00"),
        ("clarena", "si", "domain", 3, "61.00"),
        ("reference", "si", "domain", 4, "80.00"),
        ("clarena", "si", "domain", 4, "83.00"),
        ("reference", "si", "domain", 5, "10.00"),
        ("reference", "agem", "class", 2, "70.00"),  # no clarena side: no row
        ("reference", "ewc", "domain", 2, "60.00"),
        ("clarena", "ewc", "domain", 2, "59.50"),  # one seed: no standard error
    ]
    for side, method, scenario, seed, average in rows:
        row = {"side": side, "method": method, "scenario": scenario, "seed": seed}
        row |= {"average": average, "per_context": "", "seconds": "1"}
        paired.append(row, results)
    table = paired.summary(results).splitlines()
    assert len(table) == 4
    assert table[2] == "| EWC Domain-IL | 2 (1) | 60.00 | 59.50 | -0.50 | – (one seed) |"
    # differences 2, 1, 3: mean 2, sd 1, sem 1/sqrt(3) = 0.58: over 1 point and over 2 sem
    assert table[3] == (
        "| SI Domain-IL | 2, 3, 4 (3) | 70.00 ± 5.77 | 72.00 ± 6.35 | 2.00 ± 0.58 | no |"
    )


def test_a_kept_run_folder_that_finished_is_read_again_not_retrained(tmp_path, monkeypatch) -> None:
    paired = _module()
    run = tmp_path / "vdv2022_si_dil_seed2"
    (run / "results").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 2\n")
    header = "after_training_task,average_accuracy," + ",".join(
        f"test_on_task_{k}" for k in range(1, 6)
    )
    rows = [
        f"{t},0.5," + ",".join("0.5" if k <= t else "" for k in range(1, 6)) for t in range(1, 5)
    ]
    rows.append("5,0.525,0.25,0.5,0.75,1.0,0.125")
    (run / "results" / "accuracy_matrix.csv").write_text("\n".join([header, *rows]) + "\n")

    def no_training(*args, **kwargs):
        raise AssertionError(f"trained again: {args}")

    monkeypatch.setattr(paired.subprocess, "run", no_training)
    assert paired.run_clarena("si", "domain", 2, tmp_path) == [0.25, 0.5, 0.75, 1.0, 0.125]
    # an interrupted folder (four rows) is resumed from its folder, not started afresh
    (run / "results" / "accuracy_matrix.csv").write_text("\n".join([header, *rows[:4]]) + "\n")
    commands = []

    def record(command, **kwargs):
        commands.append(command)
        raise SystemExit("stop here")

    monkeypatch.setattr(paired.subprocess, "run", record)
    try:
        paired.run_clarena("si", "domain", 2, tmp_path)
    except SystemExit:
        pass
    assert commands[0][-2:] == ["train", f"resume={run}"]


def test_the_reference_runs_each_method_as_its_compare_script_does() -> None:
    paired = _module()
    data = Path("/data")
    icarl = paired.reference_command(data, "icarl", "class", 3)
    assert icarl[1:] == [
        "main.py",
        "--experiment=splitMNIST",
        "--scenario=class",
        "--icarl",
        "--active-classes=all-so-far",  # compare.py's setting; main.py's default is `all`
        "--seed=3",
        "--no-gpus",
        "--data-dir=/data",
        "--no-save",
    ]
    joint = paired.reference_command(data, "joint", "domain", 2)
    assert joint[4:6] == ["--joint", "--iters=10000"]  # 5 contexts x 2000 in one go
    agem = paired.reference_command(data, "agem", "class", 2)
    assert agem[4] == "--agem" and not any(a.startswith("--active-classes") for a in agem)
