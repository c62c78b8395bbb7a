"""`TorchvisionBackbone`: torchvision's own features from a weights file or a weights name, grey
images, the refusals of a wrong file or name, and `freeze` (no backbone parameter in the optimizer,
no BatchNorm drift)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from clarena.backbones import TorchvisionBackbone
from clarena.backbones.torchvision_models import weights_by_name
from clarena.cl_algorithms import Finetuning
from clarena.heads import make_heads


def _randomised(model: nn.Module) -> nn.Module:
    """`model` with BatchNorm statistics that are not the initial zeros and ones."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(_randomised(torchvision.models.resnet18()).state_dict(), path)
    return path


def _torchvision_features(path: Path, x: torch.Tensor) -> torch.Tensor:
    """The input of the `fc` layer of torchvision's own resnet18 loaded from `path`."""
    model = torchvision.models.resnet18()
    model.load_state_dict(torch.load(path, weights_only=True))
    seen: list[torch.Tensor] = []
    model.fc.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    with torch.no_grad():
        model.eval()(x)
    return seen[0]


def test_resnet18_from_a_weights_file_gives_torchvisions_features(resnet18_file: Path) -> None:
    backbone = TorchvisionBackbone((3, 32, 32), "resnet18", weights=str(resnet18_file)).eval()
    assert backbone.output_dim == 512 and backbone.classifier == "fc"
    assert isinstance(backbone.model.fc, nn.Identity)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        features = backbone(x)
    assert features.shape == (4, 512)
    assert torch.equal(features, _torchvision_features(resnet18_file, x))


def test_grey_images_are_repeated_to_three_channels(resnet18_file: Path) -> None:
    backbone = TorchvisionBackbone((1, 32, 32), "resnet18", weights=resnet18_file).eval()
    assert backbone.repeat_channels == 3
    grey = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        features = backbone(grey)
    assert torch.equal(features, _torchvision_features(resnet18_file, grey.repeat(1, 3, 1, 1)))


def test_a_file_of_any_classifier_width_fits(tmp_path: Path) -> None:
    path = tmp_path / "ten_classes.pt"
    source = torchvision.models.resnet18(num_classes=10)
    torch.save({"state_dict": source.state_dict()}, path)  # a wrapped state_dict unwraps too
    backbone = TorchvisionBackbone((3, 16, 16), "resnet18", weights=path)
    assert torch.equal(backbone.model.conv1.weight, source.conv1.weight)


def _message(make) -> str:
    with pytest.raises(ValueError) as info:
        make()
    return str(info.value)


def test_a_weights_file_of_another_architecture_is_named_with_its_first_mismatch(
    tmp_path: Path,
) -> None:
    wider = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), wider)
    fix = (
        "; pass weights saved from torchvision resnet18 (torch.save(model.state_dict(), path)) "
        "or set the backbone to the file's architecture."
    )
    assert _message(lambda: TorchvisionBackbone((3, 32, 32), "resnet18", weights=wider)) == (
        f"weights file {wider} does not fit torchvision resnet18: key 'layer1.0.conv1.weight' "
        "has shape (64, 64, 1, 1) in the file but (64, 64, 3, 3) in the model" + fix
    )
    deeper = tmp_path / "resnet34.pth"  # every resnet18 key fits; resnet34 has more blocks
    torch.save(torchvision.models.resnet34().state_dict(), deeper)
    assert _message(lambda: TorchvisionBackbone((3, 32, 32), "resnet18", weights=deeper)) == (
        f"weights file {deeper} does not fit torchvision resnet18: the file has key "
        "'layer1.2.conv1.weight', which the model lacks" + fix
    )
    partial = tmp_path / "partial.pth"
    state = torchvision.models.resnet18().state_dict()
    del state["bn1.weight"]
    torch.save(state, partial)
    assert _message(lambda: TorchvisionBackbone((3, 32, 32), "resnet18", weights=partial)) == (
        f"weights file {partial} does not fit torchvision resnet18: key 'bn1.weight' is missing "
        "from the file" + fix
    )


class _Payload:
    def __reduce__(self):
        return (print, ("code from a weights file ran",))


def test_a_file_holding_code_is_refused_without_running_it(tmp_path: Path, capsys) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Payload()}, path)
    message = _message(lambda: TorchvisionBackbone((3, 32, 32), "resnet18", weights=path))
    assert message.startswith(f"weights file {path} cannot be read as tensors only (")
    assert message.endswith("; save the weights with torch.save(model.state_dict(), path).")
    assert "ran" not in capsys.readouterr().out
    missing = tmp_path / "absent.pth"
    assert _message(lambda: TorchvisionBackbone((3, 32, 32), weights=missing)) == (
        f"weights file {missing} does not exist; pass the path of a state_dict file (save the "
        "weights with torch.save(model.state_dict(), path)) as backbone.weights."
    )


def test_unknown_names_list_the_closest() -> None:
    assert _message(lambda: TorchvisionBackbone((3, 32, 32), "resnet81")) == (
        "unknown torchvision model 'resnet81' (closest: resnet18, resnet152, resnet101, "
        "resnet50); the names are those of torchvision.models.list_models(module="
        "torchvision.models)."
    )
    assert _message(lambda: TorchvisionBackbone((3, 32, 32), "resnet18", weights="IMAGENET")) == (
        "'IMAGENET' is neither a weights file nor a weights name of torchvision resnet18 (its "
        "weights: IMAGENET1K_V1, DEFAULT); a file path needs a '/' or a suffix such as .pth."
    )
    assert _message(lambda: TorchvisionBackbone((1, 8, 8), "squeezenet1_0")) == (
        "torchvision squeezenet1_0 cannot take images of shape (3, 8, 8) (Given input size: "
        "(96x1x1). Calculated output size: (96x0x0). Output size is too small); set "
        "input_size=[H, W] to a size it was made for (e.g. [224, 224])."
    )


def test_a_weights_name_loads_torchvisions_cached_file_as_tensors_only(
    tmp_path: Path, monkeypatch, resnet18_file: Path
) -> None:
    """Offline, a weights name reads the file torchvision would download from torch's hub cache
    (here the test's own weights), through torchvision's builder but with `weights_only=True`."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    weights = weights_by_name("resnet18", "ResNet18_Weights.DEFAULT")
    assert weights is torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cached = tmp_path / "hub" / "checkpoints" / Path(weights.url).name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(resnet18_file.read_bytes())
    backbone = TorchvisionBackbone((3, 32, 32), "resnet18", weights="IMAGENET1K_V1").eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(backbone(x), _torchvision_features(resnet18_file, x))
    torch.save({"conv1.weight": _Payload()}, cached)
    message = _message(lambda: TorchvisionBackbone((3, 32, 32), weights="IMAGENET1K_V1"))
    assert message.startswith(
        f"torchvision weights ResNet18_Weights.IMAGENET1K_V1: the cached file {cached} cannot be "
        "read as tensors only (Weights only load failed."
    )
    assert message.endswith("; delete it to download it again, or pass a weights file.")


def test_a_failed_download_says_where_the_file_goes(tmp_path: Path, monkeypatch) -> None:
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    cache = tmp_path / "hub" / "checkpoints" / Path(url).name
    assert _message(lambda: TorchvisionBackbone((3, 32, 32), weights="IMAGENET1K_V1")) == (
        "torchvision weights ResNet18_Weights.IMAGENET1K_V1 could not be downloaded (<urlopen "
        f"error no network>); on a machine without network, fetch {url} elsewhere and put it at "
        f"{cache} or pass it as backbone.weights=<file>."
    )


@pytest.mark.filterwarnings("ignore:The default weight initialization of GoogleNet")
@pytest.mark.parametrize(
    ("name", "classifier", "width"),
    [
        ("squeezenet1_1", "classifier.1", 512),
        ("mobilenet_v3_small", "classifier.3", 1024),
        ("googlenet", "fc", 1024),
        ("shufflenet_v2_x0_5", "fc", 1024),
    ],
)
def test_the_classifier_is_found_in_other_families(name: str, classifier: str, width: int) -> None:
    backbone = TorchvisionBackbone((3, 32, 32), name).train()
    assert (backbone.classifier, backbone.output_dim) == (classifier, width)
    assert backbone(torch.randn(2, 3, 32, 32)).shape == (2, width)  # no auxiliary outputs
    assert getattr(backbone.model, "aux1", None) is None


def test_input_size_resizes_inside_the_backbone(resnet18_file: Path) -> None:
    backbone = TorchvisionBackbone((1, 8, 8), weights=resnet18_file, input_size=[40, 36])
    grey = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    resized = F.interpolate(grey, size=(40, 36), mode="bilinear", antialias=True)
    with torch.no_grad():
        features = backbone.eval()(grey)
    reference = _torchvision_features(resnet18_file, resized.expand(-1, 3, -1, -1))
    assert torch.equal(features, reference)
    assert _message(lambda: TorchvisionBackbone((3, 8, 8), input_size=[224])) == (
        "torchvision resnet18: input_size must be [H, W] with positive sizes, got [224]."
    )


def _finetuning(freeze: bool, weights: Path) -> Finetuning:
    backbone = TorchvisionBackbone((1, 16, 16), "resnet18", weights=weights, freeze=freeze)
    heads = make_heads("TIL", backbone.output_dim)
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    algorithm = Finetuning(backbone=backbone, heads=heads, optimizer=optimizer, scenario="TIL")
    heads.setup_task(1, 3)
    return algorithm


def test_freeze_trains_the_heads_only_and_batchnorm_does_not_drift(resnet18_file: Path) -> None:
    x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    task_ids = torch.ones(8, dtype=torch.long)
    frozen = _finetuning(True, resnet18_file)
    optimizer = frozen.configure_optimizers()
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in frozen.heads.parameters()}
    before = {k: v.clone() for k, v in frozen.backbone.state_dict().items()}
    frozen.train()
    assert frozen.backbone.training and not frozen.backbone.model.training
    frozen(x, task_ids).sum().backward()
    after = frozen.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in frozen.backbone.parameters())
    assert frozen.heads.heads["1"].weight.grad is not None
    trained = _finetuning(False, resnet18_file)  # the contrast: statistics move when not frozen
    trained.train()
    trained(x, task_ids)
    moved = trained.backbone.model.bn1.running_mean
    assert not torch.equal(moved, before["model.bn1.running_mean"])
    # resnet18 has 60 parameter tensors without its fc, the head 2
    assert len(trained.configure_optimizers().param_groups[0]["params"]) == 60 + 2
