r"""A sweep over seeds: mean ± standard error per setting, the Pareto front, the ensemble reference.

A *setting* is one algorithm with one set of hyper-parameters (its `cl_algorithm` config without
the seed); its runs differ only in the seed. `aggregate` reduces the `SweepPoint`s of each setting
to a `SweepGroup`: the mean and the standard error $s / \sqrt{n}$ (`clarena.metrics.study`)
of the new model's accuracy and its negative flip rate NFR, and, against the runs with
$\lambda_c = 0$ (the baseline: every BC algorithm is then plain fine-tuning), the paired changes
of the same seeds,

$$ \Delta\mathrm{acc} = \overline{a_s - a^0_s}, \qquad
   \Delta\mathrm{NFR}_{\mathrm{rel}} = \frac{\overline{f_s - f^0_s}}{\overline{f^0}}, $$

each with its standard error (the seeds share $h_1$, so pairing removes $h_1$'s spread).
`pareto_front` marks the settings no other setting beats in both accuracy and NFR.

`score_ensemble` is the reference line of Positive-Congruent Training (Yan et al., CVPR 2021):
the updates of the $\lambda_c = 0$ runs (one per seed) are averaged (their softmax outputs) into
one ensemble model, whose NFR against each seed's old model $h_1$ is measured on the same test
points; an ensemble lowers flips without any loss term.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clarena.metrics.study import Estimate, mean_and_standard_error
from clarena.metrics.sweep import SweepPoint


@dataclass
class SweepGroup:
    """The runs of one setting, over seeds (see the module docstring)."""

    kind: str
    algorithm: str
    lambda_c: float | None
    setting: str
    seeds: list[int | None]
    accuracy: Estimate
    nfr: Estimate
    accuracy_change: Estimate = field(default_factory=lambda: Estimate(None, None, 0))
    nfr_relative_change: Estimate = field(default_factory=lambda: Estimate(None, None, 0))
    pareto: bool = False

    @property
    def label(self) -> str:
        """`FocalDistillation λc=0.5 (distance=kl)`-like text."""
        lam = "" if self.lambda_c is None else f" λc={self.lambda_c:g}"
        return f"{self.algorithm}{lam}" + (f" ({self.setting})" if self.setting else "")


def _baseline_by_seed(points: Sequence[SweepPoint]) -> dict[int | None, SweepPoint]:
    return {p.seed: p for p in points if p.lambda_c == 0.0 and p.nfr is not None}


def aggregate(points: Sequence[SweepPoint]) -> list[SweepGroup]:
    """One `SweepGroup` per setting; the $\\lambda_c = 0$ runs of every algorithm form one group."""
    baseline = _baseline_by_seed(points)
    groups: dict[tuple, list[SweepPoint]] = {}
    for p in points:
        key = ("baseline",) if p.lambda_c == 0.0 else (p.kind, p.algorithm, p.lambda_c, p.setting)
        groups.setdefault(key, []).append(p)
    out = []
    for key, members in groups.items():
        if key == ("baseline",):
            members = list({p.seed: p for p in members}.values())  # one run per seed
        first = members[0]
        group = SweepGroup(
            kind="baseline" if key == ("baseline",) else first.kind,
            algorithm="baseline" if key == ("baseline",) else first.algorithm,
            lambda_c=0.0 if key == ("baseline",) else first.lambda_c,
            setting="" if key == ("baseline",) else first.setting,
            seeds=[p.seed for p in members],
            accuracy=mean_and_standard_error(p.accuracy for p in members),
            nfr=mean_and_standard_error(p.nfr for p in members),
        )
        paired = [(p, baseline[p.seed]) for p in members if p.seed in baseline]
        group.accuracy_change = mean_and_standard_error(
            p.accuracy - b.accuracy
            for p, b in paired
            if p.accuracy is not None and b.accuracy is not None
        )
        nfr_pairs = [(p.nfr, b.nfr) for p, b in paired if p.nfr is not None and b.nfr is not None]
        base_nfr = mean_and_standard_error(b for _, b in nfr_pairs).mean
        if base_nfr:
            change = mean_and_standard_error(a - b for a, b in nfr_pairs)
            group.nfr_relative_change = Estimate(
                None if change.mean is None else change.mean / base_nfr,
                None if change.standard_error is None else change.standard_error / base_nfr,
                change.n,
            )
        out.append(group)
    pareto_front(out)
    return sorted(out, key=lambda g: (g.kind != "baseline", g.kind, g.setting, g.lambda_c or 0.0))


def pareto_front(groups: Sequence[SweepGroup]) -> list[SweepGroup]:
    """Mark (and return) the groups whose mean accuracy and mean NFR no other group beats in both
    (at least as good in one, better in the other)."""
    scored = [g for g in groups if g.accuracy.mean is not None and g.nfr.mean is not None]
    front = []
    for g in scored:
        dominated = any(
            o is not g
            and o.accuracy.mean >= g.accuracy.mean  # type: ignore[operator]
            and o.nfr.mean <= g.nfr.mean  # type: ignore[operator]
            and (o.accuracy.mean > g.accuracy.mean or o.nfr.mean < g.nfr.mean)  # type: ignore[operator]
            for o in scored
        )
        g.pareto = not dominated
        if g.pareto:
            front.append(g)
    return front


@dataclass(frozen=True)
class EnsembleReference:
    """The ensemble of the $\\lambda_c = 0$ updates, scored against each member's $h_1$."""

    members: int
    accuracy: float
    nfr: Estimate
    btc: Estimate
    member_nfr: Estimate


def score_ensemble(outputs: Sequence[tuple[Any, Any, Any]]) -> EnsembleReference | None:
    """The ensemble reference of the $\\lambda_c = 0$ updates from each one's outputs on the same
    test points: `(softmax of the update, its h1's predictions, the labels)` per seed (the
    pipeline rebuilds the models from the run folders, `clarena.run.sweep_ensemble`).
    None with fewer than two members, or members tested on different points or widths."""
    import torch

    if len(outputs) < 2:
        return None
    labels = outputs[0][2]
    if any(o[2].shape != labels.shape or not torch.equal(o[2], labels) for o in outputs):
        return None  # the runs were not tested on the same points
    width = max(o[0].shape[1] for o in outputs)
    if any(o[0].shape[1] != width for o in outputs):
        return None
    ensemble = torch.stack([o[0] for o in outputs]).mean(dim=0).argmax(dim=1)
    ensemble_right = ensemble == labels
    nfr, btc, member = [], [], []
    for probabilities, old_preds, _ in outputs:
        old_right = old_preds == labels
        nfr.append(float((old_right & ~ensemble_right).float().mean()))
        btc.append(float((old_right & ensemble_right).sum() / old_right.sum().clamp_min(1)))
        member.append(float((old_right & ~(probabilities.argmax(dim=1) == labels)).float().mean()))
    return EnsembleReference(
        len(outputs),
        float(ensemble_right.float().mean()),
        mean_and_standard_error(nfr),
        mean_and_standard_error(btc),
        mean_and_standard_error(member),
    )


def baseline_runs(points: Sequence[SweepPoint]) -> list[Path]:
    """The run folders of the sweep's $\\lambda_c = 0$ updates, one per seed (sorted)."""
    baseline = _baseline_by_seed(points)
    return sorted(
        p.run_dir
        for p in baseline.values()
        if p.run_dir is not None and p.comparison != "reference"
    )
