r"""The eight backward-compatibility losses for Keras models, with BackwardCompatibilityML's names.

Each is built as `loss_fn = BCCrossEntropyLoss(h1, h2, lambda_c)` from the frozen reference model
`h1` and the model being trained `h2`; `loss_fn(x, y)` runs both models once and returns

$$L = \frac{1}{B} \sum_{i=1}^{B} \Big[\ell\big(h_2(x_i), y_i\big)
      + \lambda_c \, \mathbb{1}[i \in S] \, d_i\Big]$$

with $S$ the samples $h_1$ classifies correctly (the math, and the strict-imitation divergences, are
in `clarena.tensorflow.dissonance`). The values equal those of the PyTorch classes of the same name
in `clarena.losses` on the same weights and batch.

Keras models end in a softmax (or a sigmoid for the binary losses) by convention, so the losses take
probabilities; pass `from_logits=True` for models that output logits. Train with
`clarena.tensorflow.tf_helpers.bc_fit`, or in your own `tf.GradientTape` loop.

The names the original TensorFlow package used stay available as aliases: `BCKLDivLoss` for
`BCKLDivergenceLoss`, and `BCStrictImitationNLLLoss`, `BCStrictImitationCrossEntropyLoss`,
`BCStrictImitationBinaryCrossEntropyLoss`, `BCStrictImitationKLDivLoss` for the strict-imitation
classes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import tensorflow as tf

from clarena.tensorflow import dissonance as bcm

__all__ = [
    "BCBinaryCrossEntropyLoss",
    "BCCrossEntropyLoss",
    "BCKLDivLoss",
    "BCKLDivergenceLoss",
    "BCNLLLoss",
    "BCStrictImitationBinaryCrossEntropyLoss",
    "BCStrictImitationCrossEntropyLoss",
    "BCStrictImitationKLDivLoss",
    "BCStrictImitationNLLLoss",
    "StrictImitationBinaryCrossEntropyLoss",
    "StrictImitationCrossEntropyLoss",
    "StrictImitationKLDivergenceLoss",
    "StrictImitationNLLLoss",
]


def check_keras_model(model: Any, name: str) -> None:
    """Refuse anything but a Keras model or layer as `h1`/`h2` (a one-line `TypeError`)."""
    if model is None:
        raise ValueError(f"{name} is required: pass a Keras model")
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            f"{name} must be a Keras model (keras.Model or keras.layers.Layer), got "
            f"{type(model).__name__}; PyTorch models belong with clarena.losses"
        )


def main_output(output: Any, from_logits: bool) -> tf.Tensor:
    """The tensor to use from a model output.

    A single tensor is used as is; the original library's triple `(logits, softmax, log_softmax)`
    gives its logits with `from_logits=True` and its softmax otherwise.
    """
    if isinstance(output, (tuple, list)):
        if len(output) != 3:
            raise ValueError(
                f"a model returning several outputs must return (logits, softmax, log_softmax), "
                f"got {len(output)} outputs"
            )
        return output[0] if from_logits else output[1]
    return output


class BackwardCompatibilityLoss:
    """Shared machinery of the eight losses: validation, the two forwards and the reduction.

    Args:
        h1: The reference model (frozen: it runs with `training=False` and gets no gradient).
        h2: The model being trained.
        lambda_c: $\\lambda_c \\ge 0$, the strength of the compatibility term.
        reduction: `"mean"` (default), `"sum"` ($B$ times the mean) or `"none"` (per sample).
        temperature: $T > 0$ of the strict-imitation divergences (strict imitation only).
        focal_alpha: $\\alpha \\ge 0$, the weight of the divergence outside the support
            (strict imitation only).
        discriminant_pivot: The probability at or above which a binary decision is positive.
        from_logits: Whether the models output logits (default: probabilities).
    """

    #: The underlying loss, one of `clarena.tensorflow.dissonance.LOSS_KINDS`.
    kind: ClassVar[str]
    #: Strict imitation (divergence to $h_1$'s soft output) or new-error (the loss again).
    strict: ClassVar[bool]

    def __init__(
        self,
        h1: keras.Model,
        h2: keras.Model,
        lambda_c: float,
        *,
        reduction: str = "mean",
        temperature: float = 1.0,
        focal_alpha: float = 0.0,
        discriminant_pivot: float = 0.5,
        from_logits: bool = False,
    ) -> None:
        check_keras_model(h1, "h1")
        check_keras_model(h2, "h2")
        if h1 is h2:
            raise ValueError("h1 and h2 are the same model; pass a frozen copy of the old model")
        bcm.check_options(
            lambda_c,
            reduction=reduction,
            temperature=temperature,
            focal_alpha=focal_alpha,
            discriminant_pivot=discriminant_pivot,
        )
        if not self.strict and (temperature != 1.0 or focal_alpha != 0.0):
            raise ValueError(
                f"{type(self).__name__} takes no temperature or focal_alpha (its dissonance is the "
                "loss itself); use the StrictImitation losses for a softened or focal divergence"
            )
        self.h1, self.h2 = h1, h2
        self.lambda_c = float(lambda_c)
        self.reduction = reduction
        self.temperature = float(temperature)
        self.focal_alpha = float(focal_alpha)
        self.discriminant_pivot = float(discriminant_pivot)
        self.from_logits = bool(from_logits)
        self.__name__ = type(self).__name__

    @property
    def binary(self) -> bool:
        """Whether the models output one probability (or logit) per sample."""
        return self.kind == "binary_cross_entropy"

    def __call__(self, x: Any, y: Any, training: bool = True) -> tf.Tensor:
        """Run $h_1$ (without gradient) and $h_2$ once each on `x` and return the loss."""
        h1_output = tf.stop_gradient(main_output(self.h1(x, training=False), self.from_logits))
        h2_output = self.h2(x, training=training)
        return self.compute(h2_output, h1_output, y)

    def compute(
        self,
        h2_output: Any,
        h1_output: Any,
        y: Any,
        *,
        reduction: str | None = None,
        sample_weight: Any = None,
    ) -> tf.Tensor:
        """The loss from outputs already computed (used by `bc_fit` to reuse its one forward).

        Args:
            h2_output: $h_2$'s output on the batch.
            h1_output: $h_1$'s output on the same batch.
            y: The labels: sparse or one-hot (multi-class), 0/1 (binary).
            reduction: Overrides the reduction chosen at construction.
            sample_weight: Optional per-sample weights of the brackets.
        """
        h2_output = main_output(h2_output, self.from_logits)
        h1_output = tf.stop_gradient(main_output(h1_output, self.from_logits))
        bcm.check_batch(h2_output, y, "h2")
        divergence = None
        if self.strict:
            divergence = bcm.soft_divergence(
                self.kind, h2_output, h1_output, self.from_logits, self.temperature
            )
        return bcm.bc_loss(
            h2_output,
            h1_output,
            y,
            bcm.base_loss(self.kind, h2_output, y, self.from_logits),
            divergence,
            self.lambda_c,
            binary=self.binary,
            from_logits=self.from_logits,
            discriminant_pivot=self.discriminant_pivot,
            focal_alpha=self.focal_alpha,
            sample_weight=sample_weight,
            reduction=reduction or self.reduction,
        )

    def predicted_labels(self, output: Any) -> tf.Tensor:
        """The hard decisions `(B,)` of a model output (argmax, or probability ≥ pivot)."""
        return bcm.predicted_labels(
            main_output(output, self.from_logits),
            binary=self.binary,
            from_logits=self.from_logits,
            discriminant_pivot=self.discriminant_pivot,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lambda_c={self.lambda_c}, reduction={self.reduction!r})"


class BCNLLLoss(BackwardCompatibilityLoss):
    """New-error loss over the negative log-likelihood $-\\log p_{y}$."""

    kind, strict = "nll", False


class BCCrossEntropyLoss(BackwardCompatibilityLoss):
    """New-error loss over the cross-entropy $-\\log \\mathrm{softmax}(z)_y$."""

    kind, strict = "cross_entropy", False


class BCBinaryCrossEntropyLoss(BackwardCompatibilityLoss):
    """New-error loss over the binary cross-entropy of one probability (or logit) per sample."""

    kind, strict = "binary_cross_entropy", False


class BCKLDivergenceLoss(BackwardCompatibilityLoss):
    """New-error loss over $\\mathrm{KL}(\\mathrm{onehot}(y) \\| p)$."""

    kind, strict = "kl_div", False


class StrictImitationNLLLoss(BackwardCompatibilityLoss):
    """NLL plus, on the support, the cross-entropy from $h_1$'s softmax to $h_2$'s."""

    kind, strict = "nll", True


class StrictImitationCrossEntropyLoss(BackwardCompatibilityLoss):
    """Cross-entropy plus, on the support, the cross-entropy from $h_1$'s softmax to $h_2$'s."""

    kind, strict = "cross_entropy", True


class StrictImitationBinaryCrossEntropyLoss(BackwardCompatibilityLoss):
    """Binary cross-entropy plus, on the support, the BCE against $h_1$'s probability."""

    kind, strict = "binary_cross_entropy", True


class StrictImitationKLDivergenceLoss(BackwardCompatibilityLoss):
    """KL to the one-hot label plus, on the support, $\\mathrm{KL}(p_1 \\| p_2)$."""

    kind, strict = "kl_div", True


#: The original TensorFlow package's name for `BCKLDivergenceLoss`.
BCKLDivLoss = BCKLDivergenceLoss
#: The original TensorFlow package's name for `StrictImitationNLLLoss`.
BCStrictImitationNLLLoss = StrictImitationNLLLoss
#: The original TensorFlow package's name for `StrictImitationCrossEntropyLoss`.
BCStrictImitationCrossEntropyLoss = StrictImitationCrossEntropyLoss
#: The original TensorFlow package's name for `StrictImitationBinaryCrossEntropyLoss`.
BCStrictImitationBinaryCrossEntropyLoss = StrictImitationBinaryCrossEntropyLoss
#: The original TensorFlow package's name for `StrictImitationKLDivergenceLoss`.
BCStrictImitationKLDivLoss = StrictImitationKLDivergenceLoss
