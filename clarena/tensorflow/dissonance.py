r"""The backward-compatibility math in TensorFlow: support, base losses, divergences, objective.

Everything the Keras models (`clarena.tensorflow.models`), the loss classes
(`clarena.tensorflow.losses`) and `clarena.tensorflow.tf_helpers.bc_fit` compute goes through
these functions, so the formulas of SPEC §2 exist once on the TensorFlow side, as they do in
`clarena.cl_algorithms.regularizers` on the PyTorch side.

With $B$ the batch size and $S$ the *support*, the samples the reference model $h_1$ classifies
correctly, the objective is

$$L = \frac{1}{B} \sum_{i=1}^{B} \Big[\ell\big(h_2(x_i), y_i\big)
      + \lambda_c \, w_i \, d_i\Big], \qquad
  w_i = \mathbb{1}[i \in S] + \alpha \, \mathbb{1}[i \notin S],$$

where $\ell$ is the underlying loss, $\alpha$ the `focal_alpha` weight ($0$ by default) and $d_i$
the dissonance: $\ell$ itself for the *new-error* losses (Srivastava, Nushi, Kamar, Shah and
Horvitz, "An Empirical Analysis of Backward Compatibility in Machine Learning Systems", KDD 2020),
or a divergence from $h_1$'s soft output to $h_2$'s for *strict imitation*:

- NLL and cross-entropy: $d_i = -\sum_k p^{(1)}_{ik} \log p^{(2)}_{ik}$,
- binary cross-entropy:
  $d_i = -\big[q^{(1)}_i \log q^{(2)}_i + (1 - q^{(1)}_i)\log(1 - q^{(2)}_i)\big]$,
- KL divergence: $d_i = \sum_k p^{(1)}_{ik} \big(\log p^{(1)}_{ik} - \log p^{(2)}_{ik}\big)$,

with both distributions softened by a temperature $T$ ($p = \mathrm{softmax}(z / T)$,
$q = \sigma(z / T)$). Strict imitation with $\alpha > 0$ is the focal distillation of
Positive-Congruent Training (Yan et al., CVPR 2021).

Keras models end in a softmax (or a sigmoid) by convention, so model outputs are probabilities
unless `from_logits=True`. Logarithms of probabilities are taken after clipping to the smallest
positive float32, so every value here is finite, and an empty support gives $d = 0$ with finite
gradients.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

#: Underlying losses: negative log-likelihood, cross-entropy, binary cross-entropy, KL divergence.
LOSS_KINDS = ("nll", "cross_entropy", "binary_cross_entropy", "kl_div")
#: Reductions over the batch, applied to the base loss and the dissonance alike.
REDUCTIONS = ("mean", "sum", "none")

_TINY = float(np.finfo(np.float32).tiny)


def _as_float(output: tf.Tensor) -> tf.Tensor:
    output = tf.convert_to_tensor(output)
    return output if output.dtype == tf.float32 else tf.cast(output, tf.float32)


def _safe_log(probabilities: tf.Tensor) -> tf.Tensor:
    return tf.math.log(tf.clip_by_value(probabilities, _TINY, 1.0))


def log_probabilities(output: tf.Tensor, from_logits: bool, temperature: float = 1.0) -> tf.Tensor:
    """Log-softmax of a multi-class output `(B, K)`, softened by `temperature`.

    Args:
        output: Probabilities (rows summing to one) or, with `from_logits=True`, logits.
        from_logits: Whether `output` holds logits.
        temperature: $T > 0$; the result is $\\log\\mathrm{softmax}(z / T)$ (for probabilities,
            $z = \\log p$).

    Returns:
        The log-probabilities `(B, K)`, finite everywhere.
    """
    output = _as_float(output)
    if output.shape.rank != 2:
        raise ValueError(
            f"expected a model output of shape (batch, classes), got shape {output.shape}; "
            "flatten extra dimensions in the model"
        )
    if from_logits:
        return tf.nn.log_softmax(output / temperature if temperature != 1.0 else output, axis=-1)
    log_p = _safe_log(output)
    if temperature == 1.0:
        return log_p
    return tf.nn.log_softmax(log_p / temperature, axis=-1)


def binary_logits(output: tf.Tensor, from_logits: bool) -> tf.Tensor:
    """One logit per sample `(B,)` from a binary output `(B,)` or `(B, 1)`.

    Args:
        output: Sigmoid probabilities or, with `from_logits=True`, logits.
        from_logits: Whether `output` holds logits.

    Returns:
        $z$ with $\\sigma(z)$ the probability (probabilities are clipped into $(0, 1)$ first).
    """
    output = _as_float(output)
    if output.shape.rank == 2 and output.shape[-1] == 1:
        output = output[:, 0]
    if output.shape.rank != 1:
        raise ValueError(
            f"binary losses take one output per sample, shape (batch,) or (batch, 1), got "
            f"{output.shape}; use the multi-class losses for several outputs"
        )
    if from_logits:
        return output
    return _safe_log(output) - _safe_log(1.0 - output)


def class_indices(labels: tf.Tensor, num_classes: int | None) -> tf.Tensor:
    """Integer class indices `(B,)` from sparse `(B,)`/`(B, 1)` or one-hot `(B, K)` labels.

    Args:
        labels: Sparse labels (integers, or floats holding integers) or one-hot rows.
        num_classes: $K$, the width of the model output; one-hot labels must have it.

    Returns:
        An `int32` tensor `(B,)`.
    """
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2 and labels.shape[-1] is not None and labels.shape[-1] > 1:
        if num_classes is not None and labels.shape[-1] != num_classes:
            raise ValueError(
                f"one-hot labels have {labels.shape[-1]} columns but the model outputs "
                f"{num_classes} classes; make them agree"
            )
        return tf.argmax(labels, axis=-1, output_type=tf.int32)
    if labels.shape.rank == 2:
        labels = labels[:, 0]
    if labels.shape.rank != 1:
        raise ValueError(
            f"labels must be sparse (batch,) or one-hot (batch, classes), got shape {labels.shape}"
        )
    if labels.dtype.is_bool or labels.dtype == tf.string:
        raise ValueError(f"labels must be numbers, got dtype {labels.dtype.name}")
    return tf.cast(labels, tf.int32)


def binary_targets(labels: tf.Tensor) -> tf.Tensor:
    """Float targets `(B,)` in $\\{0, 1\\}$ from binary labels `(B,)` or `(B, 1)`."""
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2 and labels.shape[-1] == 1:
        labels = labels[:, 0]
    if labels.shape.rank != 1:
        raise ValueError(
            f"binary labels must have shape (batch,) or (batch, 1), got shape {labels.shape}"
        )
    return tf.cast(labels, tf.float32)


def check_batch(output: tf.Tensor, labels: tf.Tensor, name: str = "h2") -> None:
    """Refuse outputs and labels whose (statically known) batch sizes differ."""
    b_out, b_lab = output.shape[0], tf.convert_to_tensor(labels).shape[0]
    if b_out is not None and b_lab is not None and b_out != b_lab:
        raise ValueError(
            f"{name}'s output has batch size {b_out} but the labels have {b_lab}; pass the "
            "labels of the same batch"
        )


def predicted_labels(
    output: tf.Tensor, *, binary: bool, from_logits: bool = False, discriminant_pivot: float = 0.5
) -> tf.Tensor:
    """The hard decision `(B,)` (`int32`): argmax, or for binary outputs probability ≥ pivot."""
    if not binary:
        return tf.argmax(_as_float(output), axis=-1, output_type=tf.int32)
    if from_logits:
        probability = tf.sigmoid(binary_logits(output, from_logits=True))
    else:
        probability = _as_float(output)
        if probability.shape.rank == 2:
            probability = probability[:, 0]
    return tf.cast(probability >= discriminant_pivot, tf.int32)


def support_mask(
    h1_output: tf.Tensor,
    labels: tf.Tensor,
    *,
    binary: bool,
    from_logits: bool = False,
    discriminant_pivot: float = 0.5,
) -> tf.Tensor:
    """$\\mathbb{1}[i \\in S]$ as a float32 tensor `(B,)`: where $h_1$'s decision equals the label.

    Args:
        h1_output: The reference model's output.
        labels: Sparse or one-hot labels (multi-class), or 0/1 labels (binary).
        binary: Whether the output is one sigmoid/logit per sample.
        from_logits: Whether `h1_output` holds logits (matters for the binary pivot only).
        discriminant_pivot: The probability threshold of a positive binary decision.
    """
    decision = predicted_labels(
        h1_output, binary=binary, from_logits=from_logits, discriminant_pivot=discriminant_pivot
    )
    if binary:
        target = tf.cast(binary_targets(labels), tf.int32)
    else:
        target = class_indices(labels, h1_output.shape[-1])
    return tf.cast(tf.equal(decision, target), tf.float32)


def base_loss(kind: str, output: tf.Tensor, labels: tf.Tensor, from_logits: bool) -> tf.Tensor:
    """The underlying per-sample loss $\\ell_i$ `(B,)`.

    For NLL, cross-entropy and KL divergence $\\mathrm{KL}(\\mathrm{onehot}(y) \\| p)$ this is
    $-\\log p_{i, y_i}$; for binary cross-entropy
    $-\\big[y_i \\log q_i + (1 - y_i) \\log(1 - q_i)\\big]$.
    """
    if kind == "binary_cross_entropy":
        return tf.nn.sigmoid_cross_entropy_with_logits(
            labels=binary_targets(labels), logits=binary_logits(output, from_logits)
        )
    log_p = log_probabilities(output, from_logits)
    target = class_indices(labels, log_p.shape[-1])
    return -tf.gather(log_p, target, axis=1, batch_dims=1)


def soft_divergence(
    kind: str,
    h2_output: tf.Tensor,
    h1_output: tf.Tensor,
    from_logits: bool,
    temperature: float = 1.0,
) -> tf.Tensor:
    """The strict-imitation divergence $d_i$ `(B,)` from $h_1$'s soft output to $h_2$'s.

    Cross-entropy for `"nll"` and `"cross_entropy"`, binary cross-entropy against $h_1$'s
    probability for `"binary_cross_entropy"`, $\\mathrm{KL}(p^{(1)} \\| p^{(2)})$ for `"kl_div"`,
    all at temperature $T$. $h_1$'s side never receives a gradient.
    """
    if kind == "binary_cross_entropy":
        z2 = binary_logits(h2_output, from_logits) / temperature
        q1 = tf.stop_gradient(tf.sigmoid(binary_logits(h1_output, from_logits) / temperature))
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=q1, logits=z2)
    log_p2 = log_probabilities(h2_output, from_logits, temperature)
    log_p1 = tf.stop_gradient(log_probabilities(h1_output, from_logits, temperature))
    p1 = tf.exp(log_p1)
    if kind == "kl_div":
        return tf.reduce_sum(p1 * (log_p1 - log_p2), axis=-1)
    return -tf.reduce_sum(p1 * log_p2, axis=-1)


def reduce(values: tf.Tensor, reduction: str) -> tf.Tensor:
    """Apply `"mean"`, `"sum"` or `"none"` over the batch."""
    if reduction == "mean":
        return tf.reduce_mean(values)
    if reduction == "sum":
        return tf.reduce_sum(values)
    return values


def bc_objective(
    base: tf.Tensor,
    dissonance: tf.Tensor,
    support: tf.Tensor,
    lambda_c: float,
    *,
    focal_alpha: float = 0.0,
    sample_weight: tf.Tensor | None = None,
    reduction: str = "mean",
) -> tf.Tensor:
    """$L$ from per-sample base losses, dissonances and the support mask (module docstring).

    Args:
        base: $\\ell_i$, shape `(B,)`.
        dissonance: $d_i$, shape `(B,)`.
        support: $\\mathbb{1}[i \\in S]$ as floats, shape `(B,)`.
        lambda_c: $\\lambda_c \\ge 0$.
        focal_alpha: $\\alpha \\ge 0$, the weight of the dissonance outside the support.
        sample_weight: Optional per-sample weights multiplying each bracket.
        reduction: `"mean"` (divide by $B$), `"sum"` or `"none"` (the brackets, shape `(B,)`).
    """
    weight = support if focal_alpha == 0.0 else support + focal_alpha * (1.0 - support)
    per_sample = base + lambda_c * weight * dissonance
    if sample_weight is not None:
        per_sample = per_sample * tf.reshape(_as_float(sample_weight), [-1])
    return reduce(per_sample, reduction)


def bc_loss(
    h2_output: tf.Tensor,
    h1_output: tf.Tensor,
    y: tf.Tensor,
    base: tf.Tensor,
    divergence: tf.Tensor | None,
    lambda_c: float,
    *,
    binary: bool,
    from_logits: bool,
    discriminant_pivot: float = 0.5,
    focal_alpha: float = 0.0,
    sample_weight: tf.Tensor | None = None,
    reduction: str = "mean",
) -> tf.Tensor:
    """The whole objective $L$ of one batch, assembled once for the Keras models and the loss
    classes: check the batch, take the support of h1, and weigh the dissonance — the base loss
    itself (new error, `divergence=None`) or a divergence from h1 (strict imitation).

    Args:
        h2_output: $h_2$'s output, `(B, K)` (or `(B,)`/`(B, 1)` for a binary model).
        h1_output: $h_1$'s output on the same batch (no gradient flows into it).
        y: The labels: sparse or one-hot (multi-class), 0/1 (binary).
        base: $\\ell_i$, shape `(B,)`.
        divergence: $d_i$ of strict imitation, shape `(B,)`, or None for the new-error loss.
        lambda_c: $\\lambda_c \\ge 0$.
        binary: Whether the models output one probability (or logit) per sample.
        from_logits: Whether the outputs are logits.
        discriminant_pivot: The threshold of a positive binary decision.
        focal_alpha: $\\alpha \\ge 0$.
        sample_weight: Optional per-sample weights of the brackets.
        reduction: `"mean"`, `"sum"` or `"none"`.
    """
    check_batch(h2_output, y, "h2")
    check_batch(h1_output, y, "h1")
    support = support_mask(
        h1_output,
        y,
        binary=binary,
        from_logits=from_logits,
        discriminant_pivot=discriminant_pivot,
    )
    return bc_objective(
        base,
        base if divergence is None else divergence,
        support,
        lambda_c,
        focal_alpha=focal_alpha,
        sample_weight=sample_weight,
        reduction=reduction,
    )


def check_options(
    lambda_c: float,
    *,
    reduction: str = "mean",
    temperature: float = 1.0,
    focal_alpha: float = 0.0,
    discriminant_pivot: float = 0.5,
) -> None:
    """Refuse option values outside their domain with a one-line `ValueError`."""
    if isinstance(lambda_c, bool) or not isinstance(lambda_c, (int, float)):
        raise ValueError(f"lambda_c must be a number, got {type(lambda_c).__name__}")
    if not math.isfinite(lambda_c) or lambda_c < 0:
        raise ValueError(f"lambda_c must be finite and >= 0, got {lambda_c}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be finite and > 0, got {temperature}")
    if not math.isfinite(focal_alpha) or focal_alpha < 0:
        raise ValueError(f"focal_alpha must be finite and >= 0, got {focal_alpha}")
    if not 0.0 <= discriminant_pivot <= 1.0:
        raise ValueError(f"discriminant_pivot must lie in [0, 1], got {discriminant_pivot}")
