"""BCNewErrorCompatibilityModel and StrictImitationCompatibilityModel under Keras' fit()."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.keras.layers import Dense, Flatten
from tensorflow.keras.losses import categorical_crossentropy, sparse_categorical_crossentropy
from tensorflow.keras.optimizers import SGD, Adam

from clarena.tensorflow import (
    BCNewErrorCompatibilityModel,
    BCStrictImitationCompatibilityModel,
    StrictImitationCompatibilityModel,
)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 6)).astype(np.float32)
Y = RNG.integers(0, 3, size=64)


def reference(bias: list[float] | None = None) -> keras.Model:
    """A frozen h1; with `bias`, a constant prediction (zero kernel)."""
    h1 = keras.Sequential([keras.Input((6,)), Dense(3, activation="softmax")])
    if bias is not None:
        h1.layers[-1].set_weights([np.zeros((6, 3), np.float32), np.array(bias, np.float32)])
    h1.trainable = False
    return h1


class CallRecorder(keras.layers.Layer):
    """Identity layer that records the `training` flag of every call (eager only)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls: list[object] = []

    def call(self, inputs, training=None):
        self.calls.append(training)
        return inputs


def layers(seed: int = 1) -> list[keras.layers.Layer]:
    init = keras.initializers.GlorotUniform(seed=seed)
    return [
        keras.Input((6,)),
        Dense(8, activation="relu", kernel_initializer=init),
        Dense(3, activation="softmax", kernel_initializer=init),
    ]


def test_lambda_zero_reproduces_plain_training():
    plain = keras.Sequential(layers())
    plain.compile(loss=sparse_categorical_crossentropy, optimizer=SGD(0.1), metrics=["accuracy"])
    bc = BCNewErrorCompatibilityModel(layers(), h1=reference(), lambda_c=0.0)
    bc.set_weights(plain.get_weights())
    bc.compile(loss=sparse_categorical_crossentropy, optimizer=SGD(0.1), metrics=["accuracy"])
    h_plain = plain.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    h_bc = bc.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(plain.get_weights(), bc.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_plain.history["loss"], h_bc.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(h_plain.history["accuracy"], h_bc.history["accuracy"])


def test_reported_loss_is_the_objective_and_metrics_come_from_the_one_training_forward():
    recorder_h2, recorder_h1 = CallRecorder(), CallRecorder()
    h1 = keras.Sequential([keras.Input((6,)), recorder_h1, Dense(3, activation="softmax")])
    h1.trainable = False
    h2 = BCNewErrorCompatibilityModel([*layers(), recorder_h2], h1=h1, lambda_c=0.7)
    h2.compile(
        loss=sparse_categorical_crossentropy,
        optimizer=SGD(0.1),
        metrics=["accuracy"],
        run_eagerly=True,
    )
    probs2, probs1 = h2.predict(X, verbose=0), h1.predict(X, verbose=0)
    recorder_h1.calls.clear()
    recorder_h2.calls.clear()
    history = h2.fit(X, Y, batch_size=64, epochs=1, verbose=0)  # one step
    assert recorder_h2.calls == [True]  # h2: one forward, training=True
    assert recorder_h1.calls == [False]  # h1: one forward, inference mode
    ell = -np.log(probs2[np.arange(64), Y])
    support = probs1.argmax(1) == Y
    np.testing.assert_allclose(history.history["loss"][0], np.mean(ell * (1 + 0.7 * support)), 1e-5)
    np.testing.assert_allclose(history.history["accuracy"][0], np.mean(probs2.argmax(1) == Y))


def test_all_wrong_h1_gives_the_base_loss_with_finite_gradients():
    labels = np.zeros(64, np.int64)
    h1 = reference(bias=[0.0, 10.0, 0.0])  # always predicts class 1: the support is empty
    for cls in (BCNewErrorCompatibilityModel, StrictImitationCompatibilityModel):
        h2 = cls(layers(), h1=h1, lambda_c=0.9)
        h2.compile(loss=sparse_categorical_crossentropy, optimizer=SGD(0.1))
        with tf.GradientTape() as tape:
            value = h2.compute_loss(X, labels, h2(X, training=True))
        base = np.mean(-np.log(h2.predict(X, verbose=0)[:, 0]))
        np.testing.assert_allclose(float(value), base, rtol=1e-5)
        gradients = tape.gradient(value, h2.trainable_weights)
        assert all(np.isfinite(g.numpy()).all() for g in gradients)


def test_one_hot_labels_with_categorical_loss_match_sparse_labels():
    h1 = reference()
    sparse = BCNewErrorCompatibilityModel(layers(), h1=h1, lambda_c=0.5)
    sparse.compile(loss=sparse_categorical_crossentropy, optimizer=SGD(0.1))
    one_hot = BCNewErrorCompatibilityModel(layers(), h1=h1, lambda_c=0.5)
    one_hot.compile(loss=categorical_crossentropy, optimizer=SGD(0.1))
    one_hot.set_weights(sparse.get_weights())
    out = sparse(X)
    a = sparse.compute_loss(X, Y, out)
    b = one_hot.compute_loss(X, np.eye(3, dtype=np.float32)[Y], out)
    np.testing.assert_allclose(float(a), float(b), rtol=1e-6)


def test_strict_imitation_model_adds_the_divergence_to_h1_on_the_support():
    h1 = reference()
    h2 = StrictImitationCompatibilityModel(layers(), h1=h1, lambda_c=0.5, temperature=1.0)
    h2.compile(loss="sparse_categorical_crossentropy", optimizer=Adam(0.01))
    p2, p1 = h2.predict(X, verbose=0), h1.predict(X, verbose=0)
    ell = -np.log(p2[np.arange(64), Y])
    d = -(p1 * np.log(p2)).sum(1)
    expected = np.mean(ell + 0.5 * (p1.argmax(1) == Y) * d)
    np.testing.assert_allclose(float(h2.compute_loss(X, Y, h2(X))), expected, rtol=1e-5)
    assert BCStrictImitationCompatibilityModel is StrictImitationCompatibilityModel


def test_h1_stays_out_of_h2s_weights():
    h2 = BCNewErrorCompatibilityModel(layers(), h1=reference(), lambda_c=0.5)
    assert len(h2.weights) == 4 and len(h2.trainable_weights) == 4


def test_missing_or_non_keras_h1_and_bad_lambda_are_refused():
    with pytest.raises(ValueError, match="needs the reference model: pass h1="):
        BCNewErrorCompatibilityModel(layers(), lambda_c=0.5)
    with pytest.raises(TypeError, match="h1 must be a Keras model"):
        BCNewErrorCompatibilityModel(layers(), h1=object(), lambda_c=0.5)
    with pytest.raises(ValueError, match="lambda_c must be finite and >= 0"):
        StrictImitationCompatibilityModel(layers(), h1=reference(), lambda_c=-1.0)
    h2 = BCNewErrorCompatibilityModel(layers(), h1=reference(), lambda_c=0.5)
    h2.compile(optimizer=SGD(0.1), loss=lambda y, p: tf.reduce_mean(p))
    with pytest.raises(ValueError, match="must return one value per sample"):
        h2.fit(X, Y, epochs=1, verbose=0)


@pytest.mark.integration
def test_documented_example_trains_on_fashion_mnist_and_reports_h2s_metrics(fashion_mnist):
    x_train, y_train, x_test, y_test = fashion_mnist
    keras.utils.set_random_seed(0)
    h1 = keras.Sequential(
        [Flatten(input_shape=(28, 28, 1)), Dense(16, activation="relu"), Dense(10, "softmax")]
    )
    h1.compile(loss=sparse_categorical_crossentropy, optimizer=Adam(0.001))
    h1.fit(x_train[:2000], y_train[:2000], epochs=1, verbose=0)
    h1.trainable = False
    dataset_train = tf.data.Dataset.from_tensor_slices((x_train[:8000], y_train[:8000])).batch(64)
    dataset_test = tf.data.Dataset.from_tensor_slices((x_test[:2000], y_test[:2000])).batch(256)

    # The original library's example, unchanged but for the import paths.
    h2 = BCNewErrorCompatibilityModel(
        [
            Flatten(input_shape=(28, 28, 1)),
            Dense(128, activation="relu"),
            Dense(10, activation="softmax"),
        ],
        h1=h1,
        lambda_c=0.7,
    )
    h2.compile(
        loss=sparse_categorical_crossentropy,
        optimizer=Adam(0.001),
        metrics=["accuracy"],
    )
    history = h2.fit(dataset_train, epochs=1, validation_data=dataset_test, verbose=0)

    h2_accuracy = np.mean(h2.predict(x_test[:2000], verbose=0).argmax(1) == y_test[:2000])
    h1_accuracy = np.mean(h1.predict(x_test[:2000], verbose=0).argmax(1) == y_test[:2000])
    np.testing.assert_allclose(history.history["val_accuracy"][0], h2_accuracy, atol=1e-6)
    assert abs(h2_accuracy - h1_accuracy) > 0.01  # the metrics are h2's, not h1's
    assert 0.7 < history.history["accuracy"][0] < 1.0
    assert h2_accuracy > 0.75


def test_binary_models_use_the_pivot_for_the_support():
    labels = (X[:, 0] > 0).astype(np.float32)
    h1 = keras.Sequential([keras.Input((6,)), Dense(1, activation="sigmoid")])
    h1.layers[-1].set_weights([np.zeros((6, 1), np.float32), np.array([1.0], np.float32)])
    h2 = BCNewErrorCompatibilityModel(
        [keras.Input((6,)), Dense(1, activation="sigmoid")], h1=h1, lambda_c=0.5
    )
    h2.compile(loss="binary_crossentropy", optimizer=SGD(0.1))
    q2 = h2.predict(X, verbose=0)[:, 0].astype(np.float64)
    ell = -(labels * np.log(q2) + (1 - labels) * np.log(1 - q2))
    # h1's probability is sigmoid(1) = 0.73 everywhere: right exactly where the label is 1
    expected = np.mean(ell * (1 + 0.5 * labels))
    np.testing.assert_allclose(float(h2.compute_loss(X, labels, h2(X))), expected, rtol=1e-5)
    strict = StrictImitationCompatibilityModel(
        [keras.Input((6,)), Dense(1, activation="sigmoid")], h1=h1, lambda_c=0.5
    )
    strict.compile(loss="binary_crossentropy", optimizer=SGD(0.1))
    strict.set_weights(h2.get_weights())
    q1 = 1 / (1 + np.exp(-1.0))
    d = -(q1 * np.log(q2) + (1 - q1) * np.log(1 - q2))
    expected = np.mean(ell + 0.5 * labels * d)
    np.testing.assert_allclose(float(strict.compute_loss(X, labels, h2(X))), expected, rtol=1e-5)
