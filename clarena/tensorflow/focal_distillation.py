r"""Focal distillation (FD-KL, FD-LM) in TensorFlow, the twin of the PyTorch regularizers.

From Yan et al., *Positive-Congruent Training: Towards Regression-Free Model Updates* (CVPR 2021);
the same math as `clarena.cl_algorithms.regularizers.focal_distillation`, with equal values. With
$z_1, z_2$ the logits of the reference model $h_1$ and of the model being trained $h_2$,

$$ R = \frac{\lambda}{B} \sum_{i=1}^{B} \big(\alpha + \beta \, \mathbb{1}[\hat y_1(x_i) = y_i]\big)
  \, d_i, $$

with $d_i = \mathrm{KL}(\mathrm{softmax}(z_1 / T) \| \mathrm{softmax}(z_2 / T))$ for FD-KL and
$d_i = \frac{1}{2} \sum_{k} (z_{2, ik} - z_{1, ik})^2$ for FD-LM, leaving out the classes whose
$h_1$ logit is padding ($\le -5000$: `PAD_LOGIT` $= -10^4$ marks a class $h_1$ never saw).

The functions take logits (FD-KL also takes probabilities, `from_logits=False`). The loss classes
`FocalDistillationKLLoss` and `FocalDistillationLMLoss` add the cross-entropy of $h_2$,
$L = \frac{1}{B} \sum_i \ell_i + R$, and work with `clarena.tensorflow.tf_helpers.bc_fit` like the
other losses of `clarena.tensorflow.losses`.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from clarena.tensorflow import dissonance as bcm
from clarena.tensorflow.losses import BackwardCompatibilityLoss, main_output

#: The logit of a class the reference model has no output for (as `clarena.heads.PAD_LOGIT`).
PAD_LOGIT = -1.0e4


def _check_weights(**values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a real number; got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and >= 0; got {value!r}")


def focal_weight(h1_output: tf.Tensor, labels: tf.Tensor, alpha: float, beta: float) -> tf.Tensor:
    """$w_i = \\alpha + \\beta \\, \\mathbb{1}[\\arg\\max_k h_1(x_i)_k = y_i]$, float32 `(B,)`."""
    _check_weights(alpha=alpha, beta=beta)
    support = bcm.support_mask(tf.stop_gradient(h1_output), labels, binary=False)
    return alpha + beta * support


def kl_divergence(
    h2_output: tf.Tensor, h1_output: tf.Tensor, temperature: float = 1.0, from_logits: bool = True
) -> tf.Tensor:
    """Per-sample $\\mathrm{KL}(p^{(1)} \\| p^{(2)})$ at temperature $T$, `(B,)`."""
    log_p2 = bcm.log_probabilities(h2_output, from_logits, temperature)
    log_p1 = tf.stop_gradient(bcm.log_probabilities(h1_output, from_logits, temperature))
    return tf.reduce_sum(tf.exp(log_p1) * (log_p1 - log_p2), axis=-1)


def logit_matching(h2_output: tf.Tensor, h1_output: tf.Tensor) -> tf.Tensor:
    """Per-sample $\\frac{1}{2} \\sum_k (z_2 - z_1)^2$ over the classes $h_1$ has, `(B,)`."""
    z1 = tf.stop_gradient(tf.cast(h1_output, tf.float32))
    z2 = tf.cast(h2_output, tf.float32)
    known = tf.cast(z1 > PAD_LOGIT / 2, tf.float32)
    return 0.5 * tf.reduce_sum(known * tf.square(z2 - z1), axis=-1)


def _prepare(h2_output: Any, h1_output: Any, labels: Any, lambda_c: float, reduction: str) -> None:
    bcm.check_options(lambda_c, reduction=reduction)
    if tuple(h1_output.shape) != tuple(h2_output.shape):
        raise ValueError(
            f"h1's output has shape {tuple(h1_output.shape)} but h2's has "
            f"{tuple(h2_output.shape)}; both models must output the same classes"
        )
    bcm.check_batch(h2_output, labels, "h2")


def focal_distillation_kl(
    h2_output: tf.Tensor,
    h1_output: tf.Tensor,
    labels: tf.Tensor,
    lambda_c: float,
    alpha: float = 1.0,
    beta: float = 5.0,
    temperature: float = 1.0,
    reduction: str = "mean",
    from_logits: bool = True,
) -> tf.Tensor:
    """FD-KL, $\\lambda \\cdot \\mathrm{reduce}_i(w_i \\mathrm{KL}_i)$ (the module docstring).

    Args:
        h2_output: $h_2$'s logits `(B, K)` (probabilities with `from_logits=False`).
        h1_output: $h_1$'s output, the same way (no gradient flows into it).
        labels: Sparse `(B,)` or one-hot `(B, K)` labels; they define the filter only.
        lambda_c: $\\lambda \\ge 0$.
        alpha: $\\alpha \\ge 0$.
        beta: $\\beta \\ge 0$.
        temperature: $T > 0$.
        reduction: `"mean"`, `"sum"` or `"none"`.
        from_logits: Whether the outputs are logits.
    """
    h2_output, h1_output = tf.convert_to_tensor(h2_output), tf.convert_to_tensor(h1_output)
    _prepare(h2_output, h1_output, labels, lambda_c, reduction)
    bcm.check_options(lambda_c, temperature=temperature)
    weight = focal_weight(h1_output, labels, alpha, beta)
    divergence = kl_divergence(h2_output, h1_output, temperature, from_logits)
    return bcm.reduce(lambda_c * weight * divergence, reduction)


def focal_distillation_lm(
    h2_output: tf.Tensor,
    h1_output: tf.Tensor,
    labels: tf.Tensor,
    lambda_c: float,
    alpha: float = 1.0,
    beta: float = 5.0,
    reduction: str = "mean",
) -> tf.Tensor:
    """FD-LM, $\\lambda \\cdot \\mathrm{reduce}_i(w_i \\frac{1}{2} \\|z_2 - z_1\\|^2)$ on logits.

    Args:
        h2_output: $h_2$'s logits `(B, K)`.
        h1_output: $h_1$'s logits (no gradient flows into them).
        labels: Sparse `(B,)` or one-hot `(B, K)` labels; they define the filter only.
        lambda_c: $\\lambda \\ge 0$.
        alpha: $\\alpha \\ge 0$.
        beta: $\\beta \\ge 0$.
        reduction: `"mean"`, `"sum"` or `"none"`.
    """
    h2_output, h1_output = tf.convert_to_tensor(h2_output), tf.convert_to_tensor(h1_output)
    _prepare(h2_output, h1_output, labels, lambda_c, reduction)
    weight = focal_weight(h1_output, labels, alpha, beta)
    return bcm.reduce(lambda_c * weight * logit_matching(h2_output, h1_output), reduction)


class _FocalDistillationLoss(BackwardCompatibilityLoss):
    """Cross-entropy of $h_2$ plus focal distillation towards $h_1$ (multi-class models)."""

    kind, strict = "cross_entropy", True

    def __init__(
        self,
        h1: keras.Model,
        h2: keras.Model,
        lambda_c: float,
        *,
        alpha: float = 1.0,
        beta: float = 5.0,
        reduction: str = "mean",
        temperature: float = 1.0,
        from_logits: bool = False,
    ) -> None:
        super().__init__(
            h1, h2, lambda_c, reduction=reduction, temperature=temperature, from_logits=from_logits
        )
        _check_weights(alpha=alpha, beta=beta)
        self.alpha, self.beta = float(alpha), float(beta)

    def regularizer(self, h2_output: tf.Tensor, h1_output: tf.Tensor, y: Any) -> tf.Tensor:
        """Per-sample $\\lambda w_i d_i$, `(B,)`."""
        raise NotImplementedError

    def compute(
        self,
        h2_output: Any,
        h1_output: Any,
        y: Any,
        *,
        reduction: str | None = None,
        sample_weight: Any = None,
    ) -> tf.Tensor:
        """$\\ell_i + \\lambda w_i d_i$, reduced (see `BackwardCompatibilityLoss.compute`)."""
        h2_output = main_output(h2_output, self.from_logits)
        h1_output = tf.stop_gradient(main_output(h1_output, self.from_logits))
        bcm.check_batch(h2_output, y, "h2")
        bcm.check_batch(h1_output, y, "h1")
        per_sample = bcm.base_loss(self.kind, h2_output, y, self.from_logits) + self.regularizer(
            h2_output, h1_output, y
        )
        if sample_weight is not None:
            per_sample = per_sample * tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
        return bcm.reduce(per_sample, reduction or self.reduction)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(lambda_c={self.lambda_c}, alpha={self.alpha}, "
            f"beta={self.beta}, reduction={self.reduction!r})"
        )


class FocalDistillationKLLoss(_FocalDistillationLoss):
    """Cross-entropy plus FD-KL: `FocalDistillationKLLoss(h1, h2, lambda_c, alpha=1, beta=5)`.

    Models output probabilities by default (Keras convention); `from_logits=True` for logits.
    """

    def regularizer(self, h2_output: tf.Tensor, h1_output: tf.Tensor, y: Any) -> tf.Tensor:
        """Per-sample $\\lambda w_i \\mathrm{KL}_i$."""
        return focal_distillation_kl(
            h2_output,
            h1_output,
            y,
            self.lambda_c,
            self.alpha,
            self.beta,
            self.temperature,
            "none",
            self.from_logits,
        )


class FocalDistillationLMLoss(_FocalDistillationLoss):
    """Cross-entropy plus FD-LM: `FocalDistillationLMLoss(h1, h2, lambda_c, from_logits=True)`.

    Logit matching needs logits: build the models without a final softmax and pass
    `from_logits=True`.
    """

    def __init__(self, h1: keras.Model, h2: keras.Model, lambda_c: float, **options: Any) -> None:
        if not options.get("from_logits", False):
            raise ValueError(
                "FocalDistillationLMLoss matches logits: build h1 and h2 without a final softmax "
                "and pass from_logits=True"
            )
        if options.get("temperature", 1.0) != 1.0:
            raise ValueError("FocalDistillationLMLoss takes no temperature (logit matching)")
        super().__init__(h1, h2, lambda_c, **options)

    def regularizer(self, h2_output: tf.Tensor, h1_output: tf.Tensor, y: Any) -> tf.Tensor:
        """Per-sample $\\lambda w_i \\frac{1}{2} \\|z_2 - z_1\\|^2$."""
        return focal_distillation_lm(
            h2_output, h1_output, y, self.lambda_c, self.alpha, self.beta, "none"
        )
