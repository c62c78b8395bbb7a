"""A deployed model's weights, checked against the run's architecture before they are used.

A backward-compatible update of a model already in use takes that model as it is instead of
training it: `clarena train experiment=bc_update_fmnist update.old_model=<file or run folder>`.
The deployed model then plays the model after task 1: task 1 loads its weights and trains
nothing, its test gives the deployed model's predictions, and every later task's update is trained
against it (h1 is its frozen copy) and compared with it in `compatibility.csv`.

What the file may hold (read with `torch.load(..., weights_only=True)`: no code from it runs):

- a task checkpoint of a clarena run (`checkpoints/after_task_<t>.pt`; a run folder stands for
  its last one), or the `cl_state` inside one;
- `{"backbone": <backbone state dict>, "heads": <heads state dict>}`;
- a flat state dict with `backbone.` and `heads.` prefixes (what `algorithm.state_dict()` gives),
  also under a `"state_dict"` key (a Lightning checkpoint).

From a plain PyTorch model: build clarena's backbone from the backbone config, copy the weights
into it, and save them with the head's (one `nn.Linear` over the backbone's features; in DIL and
DataIL the heads' state is `linear.weight`, `linear.bias`). `docs/model_updates.md` shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from clarena.heads import Heads


class DeployedModelError(ValueError):
    """A deployed model that does not fit the run's architecture (a one-line message)."""


def _tensors(source: str, what: str, value: Any) -> dict[str, Tensor]:
    if not isinstance(value, Mapping) or not all(isinstance(v, Tensor) for v in value.values()):
        raise DeployedModelError(
            f"{source}: {what} is not a state dict of tensors; save the model's weights with "
            "torch.save({'backbone': backbone.state_dict(), 'heads': heads.state_dict()}, path)"
        )
    return {str(k): v for k, v in value.items()}


def _split(source: str, flat: Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    parts: dict[str, dict[str, Any]] = {"backbone": {}, "heads": {}}
    for key, value in flat.items():
        prefix, _, rest = str(key).partition(".")
        if prefix not in parts or not rest:
            raise DeployedModelError(
                f"{source}: the weights hold {key!r}, which is neither backbone.* nor heads.*; "
                "save {'backbone': backbone.state_dict(), 'heads': heads.state_dict()} instead"
            )
        parts[prefix][rest] = value
    return _tensors(source, "backbone", parts["backbone"]), _tensors(
        source, "heads", parts["heads"]
    )


class DeployedModel:
    """The weights of a deployed model (CPU tensors) and where they came from.

    A plain class, not a dataclass: Hydra's `instantiate` would turn a dataclass argument into a
    structured config, which cannot hold tensors.

    Args:
        backbone: the backbone's state dict.
        heads: the heads' state dict.
        source: the file they were read from (named in every error).
    """

    def __init__(self, backbone: dict[str, Tensor], heads: dict[str, Tensor], source: str) -> None:
        self.backbone = backbone
        self.heads = heads
        self.source = source

    def __repr__(self) -> str:
        return f"DeployedModel(source={self.source!r})"

    @classmethod
    def from_payload(cls, payload: Any, source: str) -> DeployedModel:
        """The weights in `payload`, what `torch.load` returned for `source` (see the module
        docstring for the layouts accepted).

        Raises:
            DeployedModelError: when `payload` is none of those layouts.
        """
        if isinstance(payload, Mapping) and isinstance(payload.get("cl_state"), Mapping):
            payload = payload["cl_state"]
        if isinstance(payload, Mapping) and isinstance(payload.get("state_dict"), Mapping):
            payload = payload["state_dict"]
        if not isinstance(payload, Mapping):
            raise DeployedModelError(
                f"{source}: holds a {type(payload).__name__}, not a model's weights; save "
                "{'backbone': backbone.state_dict(), 'heads': heads.state_dict()}"
            )
        if "backbone" in payload and "heads" in payload:
            backbone = _tensors(source, "backbone", payload["backbone"])
            heads = _tensors(source, "heads", payload["heads"])
        else:
            backbone, heads = _split(source, payload)
        if not backbone or not heads:
            raise DeployedModelError(
                f"{source}: the weights have no {'backbone' if not backbone else 'heads'}; save "
                "both the backbone's and the heads' state dicts"
            )
        detached = {k: v.detach().cpu().clone() for k, v in backbone.items()}
        return cls(detached, {k: v.detach().cpu().clone() for k, v in heads.items()}, source)

    def check(self, part: str, module: nn.Module, fix: str) -> None:
        """Raise a one-line `DeployedModelError` naming the file and the first mismatch when the
        weights of `part` ("backbone" or "heads") do not fit `module` exactly."""
        weights = self.backbone if part == "backbone" else self.heads
        expected = module.state_dict()
        missing = sorted(set(expected) - set(weights))
        unexpected = sorted(set(weights) - set(expected))
        if missing or unexpected:
            which = "lacks" if missing else "has the extra"
            names = ", ".join((missing or unexpected)[:3])
            raise DeployedModelError(
                f"{self.source} does not fit the {part}: it {which} {names}; {fix}"
            )
        for name, tensor in expected.items():
            if weights[name].shape != tensor.shape:
                raise DeployedModelError(
                    f"{self.source} does not fit the {part}: {name} has shape "
                    f"{tuple(weights[name].shape)} in the file but {tuple(tensor.shape)} in the "
                    f"model; {fix}"
                )

    def check_backbone(self, backbone: nn.Module) -> None:
        """Refuse weights of another backbone (before anything is built or written)."""
        self.check("backbone", backbone, "choose the backbone config the model was trained with")

    def load_into(self, backbone: nn.Module, heads: Heads) -> None:
        """Copy the weights into `backbone` and `heads` (the heads set up for task 1 already).

        Raises:
            DeployedModelError: when they do not fit (another architecture or class count).
        """
        self.check_backbone(backbone)
        self.check("heads", heads, "the deployed model must predict the dataset's classes")
        backbone.load_state_dict(self.backbone)
        heads.load_state_dict(self.heads)
