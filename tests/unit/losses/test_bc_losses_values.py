"""Exact values of the eight loss classes on tiny hand-computed batches, every reduction.

Multi-class batch (K = 3, B = 3, labels y = (0, 1, 2)): h2 logits (2, 0, -1), (0, 1, 0), (1, 0, 0);
h1 logits (1, 0, 0), (3, 0, 0), (0, 0, 2), so the support is S = {1, 3}. With lambda_c = 0.5:
  l   = (0.16984602, 0.55144471, 1.55144471)   (cross-entropy of h2, = NLL = KL(onehot || p2))
  new-error bracket  l_i (1 + 0.5 1[S])            = (0.25476903, 0.55144471, 2.32716707)
  strict CE/NLL      l_i + 0.5 1[S] d_i, d = (1.22955381, 1.50616621, 1.44493774)
                     = (0.78462292, 0.55144471, 2.27391358)
  strict KL          d = (0.25422598, 1.13957225, 0.77936505)
                     -> (0.29695901, 0.55144471, 1.94112724)
Binary batch (B = 4): h2 logits (2, -1, 0.5, 0), h1 logits (1, 1, -2, 0), labels (1, 0, 0, 0),
support S = {1, 3}:
  new-error bracket  (0.19039202, 0.31326169, 1.46111548, 0.69314718)
  strict             (0.45933344, 0.31326169, 1.43131475, 0.69314718)
Worked out with Python's `math` module from the formulas in `clarena.losses`.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clarena import losses

NEW_ERROR = [0.25476902933442847, 0.5514447139320511, 2.3271670708980765]
STRICT_CE = [0.784622923377142, 0.5514447139320511, 2.2739135814384763]
STRICT_KL = [0.2969590087940311, 0.5514447139320511, 1.9411272404891324]
BIN_NEW_ERROR = [0.19039201656445895, 0.3132616875182228, 1.4611154762701601, 0.6931471805599453]
BIN_STRICT = [0.45933343793445386, 0.3132616875182228, 1.431314745764631, 0.6931471805599453]

EXPECTED = {
    "BCNLLLoss": NEW_ERROR,
    "BCCrossEntropyLoss": NEW_ERROR,
    "BCKLDivergenceLoss": NEW_ERROR,
    "StrictImitationNLLLoss": STRICT_CE,
    "StrictImitationCrossEntropyLoss": STRICT_CE,
    "StrictImitationKLDivergenceLoss": STRICT_KL,
    "BCBinaryCrossEntropyLoss": BIN_NEW_ERROR,
    "StrictImitationBinaryCrossEntropyLoss": BIN_STRICT,
}


class Lookup(nn.Module):
    """A 'model' whose output for input index i is row i of a trainable table."""

    def __init__(self, table, triple=False, probabilities=False):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table, dtype=torch.float64))
        self.triple = triple
        self.probabilities = probabilities

    def forward(self, x):
        z = self.table[x]
        if self.probabilities:
            return torch.sigmoid(z)
        if self.triple:
            return z, torch.softmax(z, dim=-1), torch.log_softmax(z, dim=-1)
        return z


def setup(name, **model_options):
    if "Binary" in name:
        h2 = Lookup([2.0, -1.0, 0.5, 0.0], **model_options)
        h1 = Lookup([1.0, 1.0, -2.0, 0.0], **model_options)
        x, y = torch.arange(4), torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    else:
        h2 = Lookup([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], **model_options)
        h1 = Lookup([[1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 2.0]], **model_options)
        x, y = torch.arange(3), torch.tensor([0, 1, 2])
    h1.requires_grad_(False)
    return h1, h2, x, y


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exact_values(name, reduction):
    h1, h2, x, y = setup(name)
    per_sample = torch.tensor(EXPECTED[name], dtype=torch.float64)
    expected = {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}[reduction]
    loss_fn = getattr(losses, name)(h1, h2, 0.5, reduction=reduction)
    torch.testing.assert_close(loss_fn(x, y), expected)
    # the reduction can also be chosen per call, as in the original library
    loss_fn = getattr(losses, name)(h1, h2, 0.5)
    torch.testing.assert_close(loss_fn(x, y, reduction=reduction), expected)


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if "Binary" not in n))
def test_triple_output_models_give_the_same_loss(name):
    h1, h2, x, y = setup(name)
    h1t, h2t, _, _ = setup(name, triple=True)
    expected = torch.tensor(EXPECTED[name], dtype=torch.float64).mean()
    cls = getattr(losses, name)
    torch.testing.assert_close(cls(h1, h2, 0.5)(x, y), expected)
    torch.testing.assert_close(cls(h1t, h2t, 0.5)(x, y), expected)


@pytest.mark.parametrize(
    "name", ["BCBinaryCrossEntropyLoss", "StrictImitationBinaryCrossEntropyLoss"]
)
def test_binary_on_probabilities_and_original_spelling(name):
    h1, h2, x, y = setup(name, probabilities=True)
    expected = torch.tensor(EXPECTED[name], dtype=torch.float64).mean()
    cls = getattr(losses, name)
    torch.testing.assert_close(cls(h1, h2, 0.5, output="probabilities")(x, y), expected)
    # BackwardCompatibilityML spelled the pivot `discriminan_pivot`; a pivot of 0.6 moves sample 4
    # (h1's probability 0.5) into the support
    shifted = cls(h1, h2, 0.5, output="probabilities", discriminan_pivot=0.6)(x, y, "none")
    torch.testing.assert_close(shifted[3], torch.tensor(0.6931471805599453 * 1.5).double())


def test_strict_imitation_temperature_and_focal_alpha():
    # lambda_c = 1, T = 2, alpha = 0.25: mean l + mean of the dissonance 0.88075181
    h1, h2, x, y = setup("StrictImitationCrossEntropyLoss")
    loss_fn = losses.StrictImitationCrossEntropyLoss(h1, h2, 1.0, temperature=2.0, focal_alpha=0.25)
    mean_ell = (0.16984601955628564 + 0.5514447139320511 + 1.551444713932051) / 3
    expected = torch.tensor(mean_ell + 0.8807518060339042, dtype=torch.float64)
    torch.testing.assert_close(loss_fn(x, y), expected)


def test_kl_accepts_the_original_num_classes_and_batchmean():
    h1, h2, x, y = setup("BCKLDivergenceLoss")
    loss_fn = losses.BCKLDivergenceLoss(h1, h2, 0.5, num_classes=3)
    expected = torch.tensor(NEW_ERROR, dtype=torch.float64).mean()
    torch.testing.assert_close(loss_fn(x, y, reduction="batchmean"), expected)
    with pytest.raises(ValueError, match="num_classes"):
        losses.BCKLDivergenceLoss(h1, h2, 0.5, num_classes=4)(x, y)
