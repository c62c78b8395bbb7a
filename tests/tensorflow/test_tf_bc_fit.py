"""bc_fit: training with a BC loss, per-epoch compatibility scores, guards."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.keras.layers import Dense
from tensorflow.keras.optimizers import SGD, Adam

import clarena.tensorflow as ctf
from clarena.tensorflow import tf_helpers
from clarena.tensorflow.tf_helpers import bc_fit, compatibility_scores

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 6)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0).astype(np.int64)  # 3 learnable classes
METRICS = ["loss", "accuracy", "val_loss", "val_accuracy", "val_h1_accuracy"]
METRICS += ["val_btc", "val_bec", "val_nfr", "val_pfr", "val_nfi"]


def mlp(seed: int) -> keras.Model:
    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential(
        [
            keras.Input((6,)),
            Dense(16, activation="relu", kernel_initializer=init),
            Dense(3, activation="softmax", kernel_initializer=init),
        ]
    )


def test_compatibility_scores_from_hand_counted_flips():
    h1 = [1, 1, 1, 0, 0, 1, 0, 1]  # 5 right
    h2 = [1, 1, 0, 0, 1, 1, 0, 0]  # both right 3, both wrong 2, h2 wrong 4, 2 negative flips
    scores = compatibility_scores(np.array(h1, bool), np.array(h2, bool))
    assert scores == {"btc": 3 / 5, "bec": 2 / 4, "nfr": 2 / 8, "pfr": 1 / 8, "nfi": 2 / 4}
    assert np.isnan(compatibility_scores([False], [True])["btc"])  # h1 never right


def test_bc_fit_returns_one_entry_per_epoch_with_the_metrics(capsys):
    h1 = mlp(0)
    h1.compile(loss="sparse_categorical_crossentropy", optimizer=Adam(0.01))
    h1.fit(X[:32], Y[:32], epochs=5, verbose=0)
    h1.trainable = False
    h2 = mlp(1)
    ds_train = tf.data.Dataset.from_tensor_slices((X, Y)).batch(16)
    ds_test = tf.data.Dataset.from_tensor_slices((X, Y)).batch(32)
    bc_loss = ctf.BCCrossEntropyLoss(h1, h2, 0.9)
    history = bc_fit(
        h2,
        training_set=ds_train,
        testing_set=ds_test,
        epochs=3,
        bc_loss=bc_loss,
        optimizer=Adam(0.01),
    )
    assert history.epoch == [0, 1, 2] and h2.history is history
    assert sorted(history.history) == sorted(METRICS)
    assert all(len(values) == 3 for values in history.history.values())
    assert "Epoch 3/3" in capsys.readouterr().out  # the progress bar was shown
    # the last epoch's scores are those of the final h2 against h1 on the test set
    h1_right = h1.predict(X, verbose=0).argmax(1) == Y
    h2_right = h2.predict(X, verbose=0).argmax(1) == Y
    expected = compatibility_scores(h1_right, h2_right)
    for name, value in expected.items():
        np.testing.assert_allclose(history.history[f"val_{name}"][-1], value)
    np.testing.assert_allclose(history.history["val_accuracy"][-1], h2_right.mean())
    np.testing.assert_allclose(history.history["val_h1_accuracy"][-1], h1_right.mean())
    objective = bc_loss.compute(h2(X), h1(X), Y)
    np.testing.assert_allclose(history.history["val_loss"][-1], float(objective), rtol=1e-5)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_bc_fit_accepts_arrays_and_matches_a_manual_loop():
    h1, h2, manual = mlp(0), mlp(1), mlp(1)
    h1.trainable = False
    fn = ctf.StrictImitationKLDivergenceLoss(h1, h2, 0.5, temperature=2.0)
    history = bc_fit(h2, (X, Y), (X, Y), 1, fn, SGD(0.1), batch_size=32, shuffle=False, verbose=0)
    manual_fn = ctf.StrictImitationKLDivergenceLoss(h1, manual, 0.5, temperature=2.0)
    optimizer, losses = SGD(0.1), []
    for start in range(0, 96, 32):
        with tf.GradientTape() as tape:
            value = manual_fn(X[start : start + 32], Y[start : start + 32])
        grads = tape.gradient(value, manual.trainable_weights)
        optimizer.apply_gradients(zip(grads, manual.trainable_weights))
        losses.append(float(value))
    for a, b in zip(h2.get_weights(), manual.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history.history["loss"][0], np.mean(losses), rtol=1e-5)


def test_bc_fit_binary_loss_scores_decisions_at_the_pivot():
    def binary(seed):
        init = keras.initializers.GlorotUniform(seed=seed)
        return keras.Sequential([keras.Input((6,)), Dense(1, "sigmoid", kernel_initializer=init)])

    labels = (X[:, 0] > 0).astype(np.int64)
    h1, h2 = binary(0), binary(1)
    fn = ctf.BCBinaryCrossEntropyLoss(h1, h2, 0.5)
    history = bc_fit(h2, (X, labels), (X, labels), 2, fn, Adam(0.05), verbose=0)
    h2_right = (h2.predict(X, verbose=0)[:, 0] >= 0.5) == labels
    np.testing.assert_allclose(history.history["val_accuracy"][-1], h2_right.mean())


def test_bc_fit_refuses_bad_arguments():
    h1, h2 = mlp(0), mlp(1)
    fn = ctf.BCCrossEntropyLoss(h1, h2, 0.5)
    with pytest.raises(ValueError, match="built for another model"):
        bc_fit(mlp(2), (X, Y), (X, Y), 1, fn, SGD(0.1))
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        bc_fit(h2, (X, Y), (X, Y), 0, fn, SGD(0.1))
    with pytest.raises(TypeError, match=r"bc_loss must be a loss of clarena\.tensorflow\.losses"):
        bc_fit(h2, (X, Y), (X, Y), 1, lambda x, y: 0.0, SGD(0.1))
    with pytest.raises(TypeError, match=r"training_set must be a batched tf\.data\.Dataset"):
        bc_fit(h2, X, (X, Y), 1, fn, SGD(0.1))
    with pytest.raises(ValueError, match="96 inputs but 3 labels"):
        bc_fit(h2, (X, Y[:3]), (X, Y), 1, fn, SGD(0.1))
    assert ctf.bc_fit is tf_helpers.bc_fit


def test_bc_fit_refuses_datasets_of_other_elements():
    h1, h2 = mlp(0), mlp(1)
    fn = ctf.BCCrossEntropyLoss(h1, h2, 0.5)
    triples = tf.data.Dataset.from_tensor_slices((X, Y, np.ones(96, np.float32))).batch(8)
    with pytest.raises(ValueError, match=r"training_set must yield \(x, y\) batches"):
        bc_fit(h2, triples, (X, Y), 1, fn, SGD(0.1))


def test_bc_fit_with_lambda_zero_reproduces_plain_keras_training():
    h1, h2, plain = mlp(0), mlp(1), mlp(1)
    h1.trainable = False
    fn = ctf.BCCrossEntropyLoss(h1, h2, 0.0)
    history = bc_fit(h2, (X, Y), (X, Y), 2, fn, SGD(0.1), batch_size=32, shuffle=False, verbose=0)
    plain.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.1), metrics=["accuracy"])
    reference = plain.fit(X, Y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(h2.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history.history["loss"], reference.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(history.history["accuracy"], reference.history["accuracy"])
