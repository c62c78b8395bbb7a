"""The eight TensorFlow losses against hand-computed values, and their guards."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import clarena.tensorflow as ctf
from clarena.tensorflow import losses as L

LN2 = 0.6931471805599453

# Three classes, two samples. h1 predicts class 0 for both, the labels are [0, 1]: S = {0}.
H2_PROBS = np.array([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]], np.float32)
H1_PROBS = np.array([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]], np.float32)
LABELS = np.array([0, 1])
# Binary: h2's probabilities, h1's (decisions 1 and 0 at pivot 0.5), labels [1, 1]: S = {0}.
H2_Q = np.array([0.8, 0.4], np.float32)
H1_Q = np.array([0.9, 0.3], np.float32)
BIN_LABELS = np.array([1, 1])


def tiny_model(outputs: int = 3) -> keras.Model:
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(outputs, activation="softmax")])


def loss(cls, lambda_c: float, **options) -> L.BackwardCompatibilityLoss:
    return cls(tiny_model(), tiny_model(), lambda_c, **options)


@pytest.mark.parametrize(
    ("cls", "lambda_c", "options", "expected"),
    [
        # new-error: (1/2)[ln2 (1 + 0.5) + ln2] = 1.25 ln2, for NLL, CE and KL(onehot || p2) alike
        (ctf.BCNLLLoss, 0.5, {}, 1.25 * LN2),
        (ctf.BCCrossEntropyLoss, 0.5, {}, 1.25 * LN2),
        (ctf.BCKLDivergenceLoss, 0.5, {}, 1.25 * LN2),
        # strict imitation, CE: d_0 = -(0.5 ln 0.5 + 2 * 0.25 ln 0.25) = 1.5 ln2 -> 1.375 ln2
        (ctf.StrictImitationNLLLoss, 0.5, {}, 1.375 * LN2),
        (ctf.StrictImitationCrossEntropyLoss, 0.5, {}, 1.375 * LN2),
        # KL(p1 || p2) is 0 on sample 0 (equal rows) -> the base loss ln2
        (ctf.StrictImitationKLDivergenceLoss, 0.5, {}, LN2),
        # focal alpha = 2 adds 0.5 * 2 * KL_1 = 0.25 ln2 on sample 1 -> (2 + 0.25) ln2 / 2
        (ctf.StrictImitationKLDivergenceLoss, 0.5, {"focal_alpha": 2.0}, 1.125 * LN2),
        (ctf.BCCrossEntropyLoss, 0.5, {"reduction": "sum"}, 2.5 * LN2),
    ],
)
def test_multiclass_losses_equal_hand_computed_values(cls, lambda_c, options, expected):
    value = loss(cls, lambda_c, **options).compute(H2_PROBS, H1_PROBS, LABELS)
    np.testing.assert_allclose(float(value), expected, rtol=1e-6)


def test_reduction_none_gives_the_per_sample_brackets_and_one_hot_labels_work():
    fn = loss(ctf.BCCrossEntropyLoss, 0.5, reduction="none")
    np.testing.assert_allclose(fn.compute(H2_PROBS, H1_PROBS, LABELS), [1.5 * LN2, LN2], rtol=1e-6)
    one_hot = np.eye(3, dtype=np.float32)[LABELS]
    np.testing.assert_allclose(fn.compute(H2_PROBS, H1_PROBS, one_hot), [1.5 * LN2, LN2], rtol=1e-6)


def test_from_logits_equals_probabilities_and_temperature_softens_both():
    logits2, logits1 = np.log(H2_PROBS), np.log(H1_PROBS)
    for cls in (ctf.BCNLLLoss, ctf.StrictImitationCrossEntropyLoss):
        probs = loss(cls, 0.5).compute(H2_PROBS, H1_PROBS, LABELS)
        from_logits = loss(cls, 0.5, from_logits=True).compute(logits2, logits1, LABELS)
        np.testing.assert_allclose(float(probs), float(from_logits), rtol=1e-6)
    # T = 2: p1 row 0 = softmax(log p1 / 2) = [sqrt2, 1, 1] / (2 + sqrt2); p2 row 0 the same,
    # so d_0 = entropy of that row; the base loss stays at T = 1.
    p = np.array([np.sqrt(2.0), 1.0, 1.0]) / (2.0 + np.sqrt(2.0))
    d0 = -(p * np.log(p)).sum()
    value = loss(ctf.StrictImitationCrossEntropyLoss, 0.5, temperature=2.0)
    expected = 0.5 * (LN2 + 0.5 * d0 + LN2)
    np.testing.assert_allclose(float(value.compute(H2_PROBS, H1_PROBS, LABELS)), expected, 1e-6)


def test_binary_losses_equal_hand_computed_values():
    # l_0 = -ln 0.8, l_1 = -ln 0.4; new-error with lambda 1: (2 l_0 + l_1) / 2
    new_error = loss(ctf.BCBinaryCrossEntropyLoss, 1.0)
    np.testing.assert_allclose(
        float(new_error.compute(H2_Q, H1_Q, BIN_LABELS)), 0.6812889172512873, rtol=1e-6
    )
    # strict: d_0 = -(0.9 ln 0.8 + 0.1 ln 0.2) = 0.361773 -> (l_0 + d_0 + l_1) / 2
    strict = loss(ctf.StrictImitationBinaryCrossEntropyLoss, 1.0)
    np.testing.assert_allclose(
        float(strict.compute(H2_Q[:, None], H1_Q[:, None], BIN_LABELS)),
        0.7506036353072818,
        rtol=1e-6,
    )
    # pivot 0.2: h1 now predicts 1 for both samples, S = {0, 1} -> (2 l_0 + 2 l_1) / 2
    pivot = loss(ctf.BCBinaryCrossEntropyLoss, 1.0, discriminant_pivot=0.2)
    np.testing.assert_allclose(
        float(pivot.compute(H2_Q, H1_Q, BIN_LABELS)), -np.log(0.8) - np.log(0.4), rtol=1e-6
    )


@pytest.mark.parametrize("cls", [ctf.BCCrossEntropyLoss, ctf.StrictImitationKLDivergenceLoss])
def test_empty_support_gives_the_base_loss_with_finite_gradients(cls):
    h2_logits = tf.Variable([[30.0, -30.0, 0.0], [0.0, 5.0, -80.0]])
    h1_probs = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)  # always wrong
    with tf.GradientTape() as tape:
        value = loss(cls, 0.9, from_logits=True).compute(h2_logits, h1_probs, LABELS)
    base = tf.reduce_mean(
        keras.losses.sparse_categorical_crossentropy(LABELS, h2_logits, from_logits=True)
    )
    np.testing.assert_allclose(float(value), float(base), rtol=1e-6)
    assert np.isfinite(tape.gradient(value, h2_logits).numpy()).all()


def test_extreme_probabilities_stay_finite():
    zero_probs = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
    for cls in (ctf.BCNLLLoss, ctf.StrictImitationKLDivergenceLoss):
        assert np.isfinite(float(loss(cls, 1.0).compute(zero_probs, zero_probs, LABELS)))


def test_call_runs_both_models_and_h1_gets_no_gradient():
    h1, h2 = tiny_model(), tiny_model()
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1])
    fn = ctf.StrictImitationCrossEntropyLoss(h1, h2, 0.7)
    with tf.GradientTape(persistent=True) as tape:
        value = fn(x, y)
    assert all(g is None for g in tape.gradient(value, h1.trainable_weights))
    assert all(g is not None for g in tape.gradient(value, h2.trainable_weights))
    expected = fn.compute(h2(x), h1(x), y)
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-6)


def test_original_tensorflow_names_are_aliases():
    assert ctf.BCKLDivLoss is ctf.BCKLDivergenceLoss
    assert ctf.BCStrictImitationNLLLoss is ctf.StrictImitationNLLLoss
    assert ctf.BCStrictImitationCrossEntropyLoss is ctf.StrictImitationCrossEntropyLoss
    assert ctf.BCStrictImitationBinaryCrossEntropyLoss is ctf.StrictImitationBinaryCrossEntropyLoss
    assert ctf.BCStrictImitationKLDivLoss is ctf.StrictImitationKLDivergenceLoss
    assert loss(ctf.BCKLDivLoss, 0.1).__name__ == "BCKLDivergenceLoss"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lambda_c": -0.1}, "lambda_c must be finite and >= 0"),
        ({"lambda_c": float("nan")}, "lambda_c must be finite"),
        ({"lambda_c": 0.5, "reduction": "batchmean"}, "reduction must be one of"),
        ({"lambda_c": 0.5, "temperature": 2.0}, "takes no temperature"),
        ({"lambda_c": 0.5, "discriminant_pivot": 1.5}, "discriminant_pivot must lie in"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        ctf.BCCrossEntropyLoss(tiny_model(), tiny_model(), **options)


def test_bad_models_and_batches_are_refused():
    with pytest.raises(TypeError, match="must be a Keras model"):
        ctf.BCCrossEntropyLoss(lambda x: x, tiny_model(), 0.5)
    with pytest.raises(ValueError, match="h1 is required"):
        ctf.BCCrossEntropyLoss(None, tiny_model(), 0.5)
    model = tiny_model()
    with pytest.raises(ValueError, match="same model"):
        ctf.BCCrossEntropyLoss(model, model, 0.5)
    fn = loss(ctf.BCCrossEntropyLoss, 0.5)
    with pytest.raises(ValueError, match="batch size 2 but the labels have 3"):
        fn.compute(H2_PROBS, H1_PROBS, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="one-hot labels have 4 columns"):
        fn.compute(H2_PROBS, H1_PROBS, np.eye(4, dtype=np.float32)[:2])
    with pytest.raises(ValueError, match="binary losses take one output per sample"):
        loss(ctf.BCBinaryCrossEntropyLoss, 0.5).compute(H2_PROBS, H1_PROBS, LABELS)


def test_the_package_never_imports_torch():
    code = "import sys, clarena.tensorflow; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
