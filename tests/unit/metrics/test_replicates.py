"""Replicates are runs whose resolved configs are equal except for the seed and paths."""

from __future__ import annotations

from clarena.metrics.replicates import (
    differing_keys,
    setting_labels,
    setting_of,
    short_names,
)


def _config(seed: int, out: str, **algorithm: object) -> dict[str, object]:
    return {
        "experiment_name": f"exp_{seed}",
        "scenario": "TIL",
        "seed": seed,
        "output_dir": out,
        "data_root": None,
        "cl_dataset": {"source": "digits", "seed": seed, "scenario": "TIL"},
        "cl_algorithm": {"_target_": "clarena.cl_algorithms.LwF", **algorithm},
        "trainer": {"max_epochs": 1, "default_root_dir": out},
        "logger": {
            "mlflow": {"tracking_uri": f"file:{out}/mlruns", "run_name": f"exp_{seed}"},
            "csv": {"save_dir": out, "name": "lightning_logs"},
        },
        "paths": {"output_root": "outputs"},
    }


def test_seeds_paths_names_and_scenario_are_not_part_of_a_setting() -> None:
    one = setting_of(_config(1, "/runs/a", distillation_factor=1.0))
    assert one == setting_of(_config(2, "/elsewhere/b", distillation_factor=1.0))
    assert dict(one) == {
        "cl_algorithm._target_": '"clarena.cl_algorithms.LwF"',
        "cl_algorithm.distillation_factor": "1.0",
        "cl_dataset.source": '"digits"',
        "logger.csv.name": '"lightning_logs"',
        "trainer.max_epochs": "1",
    }
    assert one != setting_of(_config(1, "/runs/a", distillation_factor=0.5))
    assert setting_of(None) == () and setting_of({"cl_algorithm": {}}) == (("cl_algorithm", "{}"),)


def test_differing_keys_compare_within_a_scenario_only() -> None:
    a = setting_of(_config(1, "/a", distillation_factor=1.0))
    b = setting_of(_config(1, "/b", distillation_factor=0.5))
    c = setting_of(_config(1, "/c", distillation_factor=1.0, distill_new_classes=True))
    # a and b share the TIL column: the factor tells them apart; c is alone in CIL
    assert differing_keys([[a, b], [c]]) == ["cl_algorithm.distillation_factor"]
    keys = differing_keys([[a, b, c]])
    assert keys == ["cl_algorithm.distill_new_classes", "cl_algorithm.distillation_factor"]
    assert setting_labels([a, c], keys, [{"x"}, {"y"}]) == [
        "distill_new_classes=unset, distillation_factor=1.0",
        "distill_new_classes=true, distillation_factor=1.0",
    ]


def test_short_names_are_unique_tails() -> None:
    keys = ["terms.ewc.regularizer.factor", "terms.distillation.regularizer.factor", "optimizer.lr"]
    assert short_names(keys) == {
        "terms.ewc.regularizer.factor": "ewc.regularizer.factor",
        "terms.distillation.regularizer.factor": "distillation.regularizer.factor",
        "optimizer.lr": "lr",
    }


def test_many_differences_are_named_by_the_experiment() -> None:
    settings = [(("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")), (("a", "2"), ("b", "2"))]
    keys = ["a", "b", "c", "d"]
    assert setting_labels(settings, keys, [{"big"}, {"small"}]) == ["big", "small"]
    # names that do not tell the settings apart: the keys, however many
    assert setting_labels(settings, keys, [{"same"}, {"same"}])[1] == "a=2, b=2, c=unset, d=unset"
