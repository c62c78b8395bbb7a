"""Config composition and validation through Hydra's compose API (no training)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from clarena.core.errors import ConfigError
from clarena.run.config import compose_config, searchpath_override, validate_config
from clarena.run.spec import callback_nodes, logger_nodes

CONFIGS = Path(__file__).resolve().parents[3] / "clarena" / "configs"
EXAMPLES = Path(__file__).resolve().parents[3] / "example_configs"


def _experiments(root: Path) -> list[str]:
    folder = root / "experiment"
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))


SHIPPED = _experiments(CONFIGS)
USER = _experiments(EXAMPLES)


def test_default_config_is_split_digits_mlp_lwf_til() -> None:
    cfg = compose_config([])
    validate_config(cfg)
    assert cfg.scenario == "TIL"
    assert cfg.cl_dataset._target_ == "clarena.cl_datasets.SplitCLDataset"
    assert cfg.cl_dataset.source == "digits"
    assert cfg.backbone._target_ == "clarena.backbones.MLP"
    assert cfg.cl_algorithm._target_ == "clarena.cl_algorithms.LwF"
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer._partial_
    assert list(logger_nodes(cfg)) == ["csv"]
    assert list(callback_nodes(cfg)) == []  # NaN check: in the step; checkpoint: by time
    assert cfg.output_dir.startswith("outputs/default/")
    assert cfg.cl_dataset.scenario == "TIL" and cfg.cl_dataset.seed == cfg.seed == 1


def test_the_protocol_experiments_cover_five_methods_in_three_scenarios() -> None:
    expected = {
        f"vdv2022_{a}_{s}"
        for a in ("finetuning", "joint", "lwf", "ewc", "er")
        for s in ("til", "dil", "cil")
    }
    assert expected <= set(SHIPPED)
    cfg = compose_config(["experiment=vdv2022_er_dil"])
    assert cfg.scenario == "DIL" and cfg.cl_algorithm._target_ == "clarena.cl_algorithms.ER"
    assert list(cfg.backbone.hidden_dims) == [400, 400]
    assert cfg.optimizer.lr == 0.001 and cfg.cl_dataset.batch_size == 128
    assert cfg.trainer.max_steps == 2000 and cfg.trainer.max_epochs == -1
    assert cfg.cl_dataset.source == "mnist" and cfg.cl_dataset.num_tasks == 5
    twin = compose_config(["experiment=vdv2022_fmnist_er_dil"])
    assert twin.cl_dataset.source == "fashion_mnist" and twin.cl_algorithm == cfg.cl_algorithm


@pytest.mark.parametrize(
    ("experiment", "user"), [(e, False) for e in SHIPPED] + [(e, True) for e in USER]
)
def test_every_experiment_composes_and_instantiates(experiment: str, user: bool) -> None:
    overrides = searchpath_override([str(EXAMPLES)]) if user else []
    cfg = compose_config([*overrides, f"experiment={experiment}", "output_dir=/tmp/unused"])
    validate_config(cfg)  # builds dataset (no files read), backbone, heads and algorithm
    trainer = instantiate(cfg.trainer)
    assert trainer.max_steps == cfg.trainer.max_steps
    for node in callback_nodes(cfg).values():
        instantiate(node)


def test_example_configs_hold_a_user_experiment() -> None:
    assert USER, "example_configs/experiment/ must hold at least one experiment"


@pytest.mark.parametrize("name", ["csv", "tensorboard", "wandb", "mlflow", "many", "none"])
def test_logger_configs_compose_and_instantiate_when_installed(name: str, tmp_path: Path) -> None:
    cfg = compose_config([f"logger={name}", f"output_dir={tmp_path}"])
    nodes = logger_nodes(cfg)
    needs = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
    missing = [
        needs[n]
        for n in nodes
        if n in needs
        and importlib.util.find_spec(needs[n]) is None
        and not (n == "tensorboard" and importlib.util.find_spec("tensorboardX"))
    ]
    if missing:
        with pytest.raises(ConfigError, match=r"pip install 'clarena\[loggers\]'"):
            validate_config(cfg, build=False)
        pytest.skip(f"needs {missing}")
    validate_config(cfg, build=False)
    loggers = [instantiate(node) for node in nodes.values()]
    assert len(loggers) == {"many": 2, "none": 0}.get(name, 1)


@pytest.mark.parametrize(
    ("launcher", "target"),
    [
        ("local_parallel", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
        ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
    ],
)
def test_launcher_configs_compose(launcher: str, target: str) -> None:
    cfg = compose_config([f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target
    assert importlib.util.find_spec(target.rsplit(".", 1)[0]) is not None
    if launcher == "local_parallel":
        assert cfg.hydra.launcher.n_jobs == 2
    else:
        assert cfg.hydra.launcher.timeout_min == 240 and cfg.hydra.launcher.gpus_per_node == 1


def test_runs_and_sweeps_write_into_output_dir() -> None:
    cfg = compose_config(["output_dir=/tmp/x"], return_hydra_config=True)
    assert cfg.hydra.run.dir == "/tmp/x"
    assert cfg.hydra.sweep.dir == "/tmp/x"
    assert cfg.hydra.job.chdir is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["foo=1"], "unknown config key 'foo': check its spelling"),
        (["trainer.max_stepz=3"], "unknown config key 'trainer.max_stepz'"),
        (["cl_algorithm=lfw"], "unknown cl_algorithm 'lfw' (did you mean 'lwf'?): choose one of"),
        (["logger=tensorbord"], "unknown logger 'tensorbord' (did you mean 'tensorboard'?)"),
        (["seed=abc"], "wrong type for seed: got 'abc', expected an integer"),
        (
            ["cl_algorithm.temperature=abc"],
            "wrong type for cl_algorithm.temperature: got 'abc' (str), LwF expects float",
        ),
        (
            ["trainer.max_epochs=abc"],
            "wrong type for trainer.max_epochs: got 'abc' (str), LoopSettings expects int | None",
        ),
        (["scenario=til"], "unknown scenario 'til' (did you mean 'TIL'?)"),
        (
            ["scenario=DataIL"],
            "cl_dataset SplitCLDataset does not support scenario=DataIL: set scenario= one of "
            "TIL, CIL, DIL",
        ),
        (["cl_algorithm=bc_new_error", "scenario=TIL"], "cl_algorithm: BCNewError in TIL needs"),
        (["+cl_algorithm.lamda=2"], "cl_algorithm (LwF) takes no argument 'lamda'"),
        (["cl_algorithm.lambda_c=0,1"], "lists several values: add -m (--multirun)"),
    ],
)
def test_bad_input_is_one_line_naming_the_cause(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(compose_config(overrides))
    text = str(info.value)
    assert "\n" not in text
    assert message in text


def test_a_config_is_validated_once_per_process(tmp_path, monkeypatch) -> None:
    """`clarena train` checks the config before Hydra launches the job; the job's config (the same
    composition, with the fresh `output_dir`) is not checked again, another config is."""
    from clarena.commands.train import prepare
    from clarena.run import config

    monkeypatch.setattr(config, "_VALIDATED", {})
    checks: list[int] = []
    real = config._check_top_level
    monkeypatch.setattr(config, "_check_top_level", lambda cfg: checks.append(1) or real(cfg))
    base = ["cl_dataset.num_tasks=2", f"output_dir={tmp_path / 'run'}"]
    overrides, composed = prepare(base, multirun=False)
    assert checks == [1]
    job = config.compose_config(overrides)  # what Hydra composes for the job of a sweep

    # the config `prepare` hands to a single run is that composition, to the last value
    def plain(cfg) -> dict:
        return {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in ((k, cfg[k]) for k in cfg if k != "hydra")
        }

    assert plain(composed) == plain(job)
    assert list(composed.hydra.overrides.task) == overrides
    config.validate_config(job, build=False)
    config.validate_config(job)
    assert checks == [1]
    config.validate_config(config.compose_config([*base, "seed=9"]), build=False)
    assert checks == [1, 1]
    with pytest.raises(ConfigError, match="does not support scenario"):
        config.validate_config(config.compose_config([*base, "cl_algorithm=hat", "scenario=CIL"]))
