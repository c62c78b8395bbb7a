"""`ModuleBackbone`: any `nn.Module` by `_target_`, its classifier named, guessed or absent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor, nn

from clarena.backbones import ModuleBackbone
from clarena.backbones.adapter import last_classifier


def test_a_nested_target_is_instantiated_and_its_named_classifier_dropped(tmp_path: Path) -> None:
    source = torchvision.models.resnet18(num_classes=7)
    path = tmp_path / "mine.pt"
    torch.save(source.state_dict(), path)
    config = OmegaConf.create(
        {
            "_target_": "clarena.backbones.ModuleBackbone",
            "module": {"_target_": "torchvision.models.resnet18", "num_classes": 7},
            "classifier": "fc",
            "weights": str(path),
        }
    )
    backbone = instantiate(config, input_shape=(3, 16, 16)).eval()
    assert (backbone.architecture, backbone.output_dim) == ("ResNet", 512)
    seen: list[Tensor] = []
    source.fc.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        source.eval()(x)
        assert torch.equal(backbone(x), seen[0])


def test_a_module_returning_features_keeps_every_layer() -> None:
    config = OmegaConf.create(
        {
            "_target_": "clarena.backbones.ModuleBackbone",
            "module": {
                "_target_": "torch.nn.Sequential",
                "_args_": [
                    {"_target_": "torch.nn.Flatten"},
                    {"_target_": "torch.nn.Linear", "in_features": 64, "out_features": 24},
                ],
            },
        }
    )
    backbone = instantiate(config, input_shape=(1, 8, 8))
    assert backbone.classifier is None and backbone.repeat_channels is None
    assert backbone.output_dim == 24 and isinstance(backbone.model[1], nn.Linear)


class _HeadRegisteredFirst(nn.Module):
    """Registers its classifier before its body, so the last registered linear layer is no
    classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(64, 10)
        self.body = nn.Linear(64, 64)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x.flatten(1)))


def test_a_wrong_guess_of_the_classifier_is_refused() -> None:
    assert last_classifier(_HeadRegisteredFirst()) == "body"
    with pytest.raises(ValueError) as info:
        ModuleBackbone((1, 8, 8), _HeadRegisteredFirst(), classifier="auto")
    assert str(info.value) == (
        "_HeadRegisteredFirst: the guessed classifier 'body' takes 64 features but the module "
        "then returns 10; name the classifier with classifier=<dotted name>."
    )
    named = ModuleBackbone((1, 8, 8), _HeadRegisteredFirst(), classifier="head")
    assert named.output_dim == 64


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: ModuleBackbone((1, 8, 8), _HeadRegisteredFirst(), classifier="fc"),
            "_HeadRegisteredFirst has no submodule 'fc' to drop as its classifier; name one of "
            "its modules (top level: head, body) or set classifier=null.",
        ),
        (
            lambda: ModuleBackbone((1, 8, 8), nn.Flatten(), classifier="auto"),
            "Flatten has no nn.Linear or nn.Conv2d layer to drop as its classifier; set "
            "classifier=null when the module returns features.",
        ),
        (
            lambda: ModuleBackbone((3, 8, 8), nn.Conv2d(4, 2, 3)),
            "Conv2d takes 4-channel images but the dataset's have 3 channels; use a dataset with "
            "4 or 1 channels (grey images are repeated), or a backbone made for these images.",
        ),
        (
            lambda: ModuleBackbone((1, 8, 8), {"_target_": "torch.nn.Flatten"}),
            "module must be an nn.Module, got dict; in YAML give it a _target_ naming the "
            "module's class.",
        ),
    ],
)
def test_bad_modules_are_refused_in_one_line(make, message: str) -> None:
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == message


class _Pair(nn.Module):
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x, x


def test_a_module_must_return_a_tensor() -> None:
    with pytest.raises(ValueError, match=r"^_Pair returns a tuple, not a tensor of features; wrap"):
        ModuleBackbone((1, 8, 8), _Pair())


def test_a_frozen_module_is_copied_frozen_and_dropout_stays_off() -> None:
    """h1 is a deep copy of the backbone: it stays frozen; dropout inside a frozen module is off
    even in training mode."""
    import copy

    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Dropout(0.5))
    backbone = ModuleBackbone((1, 8, 8), net, freeze=True).train()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(backbone(x), backbone(x))
    clone = copy.deepcopy(backbone).train()
    assert clone.freeze and not clone.model.training
    assert not any(p.requires_grad for p in clone.parameters())


def test_the_docs_example_module_and_config_build(tmp_path: Path, monkeypatch) -> None:
    """The `SmallNet` example of docs/own_data.md, written out as a user would, builds."""
    import re

    docs = Path(__file__).resolve().parents[3] / "docs" / "own_data.md"
    section = docs.read_text(encoding="utf-8").split("### Any `nn.Module` of yours", 1)[1]
    python = re.search(r"```python\n(# mynets.py\n.*?)```", section, re.S)
    yaml = re.search(r"```yaml\n(# my_configs/backbone/small_net.yaml\n.*?)```", section, re.S)
    assert python is not None and yaml is not None
    (tmp_path / "mynets.py").write_text(python.group(1), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    backbone = instantiate(OmegaConf.create(yaml.group(1)), input_shape=(1, 8, 8))
    assert (backbone.architecture, backbone.classifier, backbone.output_dim) == (
        "SmallNet",
        "classifier",
        64,
    )
    assert backbone(torch.zeros(2, 1, 8, 8)).shape == (2, 64)
