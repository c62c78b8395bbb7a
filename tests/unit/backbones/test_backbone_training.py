"""`clarena train backbone=torchvision ...` on split digits: a frozen resnet18 from a weights file
trains its heads only (its tensors leave the run exactly as the file holds them), and a weights
file of another architecture stops the run before its folder exists."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from clarena.commands.train import main
from clarena.core.errors import EXIT_BAD_INPUT

COMMON = ("backbone=torchvision", "trainer=debug", "cl_dataset.num_tasks=2", "logger=none")


@pytest.mark.slow
def test_a_frozen_torchvision_resnet18_trains_its_heads_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = torchvision.models.resnet18(num_classes=10)
    for module in source.modules():  # statistics that a training step would move
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
    weights = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), weights)
    run = tmp_path / "run"
    overrides = ["backbone.name=resnet18", f"backbone.weights={weights}", "backbone.freeze=true"]
    code = main([*COMMON, *overrides, "trainer.enable_progress_bar=false", f"output_dir={run}"])
    assert code == 0
    saved = torch.load(run / "checkpoints" / "after_task_2.pt", weights_only=True)["cl_state"]
    file = torch.load(weights, weights_only=True)
    backbone = saved["backbone"]
    assert sorted(backbone) == sorted(f"model.{k}" for k in file if not k.startswith("fc."))
    assert all(torch.equal(backbone[f"model.{k}"], file[k]) for k in file if k[:3] != "fc.")
    first, second = saved["heads"]["heads.1.weight"], saved["heads"]["heads.2.weight"]
    assert first.shape == second.shape == (2, 512)


def test_a_weights_file_of_another_architecture_stops_before_the_run(
    tmp_path: Path, capsys
) -> None:
    weights = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), weights)
    run = tmp_path / "run"
    overrides = ["backbone.name=resnet18", f"backbone.weights={weights}", f"output_dir={run}"]
    code = main([*COMMON, *overrides])
    assert code == EXIT_BAD_INPUT and not run.exists()
    err = capsys.readouterr().err.strip()
    assert err == (
        f"clarena train: error: backbone: weights file {weights} does not fit torchvision "
        "resnet18: key 'layer1.0.conv1.weight' has shape (64, 64, 1, 1) in the file but "
        "(64, 64, 3, 3) in the model; pass weights saved from torchvision resnet18 "
        "(torch.save(model.state_dict(), path)) or set the backbone to the file's architecture."
    )
