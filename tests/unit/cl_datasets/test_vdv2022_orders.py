"""The van de Ven et al. (2022) protocol draws the reference's class order for every seed, and runs
Class-IL with the paper's active classes (all 10 units; iCaRL: the classes seen so far)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import clarena
from clarena.cl_datasets import SplitCLDataset
from clarena.cl_datasets.split import shuffled_order, split_classes
from clarena.heads import make_heads
from clarena.run.components import build_components
from clarena.run.config import compose_config
from clarena.run.spec import RunSpec

DATA = Path(__file__).resolve().parents[2] / "data" / "vdv2022_class_orders.json"
ORDERS: dict[str, list[list[int]]] = json.loads(DATA.read_text())["orders"]
"""Seed → the digits of each context, as the reference's own code assigns them."""

EXPERIMENTS = Path(clarena.__file__).parent / "configs" / "experiment"
CIL_EXPERIMENTS = sorted(p.stem for p in EXPERIMENTS.glob("vdv2022_*_cil.yaml"))


def vdv(experiment: str, *overrides: str):
    """The composed config of a vdv2022 experiment (no file is read)."""
    return compose_config([f"experiment={experiment}", "logger=none", *overrides])


@pytest.mark.parametrize("seed", range(22))
def test_the_vdv2022_draw_is_the_references_order(seed: int) -> None:
    tasks = split_classes(10, 5, 2, shuffle_classes="vdv2022", seed=seed)
    assert [list(t) for t in tasks] == ORDERS[str(seed)]


def test_the_recorded_orders_cover_the_papers_seeds() -> None:
    assert {str(s) for s in range(2, 22)} <= set(ORDERS)
    assert ORDERS["11"] == [[8, 6], [2, 7], [4, 5], [3, 0], [1, 9]]
    assert ORDERS["0"] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]  # the reference's exception


@pytest.mark.parametrize(("experiment", "seed"), [("vdv2022_si_dil", 11), ("vdv2022_er_cil", 2)])
def test_the_protocol_serves_the_references_digits(experiment: str, seed: int) -> None:
    cfg = vdv(experiment, f"seed={seed}")
    assert cfg.cl_dataset.shuffle_classes == "vdv2022"
    data = build_components(RunSpec.of(cfg), load_data=False).datamodule
    assert [list(t) for t in data.task_classes()] == ORDERS[str(seed)]
    # within a context the order is the reference's label order: in Domain-IL the first digit is 0
    first, second = ORDERS[str(seed)][1]
    assert data.label_map(2) == (
        {first: 0, second: 1} if cfg.scenario == "DIL" else {first: 2, second: 3}
    )


def test_the_vdv2022_draw_permutes_an_explicit_order_by_position() -> None:
    # seed 11 relabels position k as p[k], p = (7, 8, 2, 6, 4, 5, 1, 3, 0, 9); position i of the
    # new order is the k with p[k] = i
    order = [90, 91, 92, 93, 94, 95, 96, 97, 98, 99]
    assert shuffled_order(order, "vdv2022", 11) == [98, 96, 92, 97, 94, 95, 93, 90, 91, 99]
    assert shuffled_order(order, "vdv2022", 0) == order


def test_clarenas_own_shuffle_is_unchanged() -> None:
    # numpy.random.default_rng([seed, 2]), as before the vdv2022 draw was added
    assert split_classes(10, 5, 2, shuffle_classes=True, seed=3) == [
        (7, 4), (1, 8), (6, 0), (2, 9), (3, 5),
    ]  # fmt: skip
    assert split_classes(10, 5, 2, shuffle_classes=False, seed=3)[0] == (0, 1)


def test_an_unknown_shuffle_is_refused() -> None:
    with pytest.raises(ValueError, match="shuffle_classes='vdv' is not a class shuffle: use false"):
        split_classes(10, 5, 2, shuffle_classes="vdv", seed=1)


@pytest.mark.parametrize("experiment", CIL_EXPERIMENTS)
def test_class_il_active_classes_are_the_papers(experiment: str) -> None:
    """compare.py: --active-classes=all for every Class-IL method but iCaRL (all-so-far)."""
    cfg = vdv(experiment)
    expected = "all_so_far" if experiment == "vdv2022_icarl_cil" else "all"
    assert cfg.cl_dataset.active_classes == expected
    components = build_components(RunSpec.of(cfg), load_data=False)
    heads, data = components.algorithm.heads, components.datamodule
    widths = []
    for t in (1, 2):
        heads.setup_task(t, data.output_dim(t))
        widths.append(heads.linear.out_features)
    assert widths == ([2, 4] if expected == "all_so_far" else [10, 10])
    assert [heads.class_range(t) for t in (1, 2)] == [(0, 2), (2, 4)]


def test_the_other_scenarios_have_no_head_width() -> None:
    for experiment in ("vdv2022_er_til", "vdv2022_er_dil"):
        data = build_components(RunSpec.of(vdv(experiment)), load_data=False).datamodule
        assert data.active_classes == "all" and data.head_outputs is None


def test_all_active_keeps_the_layer_and_its_task_columns() -> None:
    head = make_heads("CIL", 3, num_outputs=10)
    head.setup_task(1, 2)
    layer = head.linear
    head.setup_task(2, 4)
    assert head.linear is layer and layer.out_features == 10
    assert [head.class_range(t) for t in (1, 2)] == [(0, 2), (2, 4)]
    assert head.num_logits(torch.tensor([1, 2])).tolist() == [10, 10]
    blank = head.blank()
    assert blank.num_outputs == 10 and blank.task_classes == {} and blank.scenario == "CIL"
    with pytest.raises(ValueError, match="cannot shrink"):
        head.setup_task(3, 3)


def test_active_classes_are_checked() -> None:
    with pytest.raises(
        ValueError, match="active_classes='current' is not a choice: use all_so_far or all"
    ):
        SplitCLDataset("digits", "CIL", classes_per_task=2, active_classes="current")
    with pytest.raises(ValueError, match="num_outputs sets the CIL head's width"):
        make_heads("TIL", 3, num_outputs=10)
    data = SplitCLDataset("digits", "CIL", classes_per_task=2, active_classes="all")
    assert data.head_outputs == 10 and data.output_dim(1) == 2


def test_h1_of_an_all_active_head_is_restored_at_its_width() -> None:
    cfg = vdv("vdv2022_lwf_cil")
    first = build_components(RunSpec.of(cfg), load_data=False)
    algorithm, data = first.algorithm, first.datamodule
    for t in (1, 2):
        if t > 1:
            algorithm.on_task_end(t - 1, data)
        algorithm.on_task_start(t, data)
    state = algorithm.cl_state_dict()
    again = build_components(RunSpec.of(cfg), load_data=False).algorithm
    again.load_cl_state_dict(state)
    assert again.h1.heads.linear.out_features == 10
    assert torch.equal(again.h1.heads.linear.weight, algorithm.h1.heads.linear.weight)
