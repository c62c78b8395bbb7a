"""Every shipped `cl_dataset` config composes with the top-level keys and instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
from cl_dataset_helpers import write_own_source
from hydra.utils import instantiate
from omegaconf import OmegaConf

import clarena
from clarena.cl_datasets import CLDataset

CONFIG_DIR = Path(clarena.__file__).parent / "configs" / "cl_dataset"
CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def compose(name: str, scenario: str, data_root: str | None, seed: int = 0) -> CLDataset:
    top = OmegaConf.create({"scenario": scenario, "data_root": data_root, "seed": seed})
    cfg = OmegaConf.merge(top, {"cl_dataset": OmegaConf.load(CONFIG_DIR / f"{name}.yaml")})
    return instantiate(cfg.cl_dataset)


def test_the_configs_the_issue_names_are_shipped():
    named = {
        "split_digits", "split_mnist", "split_fmnist", "permuted_mnist", "permuted_fmnist",
        "rotated_mnist", "split_cifar10", "split_cifar100", "update_fmnist", "update_digits",
    }  # fmt: skip
    assert named <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_instantiates_without_reading_files(name, tmp_path):
    raw = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / f"{name}.yaml"), resolve=False)
    assert raw["scenario"] == "${scenario}" and raw["data_root"] == "${data_root}"
    assert raw["seed"] == "${seed}" and "_target_" in raw
    scenario = "DataIL" if name.startswith("update_") else "TIL"
    if raw["source"] in ("folder", "npz", "hf"):  # a source of the user's: a small one
        if raw["source"] == "hf":
            pytest.importorskip("datasets")
        raw_cfg = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
        raw_cfg.root = str(write_own_source(raw["source"], tmp_path / "own"))
        top = OmegaConf.create({"scenario": scenario, "data_root": str(tmp_path), "seed": 3})
        data = instantiate(OmegaConf.merge(top, {"cl_dataset": raw_cfg}).cl_dataset)
    else:
        data = compose(name, scenario, str(tmp_path), seed=3)
    assert isinstance(data, CLDataset)
    assert data.scenario == scenario and data.seed == 3 and data.num_tasks >= 2
    assert data.batch_size >= 1 and data.eval_batch_size >= 1
    assert len(data.input_shape) == 3 and data.output_dim(1) >= 2


def test_split_digits_default_runs_offline():
    data = compose("split_digits", "CIL", None)
    assert (data.num_tasks, data.input_shape) == (5, (1, 8, 8))
    assert [data.output_dim(t) for t in range(1, 6)] == [2, 4, 6, 8, 10]
    data.setup_task(5)
    # Digits per class: 178 182 177 183 181 182 181 179 174 180; a quarter (rounded down) of each
    # is test data: 44 45 44 45 45 45 45 44 43 45, so the tasks hold 89, 89, 90, 89, 88.
    assert [loader.num_samples for loader in data.test_dataloader()] == [89, 89, 90, 89, 88]


def test_package_docstring_example_runs():
    import doctest

    import clarena.cl_datasets

    result = doctest.testmod(clarena.cl_datasets)
    assert result.attempted == 6 and result.failed == 0
