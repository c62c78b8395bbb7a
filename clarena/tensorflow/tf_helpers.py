r"""`bc_fit`: train any Keras model with a backward-compatibility loss, and score compatibility.

    h1.trainable = False
    bc_loss = BCCrossEntropyLoss(h1, h2, lambda_c=0.9)
    history = bc_fit(h2, training_set=ds_train, testing_set=ds_test, epochs=6,
                     bc_loss=bc_loss, optimizer=keras.optimizers.Adam(0.001))
    history.history["val_bec"]  # one value per epoch

After every epoch the testing set is scored against the reference model $h_1$ with pooled counts
over the whole set (never averages of per-batch ratios), in the definitions of Bansal et al.
(AAAI 2019) and Srivastava et al. (KDD 2020):

$$\mathrm{BTC} = \frac{\#\{h_1 \text{ right}, h_2 \text{ right}\}}{\#\{h_1 \text{ right}\}},\quad
  \mathrm{BEC} = \frac{\#\{h_1 \text{ wrong}, h_2 \text{ wrong}\}}{\#\{h_2 \text{ wrong}\}},\quad
  \mathrm{NFR} = \frac{\#\{h_1 \text{ right}, h_2 \text{ wrong}\}}{N}.$$

BEC divides by $h_2$'s errors (how many of the new model's errors the old one made too), as the
paper defines it; BackwardCompatibilityML's code divides by $h_1$'s errors instead. A ratio whose
denominator is zero is reported as `nan`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from clarena.core import compatibility as core_compatibility
from clarena.tensorflow import dissonance as bcm
from clarena.tensorflow.losses import BackwardCompatibilityLoss, check_keras_model

__all__ = ["bc_fit", "compatibility_scores"]


def compatibility_scores(h1_correct: Any, h2_correct: Any) -> dict[str, float]:
    """NFR, PFR, BTC and BEC from per-sample correctness: the counts and formulas of
    `clarena.core.compatibility` (the ones the PyTorch metrics use).

    Args:
        h1_correct: Booleans, one per test sample: whether $h_1$ is right.
        h2_correct: The same for $h_2$.

    Returns:
        `{"nfr": ..., "pfr": ..., "btc": ..., "bec": ...}`; `nan` where a denominator is zero.
    """
    return core_compatibility.compatibility_scores(
        core_compatibility.counts_from_correct(h1_correct, h2_correct)
    )


def _as_dataset(data: Any, name: str, batch_size: int, shuffle: bool, seed: int | None):
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not isinstance(spec, tuple) or len(spec) != 2:
            raise ValueError(
                f"{name} must yield (x, y) batches, got elements of the form {spec}; map it to "
                "(x, y) pairs (sample weights are not supported)"
            )
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (np.asarray(part) for part in data)
        if len(x) != len(y):
            raise ValueError(f"{name} has {len(x)} inputs but {len(y)} labels")
        dataset = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size)
    raise TypeError(
        f"{name} must be a batched tf.data.Dataset of (x, y) or a pair of arrays (x, y), "
        f"got {type(data).__name__}"
    )


def _labels(bc_loss: BackwardCompatibilityLoss, y: tf.Tensor, num_outputs: int | None):
    if bc_loss.binary:
        return tf.cast(bcm.binary_targets(y), tf.int32)
    return bcm.class_indices(y, num_outputs)


def bc_fit(
    h2: keras.Model,
    training_set: Any = None,
    testing_set: Any = None,
    epochs: int | None = None,
    bc_loss: BackwardCompatibilityLoss | None = None,
    optimizer: keras.optimizers.Optimizer | str | None = None,
    *,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int | None = None,
    verbose: int = 1,
) -> keras.callbacks.History:
    """Train `h2` with `bc_loss` and evaluate compatibility with `bc_loss.h1` after every epoch.

    Each step runs h2 once (`training=True`) and h1 once (`training=False`, no gradient) and
    steps `optimizer` on h2's trainable weights with the loss `bc_loss` defines (plus h2's
    regularisation losses).

    Args:
        h2: The Keras model being trained; `bc_loss` must have been built with it.
        training_set: A batched `tf.data.Dataset` of `(x, y)`, or arrays `(x, y)`.
        testing_set: The same for evaluation after every epoch.
        epochs: The number of passes over `training_set` (≥ 1).
        bc_loss: One of the losses of `clarena.tensorflow.losses`, built as `Loss(h1, h2, λc)`.
        optimizer: A Keras optimizer (or its name).
        batch_size: The batch size for arrays (datasets keep their own batching).
        shuffle: Whether to reshuffle arrays every epoch.
        seed: Seed of that shuffling.
        verbose: 1 for a progress bar per epoch, 0 for silence.

    Returns:
        The `keras.callbacks.History` (also set as `h2.history`): `history.epoch` lists the epochs,
        `history.history` maps each name to one value per epoch: `loss` and `accuracy` (training,
        averaged over the epoch's batches), `val_loss` (the objective per test sample),
        `val_accuracy`, `val_h1_accuracy`, `val_btc`, `val_bec`, `val_nfr`, `val_pfr`, `val_nfi`.
    """
    check_keras_model(h2, "h2")
    if not isinstance(bc_loss, BackwardCompatibilityLoss):
        raise TypeError(
            "bc_loss must be a loss of clarena.tensorflow.losses, e.g. "
            f"BCCrossEntropyLoss(h1, h2, lambda_c), got {type(bc_loss).__name__}"
        )
    if bc_loss.h2 is not h2:
        raise ValueError("bc_loss was built for another model: build it as Loss(h1, h2, lambda_c)")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if training_set is None or testing_set is None:
        raise ValueError("bc_fit needs both training_set and testing_set")
    if optimizer is None:
        raise ValueError("bc_fit needs an optimizer, e.g. keras.optimizers.Adam(0.001)")
    optimizer = keras.optimizers.get(optimizer)
    train_data = _as_dataset(training_set, "training_set", batch_size, shuffle, seed)
    test_data = _as_dataset(testing_set, "testing_set", batch_size, False, None)
    h1 = bc_loss.h1
    reduction = "mean" if bc_loss.reduction == "none" else bc_loss.reduction

    @tf.function(reduce_retracing=True)
    def train_step(x, y):
        h1_output = h1(x, training=False)
        with tf.GradientTape() as tape:
            h2_output = h2(x, training=True)
            loss = bc_loss.compute(h2_output, h1_output, y, reduction=reduction)
            for extra in h2.losses:
                loss = loss + tf.cast(extra, loss.dtype)
        weights = h2.trainable_weights
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        predicted = bc_loss.predicted_labels(h2_output)
        correct = tf.equal(predicted, _labels(bc_loss, y, predicted_width(h2_output)))
        return loss, tf.reduce_mean(tf.cast(correct, tf.float32))

    @tf.function(reduce_retracing=True)
    def test_step(x, y):
        h1_output = h1(x, training=False)
        h2_output = h2(x, training=False)
        per_sample = bc_loss.compute(h2_output, h1_output, y, reduction="none")
        target = _labels(bc_loss, y, predicted_width(h2_output))
        h1_right = tf.equal(bc_loss.predicted_labels(h1_output), target)
        h2_right = tf.equal(bc_loss.predicted_labels(h2_output), target)
        return tf.reduce_sum(per_sample), h1_right, h2_right

    history = keras.callbacks.History()
    history.set_model(h2)
    history.on_train_begin()
    cardinality = int(train_data.cardinality())
    steps = cardinality if cardinality > 0 else None
    for epoch in range(epochs):
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}")
        bar = keras.utils.Progbar(steps, verbose=1 if verbose else 0)
        losses, accuracies, step = [], [], 0
        for batch in train_data:
            loss, accuracy = train_step(batch[0], batch[1])
            losses.append(float(loss))
            accuracies.append(float(accuracy))
            step += 1
            bar.update(step, [("loss", losses[-1]), ("accuracy", accuracies[-1])])
        logs = {"loss": float(np.mean(losses)), "accuracy": float(np.mean(accuracies))}
        logs.update(_evaluate(test_step, test_data))
        bar.update(step, [(k, v) for k, v in logs.items() if k.startswith("val_")], finalize=True)
        history.on_epoch_end(epoch, logs)
    return history


def predicted_width(output: Any) -> int | None:
    """The number of classes of a model output (its last dimension), for label checks."""
    tensor = output[0] if isinstance(output, (tuple, list)) else output
    return tensor.shape[-1] if tensor.shape.rank == 2 else None


def _evaluate(test_step: Any, test_data: tf.data.Dataset) -> dict[str, float]:
    total_loss, h1_parts, h2_parts = 0.0, [], []
    for batch in test_data:
        loss_sum, h1_right, h2_right = test_step(batch[0], batch[1])
        total_loss += float(loss_sum)
        h1_parts.append(h1_right.numpy())
        h2_parts.append(h2_right.numpy())
    if not h1_parts:
        raise ValueError("testing_set is empty")
    h1_correct, h2_correct = np.concatenate(h1_parts), np.concatenate(h2_parts)
    scores = compatibility_scores(h1_correct, h2_correct)
    return {
        "val_loss": total_loss / h1_correct.size,
        "val_accuracy": float(h2_correct.mean()),
        "val_h1_accuracy": float(h1_correct.mean()),
        **{f"val_{name}": value for name, value in scores.items()},
    }
