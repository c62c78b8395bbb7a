"""The frozen reference model h1 and a CPU copy of a state dict, for checkpoints."""

from __future__ import annotations

from torch import Tensor, nn

from clarena.heads import Heads


def cpu_state(module: nn.Module) -> dict[str, Tensor]:
    """A detached CPU copy of `module.state_dict()` (weights-only-safe)."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


class Snapshot(nn.Module):
    """A frozen copy of a model (backbone + heads): the reference model h1.

    Built by `deepcopy`, kept in eval mode with `requires_grad=False`; `forward(x, task_ids)`
    returns logits like the model it copies.
    """

    def __init__(self, backbone: nn.Module, heads: Heads) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = heads
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Snapshot:
        """A snapshot stays in eval mode whatever it is asked (BatchNorm statistics never move)."""
        return super().train(False)

    def forward(self, x: Tensor, task_ids: Tensor) -> Tensor:
        """Logits of the frozen model."""
        return self.heads(self.backbone(x), task_ids)
