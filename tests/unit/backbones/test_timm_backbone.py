"""`TimmBackbone` (the optional extra `clarena[timm]`): timm's own pooled features from a weights
file, the refusals of a wrong file or name; skipped where timm is not installed. Also the shipped
`backbone/timm.yaml` and `backbone/torchvision.yaml`."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from clarena.backbones import TimmBackbone


@pytest.fixture
def timm() -> ModuleType:
    return pytest.importorskip("timm")


def test_without_timm_the_extra_is_named(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # what a missing package imports as
    with pytest.raises(ValueError) as info:
        TimmBackbone((3, 16, 16), "resnet18")
    assert str(info.value) == "backbone=timm needs the timm package; pip install 'clarena[timm]'."


def test_a_timm_model_from_a_weights_file_gives_timms_features(
    timm: ModuleType, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    source = timm.create_model("resnet18", num_classes=10).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    backbone = TimmBackbone((1, 16, 16), "resnet18", weights=path).eval()
    assert backbone.output_dim == 512 and backbone.repeat_channels == 3
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = source.forward_head(source.forward_features(x.repeat(1, 3, 1, 1)), True)
        assert torch.equal(backbone(x), expected)


def test_a_safetensors_file_loads_too(timm: ModuleType, tmp_path: Path) -> None:
    safetensors = pytest.importorskip("safetensors.torch")
    source = timm.create_model("resnet18")
    path = tmp_path / "model.safetensors"
    safetensors.save_file(source.state_dict(), str(path))
    backbone = TimmBackbone((3, 16, 16), "resnet18", weights=str(path))
    assert torch.equal(backbone.model.conv1.weight, source.conv1.weight)


def test_timm_refusals_are_one_line(timm: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "resnet34.pth"
    torch.save(timm.create_model("resnet34").state_dict(), path)
    with pytest.raises(ValueError) as info:
        TimmBackbone((3, 16, 16), "resnet18", weights=path)
    assert str(info.value) == (
        f"weights file {path} does not fit timm resnet18: the file has key "
        "'layer1.2.conv1.weight', which the model lacks; pass weights saved from timm resnet18 "
        "(torch.save(model.state_dict(), path)) or set the backbone to the file's architecture."
    )
    with pytest.raises(ValueError, match=r"^unknown timm model 'resnet81' \(closest: resnet18, "):
        TimmBackbone((3, 16, 16), "resnet81")


def test_freeze_leaves_timms_parameters_out_of_training(timm: ModuleType) -> None:
    backbone = TimmBackbone((3, 16, 16), "resnet18", freeze=True).train()
    assert not backbone.model.training
    assert not any(p.requires_grad for p in backbone.parameters())


@pytest.mark.parametrize(
    ("name", "target"), [("timm", "TimmBackbone"), ("torchvision", "TorchvisionBackbone")]
)
def test_the_shipped_configs_build_a_resnet18(name: str, target: str) -> None:
    """`backbone=timm` and `backbone=torchvision` as shipped: a resnet18 on grey 8×8 digits."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    import clarena.configs

    if name == "timm":
        pytest.importorskip("timm")
    path = Path(clarena.configs.__file__).parent / "backbone" / f"{name}.yaml"
    backbone = instantiate(OmegaConf.load(path), input_shape=(1, 8, 8))
    assert type(backbone).__name__ == target
    assert (backbone.name, backbone.output_dim, backbone.freeze) == ("resnet18", 512, False)
    assert backbone(torch.zeros(2, 1, 8, 8)).shape == (2, 512)
