r"""Keras `Sequential` models whose ordinary `compile()` and `fit()` train backward-compatibly.

`BCNewErrorCompatibilityModel` trains with the new-error objective of Srivastava et al.
(KDD 2020), $L = \frac{1}{B}\sum_i \big[\ell_i + \lambda_c \mathbb{1}[i \in S]\, \ell_i\big]$,
where $\ell$ is the loss given to `compile()` and $S$ the samples the reference model $h_1$
classifies correctly; `StrictImitationCompatibilityModel` replaces the second $\ell_i$ by a
divergence from $h_1$'s soft output to $h_2$'s (formulas: `clarena.tensorflow.dissonance`).

    h1.trainable = False
    h2 = BCNewErrorCompatibilityModel([
        Flatten(input_shape=(28, 28, 1)),
        Dense(128, activation="relu"),
        Dense(10, activation="softmax"),
    ], h1=h1, lambda_c=0.7)
    h2.compile(loss=sparse_categorical_crossentropy, optimizer=Adam(0.001), metrics=["accuracy"])
    h2.fit(dataset_train, epochs=6, validation_data=dataset_test)

How it plugs into Keras: the models override `compute_loss`, the hook Keras 3's own `train_step`
and `test_step` call with the output of their single forward pass. So each training step runs h2
once with `training=True` (and h1 once with `training=False`, outside the gradient), the compiled
metrics are computed on that same forward, the reported `loss` is the objective actually minimised
(plus any regularisation losses of the layers), and `val_loss` is the same objective on the
validation data. Labels may be sparse or one-hot, as the compiled loss expects; the compiled loss
must return one value per sample, as every Keras loss function and `keras.losses.Loss` does.

$h_1$ is kept outside Keras' tracking: its weights are not part of `h2.weights`, `h2.save_weights`
or `h2.summary()`. To deploy h2, copy its weights into a plain `Sequential` of the same layers.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from clarena.tensorflow import dissonance as bcm
from clarena.tensorflow.losses import check_keras_model

__all__ = [
    "BCNewErrorCompatibilityModel",
    "BCStrictImitationCompatibilityModel",
    "StrictImitationCompatibilityModel",
]


def _same_rank(y: Any, y_pred: tf.Tensor) -> tf.Tensor:
    """Labels `(B,)` for outputs `(B, 1)` get a trailing axis (and back), as `compile()` does."""
    y = tf.convert_to_tensor(y)
    if y_pred.shape[-1] == 1 and y.shape.rank == y_pred.shape.rank - 1:
        return tf.expand_dims(y, -1)
    if y.shape[-1] == 1 and y.shape.rank == y_pred.shape.rank + 1:
        return tf.squeeze(y, -1)
    return y


class _CompatibilityModel(keras.Sequential):
    """The shared part: h1, the support and the objective; subclasses choose the dissonance."""

    def __init__(
        self,
        layers: list[keras.layers.Layer] | None = None,
        *,
        h1: keras.Model | None = None,
        lambda_c: float = 0.0,
        from_logits: bool = False,
        discriminant_pivot: float = 0.5,
        trainable: bool = True,
        name: str | None = None,
    ) -> None:
        if h1 is None:
            raise ValueError(
                f"{type(self).__name__} needs the reference model: pass h1=<a trained Keras model>"
            )
        check_keras_model(h1, "h1")
        bcm.check_options(lambda_c, discriminant_pivot=discriminant_pivot)
        super().__init__(layers, trainable=trainable, name=name)
        # Kept out of Keras' tracking on purpose: h1's weights must not become h2's.
        object.__setattr__(self, "_reference_model", h1)
        self.lambda_c = float(lambda_c)
        self.from_logits = bool(from_logits)
        self.discriminant_pivot = float(discriminant_pivot)

    @property
    def h1(self) -> keras.Model:
        """The frozen reference model the updates must stay compatible with."""
        return self._reference_model

    def _dissonance(
        self, y: Any, y_pred: tf.Tensor, h1_output: tf.Tensor, base: tf.Tensor
    ) -> tf.Tensor | None:
        """The divergence $d_i$ from h1, or None when the dissonance is the loss itself."""
        raise NotImplementedError

    def _focal_alpha(self) -> float:
        return 0.0

    def _per_sample_loss(self, y: Any, y_pred: tf.Tensor) -> tf.Tensor:
        """The compiled loss, unreduced: one value per sample, shape `(B,)`."""
        loss = self.loss
        if loss is None:
            raise ValueError(
                f"{type(self).__name__} has no loss: call compile(loss=..., optimizer=...) first"
            )
        if isinstance(loss, str):
            loss = keras.losses.get(loss)
        if isinstance(loss, keras.losses.Loss):
            values = loss.call(y, y_pred)
        elif callable(loss):
            values = loss(_same_rank(y, y_pred), y_pred)
        else:
            raise ValueError(
                f"{type(self).__name__} supports one loss for its one output, got "
                f"{type(loss).__name__}; pass a single Keras loss to compile()"
            )
        values = tf.cast(values, tf.float32)
        if values.shape.rank == 0:
            raise ValueError(
                "the compiled loss returned a scalar; it must return one value per sample "
                "(a Keras loss function such as sparse_categorical_crossentropy)"
            )
        if values.shape.rank > 1:
            values = tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=-1)
        return values

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> tf.Tensor:
        """The backward-compatibility objective of one batch, from h2's output `y_pred`.

        Called by Keras' `train_step` (and `test_step`) with the output of their one forward
        pass; runs h1 on `x` with `training=False` and without gradient.
        """
        del training
        if y is None:
            raise ValueError(f"{type(self).__name__} needs labels: fit it on (x, y) data")
        h1_output = tf.stop_gradient(self.h1(x, training=False))
        bcm.check_batch(y_pred, y, "h2")
        base = self._per_sample_loss(y, y_pred)
        total = bcm.bc_loss(
            y_pred,
            h1_output,
            y,
            base,
            self._dissonance(y, y_pred, h1_output, base),
            self.lambda_c,
            binary=bool(y_pred.shape.rank == 1 or y_pred.shape[-1] == 1),
            from_logits=self.from_logits,
            discriminant_pivot=self.discriminant_pivot,
            focal_alpha=self._focal_alpha(),
            sample_weight=sample_weight,
        )
        for extra in self.losses:  # regularisation losses of the layers
            total = total + tf.cast(extra, total.dtype)
        return total


class BCNewErrorCompatibilityModel(_CompatibilityModel):
    """A `Sequential` trained with the new-error objective.

    The compiled loss counts $1 + \\lambda_c$ times on the samples h1 gets right.

    Args:
        layers: The layers of h2, as for `keras.Sequential`.
        h1: The trained reference model (any Keras model with the same output); required.
        lambda_c: $\\lambda_c \\ge 0$; 0 is plain training.
        from_logits: Whether the outputs are logits (only matters for one-output binary models,
            whose decision is probability ≥ `discriminant_pivot`).
        discriminant_pivot: The threshold of a positive binary decision.
        trainable: As for `keras.Sequential`.
        name: As for `keras.Sequential`.
    """

    def _dissonance(
        self, y: Any, y_pred: tf.Tensor, h1_output: tf.Tensor, base: tf.Tensor
    ) -> tf.Tensor | None:
        return None  # the new error: the compiled loss itself


class StrictImitationCompatibilityModel(_CompatibilityModel):
    """A `Sequential` trained with strict imitation.

    On the samples h1 gets right, h2 also imitates h1's soft output.

    The divergence is the cross-entropy $-\\sum_k p^{(1)}_k \\log p^{(2)}_k$ (or the KL divergence)
    at temperature $T$, or the binary cross-entropy against h1's probability for a one-output
    model; with `focal_alpha` $= \\alpha > 0$ samples outside the support imitate h1 with weight
    $\\alpha$ (focal distillation, Yan et al. 2021).

    Args:
        layers: The layers of h2, as for `keras.Sequential`.
        h1: The trained reference model; required.
        lambda_c: $\\lambda_c \\ge 0$.
        temperature: $T > 0$ softening both outputs in the divergence.
        focal_alpha: $\\alpha \\ge 0$.
        divergence: `"cross_entropy"` or `"kl_div"` (same gradient, KL is 0 when h2 equals h1).
        from_logits: Whether h1 and h2 output logits (default: softmax probabilities).
        discriminant_pivot: The threshold of a positive binary decision.
        trainable: As for `keras.Sequential`.
        name: As for `keras.Sequential`.
    """

    def __init__(
        self,
        layers: list[keras.layers.Layer] | None = None,
        *,
        h1: keras.Model | None = None,
        lambda_c: float = 0.0,
        temperature: float = 1.0,
        focal_alpha: float = 0.0,
        divergence: str = "cross_entropy",
        from_logits: bool = False,
        discriminant_pivot: float = 0.5,
        trainable: bool = True,
        name: str | None = None,
    ) -> None:
        bcm.check_options(lambda_c, temperature=temperature, focal_alpha=focal_alpha)
        if divergence not in ("cross_entropy", "kl_div"):
            raise ValueError(f"divergence must be 'cross_entropy' or 'kl_div', got {divergence!r}")
        super().__init__(
            layers,
            h1=h1,
            lambda_c=lambda_c,
            from_logits=from_logits,
            discriminant_pivot=discriminant_pivot,
            trainable=trainable,
            name=name,
        )
        self.temperature = float(temperature)
        self.focal_alpha = float(focal_alpha)
        self.divergence = divergence

    def _focal_alpha(self) -> float:
        return self.focal_alpha

    def _dissonance(self, y: Any, y_pred: tf.Tensor, h1_output: tf.Tensor, base: tf.Tensor):
        binary = bool(y_pred.shape.rank == 1 or y_pred.shape[-1] == 1)
        kind = "binary_cross_entropy" if binary else self.divergence
        return bcm.soft_divergence(kind, y_pred, h1_output, self.from_logits, self.temperature)


#: The name in the style of the original library's `BCNewErrorCompatibilityModel`.
BCStrictImitationCompatibilityModel = StrictImitationCompatibilityModel
