r"""Backward-compatibility dissonance: the new-error and strict-imitation regularizers.

From Srivastava, Nushi, Kamar, Shah and Horvitz, *An Empirical Analysis of Backward Compatibility
in Machine Learning Systems* (KDD 2020). A new model $h_2$ is trained to agree with a frozen
reference model $h_1$ on the samples $h_1$ already gets right. With $B$ the batch size and the
*support* $S = \{i : \hat y_1(x_i) = y_i\}$ (the argmax of $h_1$'s output equals the label; for
the binary losses, $[\sigma_1(x_i) \ge \text{pivot}] = y_i$), the full objective is

$$ L = \frac{1}{B} \sum_{i=1}^{B} \Big[ \ell(h_2(x_i), y_i)
      + \lambda_c \, w_i \, d_i \Big], \qquad w_i = 1[i \in S] + \alpha \, 1[i \notin S]. $$

- **New-error** (`BC*`): $d_i = \ell(h_2(x_i), y_i)$, the underlying loss again, and $\alpha = 0$.
- **Strict imitation**: $d_i$ is the divergence from $h_1$'s *soft* output (at temperature $T$)
  to $h_2$'s: $-\sum_k p^{(1)}_k \log p^{(2)}_k$ for NLL and cross-entropy,
  $-[q_1 \log q_2 + (1 - q_1) \log(1 - q_2)]$ for binary cross-entropy and
  $\sum_k p^{(1)}_k (\log p^{(1)}_k - \log p^{(2)}_k)$ for KL. With a focal weight $\alpha > 0$
  on the samples outside $S$ this is the focal distillation of Positive-Congruent Training (Yan et
  al., *Positive-Congruent Training: Towards Regression-Free Model Updates*, CVPR 2021).

The underlying loss $\ell$: NLL takes log-probabilities, cross-entropy takes logits (both are
normalised with a log-softmax, a no-op on log-probabilities, so either works for either), binary
cross-entropy takes one logit per sample (`(B,)` or `(B, 1)`) or, with `output="probabilities"`, a
probability, and KL uses $\mathrm{KL}(\mathrm{onehot}(y) \,\|\, p_2) = -\log p^{(2)}_{y}$.

`"mean"` is the formula above, `"sum"` is $B$ times it and `"none"` the per-sample bracket; the
same rule applies to the base loss and to the dissonance. Nothing here synchronises with the host
(no `.item()`, no boolean-mask indexing: the support enters as a multiplicative mask), so the
functions run under `torch.compile(fullgraph=True)`, CUDA and autocast, and an empty support
gives $d = 0$ with finite gradients. $h_1$'s output is detached: it never receives a gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clarena.cl_algorithms.regularizers._common import (
    binary_column,
    check_batch,
    check_choice,
    check_multiclass,
    check_nonnegative,
    check_positive,
    check_probability,
    check_reduction,
    log_probs,
    log_sigmoids,
    reduce,
    upcast,
)

#: The underlying losses, as accepted by the `loss` argument.
LOSSES: tuple[str, ...] = ("nll", "cross_entropy", "binary_cross_entropy", "kl_div")
#: What the model outputs passed in are: `"logits"` (or log-probabilities) or `"probabilities"`.
OUTPUTS: tuple[str, ...] = ("logits", "probabilities")


def _validate(h2_output: Tensor, h1_output: Tensor, target: Tensor, loss: str, output: str) -> None:
    check_choice("loss", loss, LOSSES)
    check_choice("output", output, OUTPUTS)
    if h1_output.shape != h2_output.shape:
        raise ValueError(
            f"h1_output has shape {tuple(h1_output.shape)} but h2_output has "
            f"{tuple(h2_output.shape)}; both models must give outputs of the same shape"
        )


def base_loss(output: Tensor, target: Tensor, loss: str, output_kind: str = "logits") -> Tensor:
    r"""Per-sample underlying loss $\ell(h(x_i), y_i)$, shape `(B,)`.

    Multi-class (`"nll"`, `"cross_entropy"`, `"kl_div"`): $\ell_i = -\log p_{i, y_i}$ with
    $\log p = \log\mathrm{softmax}(z)$ (for KL this is $\mathrm{KL}(\mathrm{onehot}(y_i) \| p_i)$).
    Binary: $\ell_i = -[y_i \log q_i + (1 - y_i) \log(1 - q_i)]$ with $q_i = \sigma(z_i)$.

    Args:
        output: Model output, `(B, K)` for a multi-class loss, `(B,)` or `(B, 1)` for binary.
        target: Integer class indices `(B,)`; for binary, 0/1 labels `(B,)` or `(B, 1)`.
        loss: One of `LOSSES`.
        output_kind: `"logits"` (log-probabilities work too) or `"probabilities"`.

    Returns:
        The per-sample losses in float32 (or float64 for float64 inputs).
    """
    check_choice("loss", loss, LOSSES)
    check_choice("output", output_kind, OUTPUTS)
    if loss == "binary_cross_entropy":
        column = binary_column("h2_output", output)
        labels = binary_column("target", target)
        check_batch("target", labels, column.shape[0])
        log_q, log_not_q = log_sigmoids(column, output_kind)
        labels = labels.to(log_q.dtype)
        return -(labels * log_q + (1.0 - labels) * log_not_q)
    check_multiclass("h2_output", output, target)
    log_p = log_probs(output, output_kind)
    return -log_p.gather(1, target.long().unsqueeze(1)).squeeze(1)


def support_mask(
    h1_output: Tensor,
    target: Tensor,
    loss: str,
    discriminant_pivot: float = 0.5,
    output: str = "logits",
) -> Tensor:
    r"""The support $S$ as a boolean mask `(B,)`: the samples $h_1$ classifies correctly.

    Multi-class: $\arg\max_k h_1(x_i)_k = y_i$. Binary: $[q_1(x_i) \ge \text{pivot}] = y_i$ with
    $q_1 = \sigma(z_1)$ (or $h_1$'s probability when `output="probabilities"`).

    Args:
        h1_output: $h_1$'s output, shaped as in `base_loss`.
        target: The labels, as in `base_loss`.
        loss: One of `LOSSES`.
        discriminant_pivot: Probability threshold of the binary losses.
        output: `"logits"` or `"probabilities"`.
    """
    check_choice("loss", loss, LOSSES)
    check_choice("output", output, OUTPUTS)
    h1_output = h1_output.detach()
    if loss == "binary_cross_entropy":
        pivot = check_probability("discriminant_pivot", discriminant_pivot)
        column = binary_column("h1_output", h1_output)
        labels = binary_column("target", target)
        check_batch("target", labels, column.shape[0], "h1_output")
        probability = column if output == "probabilities" else torch.sigmoid(upcast(column))
        predicted = (probability >= pivot).to(upcast(column).dtype)
        return predicted == labels.to(predicted.dtype)
    check_multiclass("h1_output", h1_output, target)
    return h1_output.argmax(dim=1) == target


def imitation_divergence(
    h2_output: Tensor,
    h1_output: Tensor,
    loss: str,
    temperature: float = 1.0,
    output: str = "logits",
) -> Tensor:
    r"""Per-sample strict-imitation divergence $d_i$ from $h_1$'s soft output to $h_2$'s.

    With $p^{(j)} = \mathrm{softmax}(z_j / T)$ and $q_j = \sigma(z_j / T)$:
    NLL and cross-entropy $d_i = -\sum_k p^{(1)}_{ik} \log p^{(2)}_{ik}$; binary cross-entropy
    $d_i = -[q_{1i} \log q_{2i} + (1 - q_{1i}) \log(1 - q_{2i})]$; KL
    $d_i = \sum_k p^{(1)}_{ik} (\log p^{(1)}_{ik} - \log p^{(2)}_{ik})$. All in log space, so
    logits of $\pm 10^4$ stay finite. $h_1$'s output is detached.
    """
    check_choice("loss", loss, LOSSES)
    check_choice("output", output, OUTPUTS)
    temperature = check_positive("temperature", temperature)
    h1_output = h1_output.detach()
    if loss == "binary_cross_entropy":
        log_q1, _ = log_sigmoids(binary_column("h1_output", h1_output), output, temperature)
        q1 = log_q1.exp()
        log_q2, log_not_q2 = log_sigmoids(
            binary_column("h2_output", h2_output), output, temperature
        )
        return -(q1 * log_q2 + (1.0 - q1) * log_not_q2)
    log_p1 = log_probs(h1_output, output, temperature)
    log_p2 = log_probs(h2_output, output, temperature)
    p1 = log_p1.exp()
    if loss == "kl_div":
        return (p1 * (log_p1 - log_p2)).sum(dim=-1)
    return -(p1 * log_p2).sum(dim=-1)


def bc_loss_terms(
    h2_output: Tensor,
    h1_output: Tensor,
    target: Tensor,
    loss: str,
    lambda_c: float,
    strict_imitation: bool = False,
    temperature: float = 1.0,
    focal_alpha: float = 0.0,
    discriminant_pivot: float = 0.5,
    output: str = "logits",
) -> tuple[Tensor, Tensor]:
    r"""Per-sample base loss $\ell_i$ and weighted dissonance $\lambda_c w_i d_i$, each `(B,)`.

    The one place the objective of this module is assembled; the regularizers reduce the second
    term, the loss classes of `clarena.losses` reduce their sum. For new-error $d_i = \ell_i$ is
    reused, not recomputed.
    """
    lambda_c = check_nonnegative("lambda_c", lambda_c)
    focal_alpha = check_nonnegative("focal_alpha", focal_alpha)
    _validate(h2_output, h1_output, target, loss, output)
    ell = base_loss(h2_output, target, loss, output)
    in_support = support_mask(h1_output, target, loss, discriminant_pivot, output).to(ell.dtype)
    if strict_imitation:
        d = imitation_divergence(h2_output, h1_output, loss, temperature, output)
        weight = in_support + focal_alpha * (1.0 - in_support) if focal_alpha else in_support
    else:
        d, weight = ell, in_support
    return ell, lambda_c * weight * d


def new_error_dissonance(
    h2_output: Tensor,
    h1_output: Tensor,
    target: Tensor,
    loss: str,
    lambda_c: float,
    reduction: str = "mean",
    discriminant_pivot: float = 0.5,
    output: str = "logits",
) -> Tensor:
    r"""New-error dissonance $\lambda_c \cdot \mathrm{reduce}_i(1[i \in S]\, \ell(h_2(x_i), y_i))$.

    Args:
        h2_output: Output of the model being trained, `(B, K)` (or `(B,)`/`(B, 1)` for binary).
        h1_output: Output of the frozen reference model, same shape (detached here).
        target: Labels: integer indices `(B,)`, or 0/1 labels for binary.
        loss: One of `LOSSES`.
        lambda_c: Strength $\lambda_c$, finite and `>= 0`.
        reduction: `"mean"` (divide by $B$), `"sum"` or `"none"`.
        discriminant_pivot: Probability threshold of the binary support.
        output: `"logits"` or `"probabilities"`.
    """
    reduction = check_reduction(reduction)
    _, dissonance = bc_loss_terms(
        h2_output, h1_output, target, loss, lambda_c, False, 1.0, 0.0, discriminant_pivot, output
    )
    return reduce(dissonance, reduction)


def strict_imitation_dissonance(
    h2_output: Tensor,
    h1_output: Tensor,
    target: Tensor,
    loss: str,
    lambda_c: float,
    temperature: float = 1.0,
    focal_alpha: float = 0.0,
    reduction: str = "mean",
    discriminant_pivot: float = 0.5,
    output: str = "logits",
) -> Tensor:
    r"""Strict-imitation dissonance $\lambda_c \cdot \mathrm{reduce}_i(w_i d_i)$.

    $w_i = 1[i \in S] + \alpha 1[i \notin S]$ and $d_i$ is `imitation_divergence`.

    Args:
        h2_output: Output of the model being trained.
        h1_output: Output of the frozen reference model (detached here).
        target: Labels (they define the support only; the divergence uses $h_1$'s soft output).
        loss: One of `LOSSES`.
        lambda_c: Strength $\lambda_c$, finite and `>= 0`.
        temperature: Softmax / sigmoid temperature $T > 0$ of both outputs.
        focal_alpha: Weight $\alpha \ge 0$ of the divergence outside the support.
        reduction: `"mean"`, `"sum"` or `"none"`.
        discriminant_pivot: Probability threshold of the binary support.
        output: `"logits"` or `"probabilities"`.
    """
    reduction = check_reduction(reduction)
    _, dissonance = bc_loss_terms(
        h2_output,
        h1_output,
        target,
        loss,
        lambda_c,
        True,
        temperature,
        focal_alpha,
        discriminant_pivot,
        output,
    )
    return reduce(dissonance, reduction)


class BCNewErrorReg(nn.Module):
    """New-error dissonance as a module; `forward` is `new_error_dissonance`.

    Args:
        loss: One of `LOSSES`.
        lambda_c: Strength, finite and `>= 0`.
        reduction: `"mean"`, `"sum"` or `"none"`.
        discriminant_pivot: Probability threshold of the binary support, in $[0, 1]$.
        output: `"logits"` or `"probabilities"`.
    """

    def __init__(
        self,
        loss: str,
        lambda_c: float,
        reduction: str = "mean",
        discriminant_pivot: float = 0.5,
        output: str = "logits",
    ) -> None:
        super().__init__()
        self.loss = check_choice("loss", loss, LOSSES)
        self.lambda_c = check_nonnegative("lambda_c", lambda_c)
        self.reduction = check_reduction(reduction)
        self.discriminant_pivot = check_probability("discriminant_pivot", discriminant_pivot)
        self.output = check_choice("output", output, OUTPUTS)

    def forward(self, h2_output: Tensor, h1_output: Tensor, target: Tensor) -> Tensor:
        """The dissonance of `h2_output` against `h1_output` on `target`."""
        return new_error_dissonance(
            h2_output,
            h1_output,
            target,
            self.loss,
            self.lambda_c,
            self.reduction,
            self.discriminant_pivot,
            self.output,
        )


class StrictImitationReg(nn.Module):
    """Strict-imitation dissonance as a module; `forward` is `strict_imitation_dissonance`.

    Args:
        loss: One of `LOSSES`.
        lambda_c: Strength, finite and `>= 0`.
        temperature: Temperature $T > 0$ of both soft outputs.
        focal_alpha: Weight $\\alpha \\ge 0$ outside the support (PCT focal distillation).
        reduction: `"mean"`, `"sum"` or `"none"`.
        discriminant_pivot: Probability threshold of the binary support, in $[0, 1]$.
        output: `"logits"` or `"probabilities"`.
    """

    def __init__(
        self,
        loss: str,
        lambda_c: float,
        temperature: float = 1.0,
        focal_alpha: float = 0.0,
        reduction: str = "mean",
        discriminant_pivot: float = 0.5,
        output: str = "logits",
    ) -> None:
        super().__init__()
        self.loss = check_choice("loss", loss, LOSSES)
        self.lambda_c = check_nonnegative("lambda_c", lambda_c)
        self.temperature = check_positive("temperature", temperature)
        self.focal_alpha = check_nonnegative("focal_alpha", focal_alpha)
        self.reduction = check_reduction(reduction)
        self.discriminant_pivot = check_probability("discriminant_pivot", discriminant_pivot)
        self.output = check_choice("output", output, OUTPUTS)

    def forward(self, h2_output: Tensor, h1_output: Tensor, target: Tensor) -> Tensor:
        """The dissonance of `h2_output` against `h1_output`'s soft output."""
        return strict_imitation_dissonance(
            h2_output,
            h1_output,
            target,
            self.loss,
            self.lambda_c,
            self.temperature,
            self.focal_alpha,
            self.reduction,
            self.discriminant_pivot,
            self.output,
        )
