r"""Focal distillation (FD-KL, FD-LM): distillation towards $h_1$, weighted by $h_1$'s correctness.

From Yan, Xiong, Kundu, Yang, Deng, Zhu, Xia and Soatto, *Positive-Congruent Training: Towards
Regression-Free Model Updates* (CVPR 2021). The new model $h_2$ is distilled towards the frozen
old model $h_1$ with a per-sample weight that is larger where $h_1$ is right, so that $h_2$ keeps
$h_1$'s correct predictions (the negative flips are what is avoided) and is left freer where
$h_1$ is wrong. With $z_1, z_2$ the logits, $B$ the batch size and
$\hat y_1(x_i) = \arg\max_k z_{1, ik}$,

$$ R = \frac{\lambda}{B} \sum_{i=1}^{B} w_i \, d_i, \qquad
   w_i = \alpha + \beta \, 1[\hat y_1(x_i) = y_i], \qquad \alpha, \beta \ge 0, $$

- **FD-KL**: $d_i = \mathrm{KL}(p^{(1)}_i \,\|\, p^{(2)}_i)
  = \sum_k p^{(1)}_{ik} (\log p^{(1)}_{ik} - \log p^{(2)}_{ik})$ with
  $p^{(j)} = \mathrm{softmax}(z_j / T)$, in log space (finite for logits of $\pm 10^4$);
- **FD-LM** (logit matching): $d_i = \frac{1}{2} \sum_{k \in C} (z_{2, ik} - z_{1, ik})^2$
  over the classes $C = \{k : z_{1, ik} > \text{PAD\_LOGIT} / 2\}$: a class $h_1$ never saw (its
  logit padded with `clarena.heads.PAD_LOGIT`, probability 0, in class-incremental learning) has
  no logit to match and is left out. The temperature plays no part.

$\alpha = 0$ distils only on the samples $h_1$ classifies correctly; $\beta = 0$ is plain
distillation with weight $\alpha$ on every sample. `"mean"` is the formula above, `"sum"` is $B$
times it and `"none"` the per-sample values $\lambda w_i d_i$. $h_1$'s logits are detached (it
never receives a gradient) and nothing synchronises with the host (the filter is a multiplicative
mask), so the functions run under `torch.compile(fullgraph=True)`.
"""

from __future__ import annotations

from torch import Tensor, nn

from clarena.cl_algorithms.regularizers._common import (
    check_multiclass,
    check_nonnegative,
    check_positive,
    check_reduction,
    log_probs,
    reduce,
    upcast,
)
from clarena.heads import PAD_LOGIT

#: $h_1$ logits at or below this are padding (`PAD_LOGIT` is $-10^4$; half the value, so that its
#: bfloat16 rounding counts too): classes $h_1$ has no output for.
PADDED_BELOW: float = PAD_LOGIT / 2


def _validate(h2_output: Tensor, h1_output: Tensor, target: Tensor) -> None:
    if h1_output.shape != h2_output.shape:
        raise ValueError(
            f"h1_output has shape {tuple(h1_output.shape)} but h2_output has "
            f"{tuple(h2_output.shape)}; both models must give logits of the same classes"
        )
    check_multiclass("h2_output", h2_output, target)


def focal_weight(h1_output: Tensor, target: Tensor, alpha: float, beta: float) -> Tensor:
    r"""Per-sample weight $w_i = \alpha + \beta \, 1[\arg\max_k z_{1, ik} = y_i]$, shape `(B,)`.

    Args:
        h1_output: $h_1$'s logits `(B, K)` (detached here).
        target: Integer class indices `(B,)`.
        alpha: $\alpha \ge 0$, the weight of every sample.
        beta: $\beta \ge 0$, the extra weight of the samples $h_1$ classifies correctly.
    """
    alpha = check_nonnegative("alpha", alpha)
    beta = check_nonnegative("beta", beta)
    h1_output = h1_output.detach()
    check_multiclass("h1_output", h1_output, target)
    correct = (h1_output.argmax(dim=1) == target).to(upcast(h1_output).dtype)
    return alpha + beta * correct


def kl_divergence(h2_output: Tensor, h1_output: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Per-sample $\mathrm{KL}(\mathrm{softmax}(z_1 / T) \| \mathrm{softmax}(z_2 / T))$, `(B,)`."""
    temperature = check_positive("temperature", temperature)
    log_p1 = log_probs(h1_output.detach(), "logits", temperature)
    log_p2 = log_probs(h2_output, "logits", temperature)
    return (log_p1.exp() * (log_p1 - log_p2)).sum(dim=-1)


def logit_matching(h2_output: Tensor, h1_output: Tensor) -> Tensor:
    r"""Per-sample $\frac{1}{2} \sum_{k \in C} (z_{2, k} - z_{1, k})^2$, `(B,)`, without the classes
    whose $h_1$ logit is padding (at or below `PADDED_BELOW`)."""
    z1 = upcast(h1_output.detach())
    z2 = upcast(h2_output)
    known = (z1 > PADDED_BELOW).to(z2.dtype)
    return 0.5 * (known * (z2 - z1) ** 2).sum(dim=-1)


def focal_distillation_kl(
    h2_output: Tensor,
    h1_output: Tensor,
    target: Tensor,
    lambda_c: float,
    alpha: float = 1.0,
    beta: float = 5.0,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    r"""FD-KL: $\lambda \cdot \mathrm{reduce}_i\big((\alpha + \beta 1[\hat y_1 = y_i])\,
    \mathrm{KL}(p^{(1)}_i \| p^{(2)}_i)\big)$ (see the module docstring).

    Args:
        h2_output: Logits of the model being trained, `(B, K)`.
        h1_output: Logits of the frozen reference model, same shape (detached here).
        target: Integer class indices `(B,)`; they define the filter only.
        lambda_c: Strength $\lambda$, finite and `>= 0`.
        alpha: $\alpha \ge 0$.
        beta: $\beta \ge 0$.
        temperature: Softmax temperature $T > 0$ of both outputs.
        reduction: `"mean"` (divide by $B$), `"sum"` or `"none"`.

    Returns:
        A scalar (or `(B,)` with `"none"`), float32 for half-precision inputs.

    Raises:
        ValueError: On shapes that differ, non-integer targets, a negative $\lambda$, $\alpha$ or
            $\beta$, a non-positive temperature, or an unknown reduction.
    """
    lambda_c = check_nonnegative("lambda_c", lambda_c)
    reduction = check_reduction(reduction)
    _validate(h2_output, h1_output, target)
    weight = focal_weight(h1_output, target, alpha, beta)
    return reduce(lambda_c * weight * kl_divergence(h2_output, h1_output, temperature), reduction)


def focal_distillation_lm(
    h2_output: Tensor,
    h1_output: Tensor,
    target: Tensor,
    lambda_c: float,
    alpha: float = 1.0,
    beta: float = 5.0,
    reduction: str = "mean",
) -> Tensor:
    r"""FD-LM: $\lambda \cdot \mathrm{reduce}_i\big((\alpha + \beta 1[\hat y_1 = y_i])\,
    \frac{1}{2} \| z_{2, i} - z_{1, i} \|^2\big)$ (see the module docstring).

    Args:
        h2_output: Logits of the model being trained, `(B, K)`.
        h1_output: Logits of the frozen reference model, same shape (detached here).
        target: Integer class indices `(B,)`; they define the filter only.
        lambda_c: Strength $\lambda$, finite and `>= 0`.
        alpha: $\alpha \ge 0$.
        beta: $\beta \ge 0$.
        reduction: `"mean"` (divide by $B$), `"sum"` or `"none"`.

    Returns:
        A scalar (or `(B,)` with `"none"`), float32 for half-precision inputs.

    Raises:
        ValueError: On shapes that differ, non-integer targets, a negative $\lambda$, $\alpha$ or
            $\beta$, or an unknown reduction.
    """
    lambda_c = check_nonnegative("lambda_c", lambda_c)
    reduction = check_reduction(reduction)
    _validate(h2_output, h1_output, target)
    weight = focal_weight(h1_output, target, alpha, beta)
    return reduce(lambda_c * weight * logit_matching(h2_output, h1_output), reduction)


class FocalDistillationKLReg(nn.Module):
    """FD-KL as a module; `forward` is `focal_distillation_kl`.

    Args:
        lambda_c: Strength, finite and `>= 0`.
        alpha: Weight $\\alpha \\ge 0$ of every sample.
        beta: Extra weight $\\beta \\ge 0$ of the samples h1 classifies correctly.
        temperature: Softmax temperature $T > 0$.
        reduction: `"mean"`, `"sum"` or `"none"`.
    """

    def __init__(
        self,
        lambda_c: float,
        alpha: float = 1.0,
        beta: float = 5.0,
        temperature: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.lambda_c = check_nonnegative("lambda_c", lambda_c)
        self.alpha = check_nonnegative("alpha", alpha)
        self.beta = check_nonnegative("beta", beta)
        self.temperature = check_positive("temperature", temperature)
        self.reduction = check_reduction(reduction)

    def forward(self, h2_output: Tensor, h1_output: Tensor, target: Tensor) -> Tensor:
        """The FD-KL term of `h2_output` towards `h1_output` on `target`."""
        return focal_distillation_kl(
            h2_output,
            h1_output,
            target,
            self.lambda_c,
            self.alpha,
            self.beta,
            self.temperature,
            self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"lambda_c={self.lambda_c}, alpha={self.alpha}, beta={self.beta}, "
            f"temperature={self.temperature}"
        )


class FocalDistillationLMReg(nn.Module):
    """FD-LM (logit matching) as a module; `forward` is `focal_distillation_lm`.

    Args:
        lambda_c: Strength, finite and `>= 0`.
        alpha: Weight $\\alpha \\ge 0$ of every sample.
        beta: Extra weight $\\beta \\ge 0$ of the samples h1 classifies correctly.
        reduction: `"mean"`, `"sum"` or `"none"`.
    """

    def __init__(
        self, lambda_c: float, alpha: float = 1.0, beta: float = 5.0, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.lambda_c = check_nonnegative("lambda_c", lambda_c)
        self.alpha = check_nonnegative("alpha", alpha)
        self.beta = check_nonnegative("beta", beta)
        self.reduction = check_reduction(reduction)

    def forward(self, h2_output: Tensor, h1_output: Tensor, target: Tensor) -> Tensor:
        """The FD-LM term of `h2_output` towards `h1_output` on `target`."""
        return focal_distillation_lm(
            h2_output, h1_output, target, self.lambda_c, self.alpha, self.beta, self.reduction
        )

    def extra_repr(self) -> str:
        return f"lambda_c={self.lambda_c}, alpha={self.alpha}, beta={self.beta}"
