r"""Avalanche interoperability: clarena's regularizers as Avalanche plugins, Avalanche benchmarks
as clarena datasets.

Needs `avalanche-lib` (the `avalanche` extra). The plugins add a clarena regularizer to the loss of
any Avalanche `SupervisedTemplate` strategy (`Naive`, `Replay`, ...); the math is the regularizer's,
called on the strategy's minibatch tensors:

- `DistillationPlugin` (Learning without Forgetting style): before every backward pass of
  experience $e > 1$ it adds `DistillationReg` between the current logits and those of a frozen copy
  of the model taken at the end of experience $e - 1$, both restricted to the classes of
  experiences $1..e-1$: $R = \text{DistillationReg}(z[:, \mathcal{C}_{<e}],\;
  z^{\text{old}}[:, \mathcal{C}_{<e}])$.
- `BCDissonancePlugin`: adds the backward-compatibility dissonance of the new model $h_2$ (being
  trained) against the frozen pre-experience model $h_1$ on the minibatch labels:
  `BCNewErrorReg` (new-error) or `StrictImitationReg` (strict imitation).

Both add nothing during the first experience (there is no earlier model yet). The frozen copy is in
eval mode, has `requires_grad=False` and is run under `torch.no_grad()`: it never receives a
gradient. Column $k$ of the model's output is taken to be class $k$, Avalanche's convention for
single-head models.

`avalanche_to_cl_dataset(benchmark, scenario)` turns a benchmark's train and test streams into a
`CLDataset`: experience $e$ of the train stream becomes task $t = e + 1$, and its test set is
test experience $e$ (or, for a benchmark with a single test experience such as a new-instances
benchmark, the test samples of the task's classes). Labels follow `docs/architecture.md` over the
task's classes in increasing order.

Example:
    >>> from avalanche.training import Naive  # doctest: +SKIP
    >>> plugin = DistillationPlugin(factor=1.0, temperature=2.0)  # doctest: +SKIP
    >>> strategy = Naive(model, optimizer, plugins=[plugin])  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from avalanche.models import avalanche_forward
from avalanche.training.plugins import SupervisedPlugin
from torch import Tensor, nn
from torch.utils.data import DataLoader

from clarena.cl_algorithms.regularizers import BCNewErrorReg, DistillationReg, StrictImitationReg
from clarena.cl_datasets.base import SCENARIOS, CLDataset
from clarena.cl_datasets.sources import SourceData

__all__ = [
    "AvalancheCLDataset",
    "BCDissonancePlugin",
    "DistillationPlugin",
    "avalanche_to_cl_dataset",
    "experience_tensors",
]


class _FrozenModelPlugin(SupervisedPlugin):
    """Keeps a frozen copy of the model from before the current experience."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen_model: nn.Module | None = None
        """The model as it was at the end of the previous experience (`None` before that)."""
        self.seen_classes: set[int] = set()
        """The classes of the experiences already trained on."""
        self.last_penalty: Tensor | None = None
        """The term added at the last backward pass (`None` when nothing was added)."""

    def _frozen_output(self, strategy: Any) -> Tensor:
        assert self.frozen_model is not None
        with torch.no_grad():
            return avalanche_forward(self.frozen_model, strategy.mb_x, strategy.mb_task_id)

    def penalty(self, strategy: Any) -> Tensor | None:
        """The term to add for the strategy's current minibatch (`None` in the first experience)."""
        raise NotImplementedError

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        """Add `penalty(strategy)` to `strategy.loss`."""
        self.last_penalty = self.penalty(strategy)
        if self.last_penalty is not None:
            strategy.loss = strategy.loss + self.last_penalty

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Freeze a copy of the trained model and record the experience's classes."""
        frozen = copy.deepcopy(strategy.model).eval()
        frozen.requires_grad_(False)
        self.frozen_model = frozen
        targets = strategy.experience.dataset.targets
        self.seen_classes.update(int(c) for c in _as_tensor(targets).unique().tolist())


class DistillationPlugin(_FrozenModelPlugin):
    """LwF-style distillation towards the pre-experience model, through `DistillationReg`.

    Args:
        factor: Weight of the term, finite and `>= 0`.
        temperature: Softmax temperature $T > 0$ (cross-entropy distance only).
        distance: `"cross_entropy"` (LwF) or `"MSE"` (DER).

    Raises:
        ValueError: On arguments `DistillationReg` refuses.
    """

    def __init__(
        self, factor: float = 1.0, temperature: float = 2.0, distance: str = "cross_entropy"
    ) -> None:
        super().__init__()
        self.regularizer = DistillationReg(factor, temperature, distance)

    def penalty(self, strategy: Any) -> Tensor | None:
        r"""`DistillationReg` of the current logits towards the frozen model's, on the columns of
        the classes seen in earlier experiences; `None` before the first experience ends."""
        if self.frozen_model is None or not self.seen_classes:
            return None
        old = self._frozen_output(strategy)
        current = strategy.mb_output
        columns = sorted(self.seen_classes)
        width = min(old.shape[-1], current.shape[-1])
        if columns[-1] >= width:
            raise ValueError(
                f"class {columns[-1]} was trained on but the model has only {width} outputs; "
                "use a classifier with one output per class id"
            )
        index = torch.tensor(columns, device=current.device)
        return self.regularizer(current.index_select(-1, index), old.index_select(-1, index))


class BCDissonancePlugin(_FrozenModelPlugin):
    r"""Backward-compatibility dissonance against the pre-experience model.

    Args:
        loss: The underlying loss, one of `"nll"`, `"cross_entropy"`, `"binary_cross_entropy"`,
            `"kl_div"`.
        lambda_c: Strength $\lambda_c$, finite and `>= 0`.
        strict_imitation: `False`: new-error dissonance (`BCNewErrorReg`); `True`: strict
            imitation (`StrictImitationReg`).
        temperature: Softmax temperature of strict imitation.
        focal_alpha: Strict imitation's weight outside the support (0: the KDD 2020 form).

    Raises:
        ValueError: On arguments the regularizers refuse.
    """

    def __init__(
        self,
        loss: str = "cross_entropy",
        lambda_c: float = 1.0,
        strict_imitation: bool = False,
        temperature: float = 1.0,
        focal_alpha: float = 0.0,
    ) -> None:
        super().__init__()
        self.regularizer: nn.Module = (
            StrictImitationReg(loss, lambda_c, temperature=temperature, focal_alpha=focal_alpha)
            if strict_imitation
            else BCNewErrorReg(loss, lambda_c)
        )

    def penalty(self, strategy: Any) -> Tensor | None:
        """The dissonance of the current output against the frozen model's on `strategy.mb_y`;
        `None` before the first experience ends."""
        if self.frozen_model is None:
            return None
        old = self._frozen_output(strategy)
        current = strategy.mb_output
        if old.shape != current.shape:
            raise ValueError(
                f"the model's output changed from {tuple(old.shape)} to {tuple(current.shape)}; "
                "the BC plugin needs a classifier of fixed width across experiences"
            )
        return self.regularizer(current, old, strategy.mb_y)


# ----------------------------------------------------------------------------- benchmarks
def _as_tensor(values: Iterable[Any]) -> Tensor:
    return torch.as_tensor(list(values), dtype=torch.int64)


def _to_uint8_images(x: Tensor) -> Tensor:
    """Inputs `(N, ...)` as uint8 images `(N, C, H, W)`; floats must lie in $[0, 1]$."""
    if x.dim() == 2:
        x = x[:, None, None, :]
    elif x.dim() == 3:
        x = x[:, None]
    elif x.dim() != 4:
        raise ValueError(f"inputs of shape {tuple(x.shape[1:])} are not images (C, H, W)")
    if x.dtype == torch.uint8:
        return x.contiguous()
    if not x.is_floating_point():
        raise ValueError(f"inputs must be uint8 or float in [0, 1], got {x.dtype}")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError(
            "float inputs must lie in [0, 1]: drop the Normalize transform from the benchmark "
            "(clarena normalises batches itself)"
        )
    return torch.round(x * 255.0).to(torch.uint8)


def experience_tensors(experience: Any, batch_size: int = 1024) -> tuple[Tensor, Tensor]:
    """All `(inputs, classes)` of an Avalanche experience, with its eval transforms applied.

    Args:
        experience: An experience of an Avalanche stream (its `dataset` yields `(x, y, ...)`).
        batch_size: How many samples are read at a time.

    Returns:
        The inputs stacked along a new first dimension and the int64 classes `(N,)`.
    """
    dataset = experience.dataset
    if hasattr(dataset, "eval"):
        dataset = dataset.eval()
    xs, ys = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        xs.append(torch.as_tensor(batch[0]))
        ys.append(torch.as_tensor(batch[1]).long())
    if not xs:
        raise ValueError(f"experience {experience.current_experience} has no samples")
    return torch.cat(xs), torch.cat(ys)


class AvalancheCLDataset(CLDataset):
    """A `CLDataset` whose tasks are the experiences of an Avalanche benchmark.

    Built by `avalanche_to_cl_dataset`; train experience $e$ (from 0) is task $e + 1$.
    """

    supported_scenarios = SCENARIOS

    def __init__(
        self,
        source: SourceData,
        scenario: str,
        classes: list[tuple[int, ...]],
        train_experience: Tensor,
        test_experience: Tensor | None,
        **kwargs: Any,
    ) -> None:
        """Keep the experience of every sample.

        Args:
            source: Every train and test sample of the benchmark, as uint8 images.
            scenario: One of `SCENARIOS`.
            classes: The classes of every task, in increasing order (entry `t-1` for task `t`).
            train_experience: The experience (from 0) of every training sample.
            test_experience: The experience of every test sample, or `None` when the benchmark
                has one test experience (a task then tests on the test samples of its classes).
            **kwargs: Settings of `CLDataset` (`batch_size`, `val_fraction`, `seed`, ...).
        """
        super().__init__(source, scenario, **kwargs)
        self._task_classes = classes
        self._experience = {"train": train_experience, "test": test_experience}

    def task_classes(self) -> list[tuple[int, ...]]:
        """The classes of every task, in increasing order."""
        return self._task_classes

    def select(self, task_id: int, split: str, pool_classes: Tensor) -> Tensor:
        """The pool positions of the samples of experience `task_id - 1`."""
        experience = self._experience["test" if split == "test" else "train"]
        if experience is None:
            return super().select(task_id, split, pool_classes)
        return torch.nonzero(experience[self._pools[split]] == task_id - 1).flatten()


def avalanche_to_cl_dataset(
    benchmark: Any, scenario: str, name: str = "avalanche", **kwargs: Any
) -> AvalancheCLDataset:
    """Turn an Avalanche classification benchmark into a clarena `CLDataset`.

    Train experience $e$ becomes task $e + 1$, holding the classes present in it; its test set is
    test experience $e$, or, when the test stream has a single experience, the test samples of the
    task's classes. Inputs are read once through the experiences' eval transforms and kept in memory
    as uint8 images: they must be uint8, or floats in $[0, 1]$ (stored as `round(255 x)`); vectors
    `(D,)` become `(1, 1, D)` images, `(H, W)` inputs `(1, H, W)`. The validation set is cut from
    each task's training samples (`val_fraction`, default 0.1).

    Args:
        benchmark: An Avalanche benchmark with `train_stream` and `test_stream`.
        scenario: `"TIL"`, `"CIL"`, `"DIL"` or `"DataIL"`.
        name: The source name shown in logs and reports.
        **kwargs: Settings of `CLDataset` (`batch_size`, `val_fraction`, `seed`, `device`, ...).

    Returns:
        The dataset; `setup_task(t)` serves experience `t - 1`.

    Raises:
        ValueError: On an unknown scenario, test and train streams of different lengths (other
            than a single test experience), or inputs that are not images in $[0, 1]$.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}")
    train_stream, test_stream = list(benchmark.train_stream), list(benchmark.test_stream)
    if len(test_stream) not in (1, len(train_stream)):
        raise ValueError(
            f"the benchmark has {len(train_stream)} train and {len(test_stream)} test experiences; "
            "give one test experience per train experience, or a single one"
        )
    parts = {
        split: [experience_tensors(e) for e in stream]
        for split, stream in (("train", train_stream), ("test", test_stream))
    }
    classes = [tuple(sorted(int(c) for c in y.unique().tolist())) for _, y in parts["train"]]
    exp_of = {
        split: torch.cat(
            [torch.full((len(y),), e, dtype=torch.int64) for e, (_, y) in enumerate(ps)]
        )
        for split, ps in parts.items()
    }
    train_y = torch.cat([y for _, y in parts["train"]])
    test_y = torch.cat([y for _, y in parts["test"]])
    source = SourceData(
        name,
        _to_uint8_images(torch.cat([x for x, _ in parts["train"]])),
        train_y,
        _to_uint8_images(torch.cat([x for x, _ in parts["test"]])),
        test_y,
        int(max(train_y.max(), test_y.max())) + 1,
    )
    single_test = len(test_stream) == 1 and len(train_stream) > 1
    return AvalancheCLDataset(
        source,
        scenario,
        classes,
        exp_of["train"],
        None if single_test else exp_of["test"],
        **kwargs,
    )
