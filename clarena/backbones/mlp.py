"""Multi-layer perceptron backbone (the 2×400 network of the split-MNIST protocol by default)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def check_input_shape(name: str, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Validate an `input_shape` argument and return it as a tuple of positive ints.

    Args:
        name: the backbone's name, for the error message.
        input_shape: the shape of one input sample, e.g. `(1, 28, 28)`.

    Raises:
        ValueError: when the shape is empty or holds a non-positive size.
    """
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(
            f"{name}: input_shape must be a non-empty sequence of positive sizes, got "
            f"{tuple(input_shape)}; pass the dataset's input_shape, e.g. (1, 28, 28)."
        )
    return shape


class MLP(nn.Module):
    """Fully connected feature extractor: flatten, then, for each hidden width,
    `Linear → [BatchNorm] → activation → [Dropout]`.

    The default `hidden_dims=(400, 400)` is the standard split-MNIST network (van de Ven & Tolias,
    "Three scenarios for continual learning", 2019).

    Args:
        input_shape: shape of one input sample, e.g. `(1, 28, 28)`; it is flattened.
        hidden_dims: the width of each hidden layer; the last one is `output_dim`.
        activation: `"relu"`, `"tanh"` or `"gelu"`.
        batch_norm: add `BatchNorm1d` after each linear layer.
        dropout: dropout probability after each activation (0 disables it).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        hidden_dims: Sequence[int] = (400, 400),
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        shape = check_input_shape("MLP", input_shape)
        dims = [int(d) for d in hidden_dims]
        if not dims or any(d <= 0 for d in dims):
            raise ValueError(f"MLP: hidden_dims must be positive widths, got {list(hidden_dims)}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"MLP: unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP: dropout must be in [0, 1), got {dropout}.")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(shape)
        for dim in dims:
            layers.append(nn.Linear(width, dim))
            if batch_norm:
                layers.append(nn.BatchNorm1d(dim))
            layers.append(_ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = dim
        self.net = nn.Sequential(*layers)
        self.input_shape: tuple[int, ...] = shape
        """The shape of one input sample."""
        self.output_dim: int = width
        """The feature width."""

    def forward(self, x: Tensor) -> Tensor:
        """Map inputs `(B, *input_shape)` to features `(B, output_dim)`."""
        return self.net(x)
