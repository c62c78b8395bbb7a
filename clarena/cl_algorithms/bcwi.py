"""BCWI: an update interpolated back towards the old model's weights, the mix chosen on held-out
data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from clarena.cl_algorithms.composed import Composed
from clarena.cl_algorithms.regularizers import SELECTIONS, choose_alpha, interpolate_weights
from clarena.cl_algorithms.regularizers._common import check_choice, check_nonnegative
from clarena.cl_algorithms.regularizers.bcwi import check_alphas
from clarena.cl_algorithms.terms import CrossEntropy

#: The default grid of $\alpha$: 0, 0.05, ..., 1.
DEFAULT_ALPHAS: tuple[float, ...] = tuple(i / 20 for i in range(21))


def model_state(backbone: nn.Module, heads: nn.Module) -> dict[str, Tensor]:
    """The weights of a model as one state dict (`backbone.*`, `heads.*`)."""
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state.update({f"heads.{k}": v for k, v in heads.state_dict().items()})
    return state


class BCWI(Composed):
    """Backward-compatible weight interpolation (Schumann et al., EACL 2024): each update (task
    $t \\ge 2$) is trained with cross-entropy from the old model's weights, and when its training
    ends (before it is tested) its weights become

    $$\\theta(\\alpha) = (1 - \\alpha)\\, \\theta_\\text{old} + \\alpha\\, \\theta_\\text{new},$$

    $\\theta_\\text{old}$ those of h1 (the model before the update, or the deployed model), with
    $\\alpha$ picked from the grid `alphas` on the task's validation data
    (`clarena.cl_algorithms.regularizers.bcwi.choose_alpha`): the largest $\\alpha$ whose
    negative flip rate against h1 is at most `max_nfr` (`select="nfr_budget"`), or the best
    accuracy minus `nfr_weight` times that rate (`select="score"`). $\\alpha = 0$ is h1 exactly,
    $\\alpha = 1$ the update. Each update's choice, with the validation accuracy and NFR of every
    grid point, is in `alpha_records` (saved with the CL state) and logged as `bcwi/alpha`.
    Loss terms: `ce`.

    Args:
        alphas: the grid of $\\alpha$ in $[0, 1]$.
        select: `"nfr_budget"` or `"score"`.
        max_nfr: the NFR budget of `"nfr_budget"`, a fraction.
        nfr_weight: $\\mu \\ge 0$ of `"score"`.
        **kwargs: as `Composed` (the replay options are unused) and `CLAlgorithm`.

    Raises:
        ValueError: on a bad grid or option; at an update, without validation data
            (`cl_dataset.val_fraction` must be > 0).
    """

    supported_scenarios = ("DIL", "DataIL")

    def __init__(
        self,
        *args: Any,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        select: str = "nfr_budget",
        max_nfr: float = 0.01,
        nfr_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, terms={"ce": CrossEntropy()}, **kwargs)
        object.__setattr__(self, "needs_h1", True)  # the old weights, from task 2 on
        self.alphas = check_alphas(alphas)
        self.select = check_choice("select", select, SELECTIONS)
        self.max_nfr = check_nonnegative("max_nfr", max_nfr)
        self.nfr_weight = check_nonnegative("nfr_weight", nfr_weight)
        if self.select == "nfr_budget" and 0.0 not in self.alphas:
            raise ValueError("BCWI: with select=nfr_budget the grid alphas must contain 0.")
        self.alpha_records: dict[int, dict[str, Any]] = {}
        """Per update (task id): `alpha` chosen, and the grid's `alphas`, `val_accuracy`,
        `val_nfr`."""
        self._datamodule: Any = None

    def on_task_start(self, task_id: int, datamodule: Any) -> None:
        """Start the task; an update needs validation data to choose $\\alpha$."""
        super().on_task_start(task_id, datamodule)
        self._datamodule = datamodule
        if task_id >= 2 and len(datamodule.val_dataloader()) == 0:
            raise ValueError(
                "BCWI chooses alpha on validation data, but the task has none; set "
                "cl_dataset.val_fraction > 0."
            )

    def on_train_end(self) -> None:
        """After an update's training: interpolate towards h1 with the chosen $\\alpha$."""
        super().on_train_end()
        if self.task_id >= 2 and self.h1 is not None and self._datamodule is not None:
            self.interpolate(self._datamodule.val_dataloader())

    @torch.no_grad()
    def interpolate(self, val_batches: Any) -> float:
        """Evaluate every $\\alpha$ of the grid on `val_batches` (`(x, y, task_ids)`), set the
        weights to $\\theta(\\alpha)$ of the chosen one, record and return it. Under DDP the counts
        of every process's shard are summed first, so every process picks the same $\\alpha$."""
        device = self._model_device()
        h1 = self._h1_on(device)
        batches = [(x.to(device), y.to(device), t.to(device)) for x, y, t in val_batches]
        old_right = torch.cat([h1(x, t).argmax(1) == y for x, y, t in batches])
        old = model_state(h1.backbone, h1.heads)
        new = {k: v.clone() for k, v in model_state(self.backbone, self.heads).items()}
        training = self.training
        self.eval()
        counts = []  # per alpha: right, negative flips, samples
        for alpha in self.alphas:
            self._load(interpolate_weights(old, new, alpha))
            right = torch.cat([self(x, t).argmax(1) == y for x, y, t in batches])
            counts.append(torch.stack([right.sum(), (old_right & ~right).sum()]))
        pooled = torch.stack(counts).to(torch.int64)
        pooled = torch.cat([pooled, pooled.new_full((len(counts), 1), old_right.numel())], 1)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(pooled)  # every rank's shard: one alpha for all
        table = pooled.tolist()
        accuracies = [r / n for r, _, n in table]  # exact fractions of the counts
        nfrs = [f / n for _, f, n in table]
        chosen = choose_alpha(
            self.alphas, accuracies, nfrs, self.select, self.max_nfr, self.nfr_weight
        )
        self._load(interpolate_weights(old, new, chosen))
        self.train(training)
        self.alpha_records[self.task_id] = {
            "alpha": chosen,
            "alphas": list(self.alphas),
            "val_accuracy": accuracies,
            "val_nfr": nfrs,
        }
        trainer = self._trainer
        step = int(getattr(trainer, "global_step", 0))
        for logger in getattr(trainer, "loggers", None) or ():
            logger.log_metrics({"bcwi/alpha": chosen}, step=step)
        return chosen

    def _load(self, state: Mapping[str, Tensor]) -> None:
        split: dict[str, dict[str, Tensor]] = {"backbone": {}, "heads": {}}
        for name, tensor in state.items():
            part, _, key = name.partition(".")
            split[part][key] = tensor
        self.backbone.load_state_dict(split["backbone"])
        self.heads.load_state_dict(split["heads"])

    def results_record(self) -> dict[str, Any]:
        """`{"bcwi": {"task_<t>": record}}`: each update's $\\alpha$ and validation curve."""
        return {"bcwi": {f"task_{t}": r for t, r in sorted(self.alpha_records.items())}}

    def extra_cl_state(self) -> dict[str, Any]:
        """`Composed`'s state and the chosen $\\alpha$ of every update."""
        return {
            **super().extra_cl_state(),
            "bcwi": {str(t): r for t, r in self.alpha_records.items()},
        }

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore `Composed`'s state and the records of $\\alpha$."""
        super().load_extra_cl_state(state)
        saved = state.get("bcwi") or {}
        self.alpha_records = {int(t): dict(r) for t, r in saved.items()}
