"""FD-KL and FD-LM in TensorFlow equal the PyTorch regularizers to 1e-5 (PyTorch in a subprocess).

TensorFlow is imported here, and importing torch after it aborts the interpreter, so the PyTorch
values come from `torch_fd_reference.py` run in its own process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from clarena.tensorflow import FocalDistillationKLLoss, FocalDistillationLMLoss
from clarena.tensorflow.focal_distillation import (
    PAD_LOGIT,
    focal_distillation_kl,
    focal_distillation_lm,
    focal_weight,
)

B, K, D, H = 24, 5, 6, 12
CASES = [
    {"fn": "kl", "h1": "h1", "h2": "h2", "args": {"lambda_c": 0.7}},
    {"fn": "kl", "h1": "h1", "h2": "h2", "args": {"lambda_c": 2.0, "alpha": 0.0, "beta": 3.0}},
    {
        "fn": "kl",
        "h1": "h1",
        "h2": "h2",
        "args": {"lambda_c": 1.3, "alpha": 0.5, "beta": 0.0, "temperature": 2.5},
    },
    {
        "fn": "kl",
        "h1": "h1",
        "h2": "h2",
        "args": {"lambda_c": 0.9, "temperature": 4.0, "reduction": "none"},
    },
    {"fn": "lm", "h1": "h1", "h2": "h2", "args": {"lambda_c": 0.7}},
    {"fn": "lm", "h1": "h1", "h2": "h2", "args": {"lambda_c": 2.0, "alpha": 0.0, "beta": 3.0}},
    {"fn": "lm", "h1": "h1", "h2": "h2", "args": {"lambda_c": 0.4, "reduction": "sum"}},
    {"fn": "lm", "h1": "h1_pad", "h2": "h2_pad", "args": {"lambda_c": 1.1, "reduction": "none"}},
    {"fn": "kl", "h1": "h1_pad", "h2": "h2_pad", "args": {"lambda_c": 1.1}},
    {"fn": "kl_loss", "args": {"lambda_c": 0.8, "alpha": 1.0, "beta": 4.0, "temperature": 2.0}},
    {"fn": "lm_loss", "args": {"lambda_c": 0.3, "alpha": 0.5, "beta": 2.0}},
]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs PyTorch for the reference values"
)


def keras_mlp(arrays: dict[str, np.ndarray], prefix: str, activation: str | None) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((D,)),
            keras.layers.Dense(H, activation="relu"),
            keras.layers.Dense(K, activation=activation),
        ]
    )
    model.set_weights([arrays[f"{prefix}_{n}"] for n in ("w1", "b1", "w2", "b2")])
    return model


@pytest.fixture(scope="module")
def arrays_and_torch_values(tmp_path_factory):
    rng = np.random.default_rng(16)
    arrays = {
        "h1": (2 * rng.normal(size=(B, K))).astype(np.float32),
        "h2": (2 * rng.normal(size=(B, K))).astype(np.float32),
        "x": rng.normal(size=(B, D)).astype(np.float32),
    }
    y = rng.integers(0, K, size=B)
    y[: B // 2] = arrays["h1"].argmax(1)[: B // 2]  # h1 right on the first half at least
    arrays["y"] = y.astype(np.int64)
    # class-incremental padding: h1 never saw the last class
    arrays["h1_pad"] = arrays["h1"].copy()
    arrays["h1_pad"][:, -1] = PAD_LOGIT
    arrays["h2_pad"] = arrays["h2"]
    for prefix in ("h1", "h2"):
        arrays[f"{prefix}_w1"] = (0.6 * rng.normal(size=(D, H))).astype(np.float32)
        arrays[f"{prefix}_b1"] = (0.1 * rng.normal(size=H)).astype(np.float32)
        arrays[f"{prefix}_w2"] = (0.6 * rng.normal(size=(H, K))).astype(np.float32)
        arrays[f"{prefix}_b2"] = (0.1 * rng.normal(size=K)).astype(np.float32)
    mlp_h1 = keras_mlp(arrays, "h1", None)(arrays["x"]).numpy()
    y_mlp = rng.integers(0, K, size=B)
    y_mlp[: B // 2] = mlp_h1.argmax(1)[: B // 2]
    arrays["y_mlp"] = y_mlp.astype(np.int64)
    folder = tmp_path_factory.mktemp("fd_parity")
    np.savez(folder / "in.npz", **arrays)
    (folder / "cases.json").write_text(json.dumps(CASES))
    script = Path(__file__).with_name("torch_fd_reference.py")
    files = [str(folder / n) for n in ("in.npz", "cases.json", "out.json")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(script), *files], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return arrays, json.loads((folder / "out.json").read_text())


def test_h1_is_right_on_part_of_the_batch(arrays_and_torch_values):
    arrays, _ = arrays_and_torch_values
    right = (arrays["h1"].argmax(1) == arrays["y"]).mean()
    assert 0.5 <= right < 1.0


@pytest.mark.parametrize(
    "index", range(len(CASES)), ids=[f"{c['fn']}-{i}" for i, c in enumerate(CASES)]
)
def test_tensorflow_equals_pytorch(arrays_and_torch_values, index):
    arrays, torch_values = arrays_and_torch_values
    case = CASES[index]
    fn, args = case["fn"], dict(case["args"])
    if fn in ("kl", "lm"):
        h1, h2 = arrays[case["h1"]], arrays[case["h2"]]
        function = focal_distillation_kl if fn == "kl" else focal_distillation_lm
        value = function(h2, h1, arrays["y"], **args)
    else:
        h1, h2 = keras_mlp(arrays, "h1", None), keras_mlp(arrays, "h2", None)
        cls = FocalDistillationKLLoss if fn == "kl_loss" else FocalDistillationLMLoss
        lambda_c = args.pop("lambda_c")
        value = cls(h1, h2, lambda_c, from_logits=True, **args)(arrays["x"], arrays["y_mlp"])
    np.testing.assert_allclose(value.numpy(), torch_values[index], rtol=1e-5, atol=1e-6)


def test_kl_loss_on_probabilities_equals_on_logits(arrays_and_torch_values):
    arrays, _ = arrays_and_torch_values
    on_logits = FocalDistillationKLLoss(
        keras_mlp(arrays, "h1", None), keras_mlp(arrays, "h2", None), 0.8, from_logits=True
    )(arrays["x"], arrays["y_mlp"])
    on_probabilities = FocalDistillationKLLoss(
        keras_mlp(arrays, "h1", "softmax"), keras_mlp(arrays, "h2", "softmax"), 0.8
    )(arrays["x"], arrays["y_mlp"])
    np.testing.assert_allclose(on_probabilities.numpy(), on_logits.numpy(), rtol=1e-5)


def test_alpha_zero_acts_only_where_h1_is_right(arrays_and_torch_values):
    arrays = arrays_and_torch_values[0]
    weight = focal_weight(arrays["h1"], arrays["y"], 0.0, 2.0).numpy()
    right = arrays["h1"].argmax(1) == arrays["y"]
    np.testing.assert_array_equal(weight, np.where(right, 2.0, 0.0))
    per_sample = focal_distillation_lm(
        arrays["h2"], arrays["h1"], arrays["y"], 1.0, 0.0, 2.0, "none"
    ).numpy()
    assert (per_sample[~right] == 0).all() and (per_sample[right] > 0).all()


def test_no_gradient_reaches_h1(arrays_and_torch_values):
    arrays = arrays_and_torch_values[0]
    h1, h2 = tf.Variable(arrays["h1"]), tf.Variable(arrays["h2"])
    for function in (focal_distillation_kl, focal_distillation_lm):
        with tf.GradientTape() as tape:
            value = function(h2, h1, arrays["y"], 1.0)
        g2, g1 = tape.gradient(value, [h2, h1])
        assert g1 is None and np.isfinite(g2.numpy()).all()


def test_bad_options_are_refused():
    h1 = keras_mlp({f"h_{n}": v for n, v in _zeros().items()}, "h", None)
    h2 = keras_mlp({f"h_{n}": v for n, v in _zeros().items()}, "h", None)
    with pytest.raises(ValueError, match="from_logits=True"):
        FocalDistillationLMLoss(h1, h2, 1.0)
    with pytest.raises(ValueError, match="beta"):
        FocalDistillationKLLoss(h1, h2, 1.0, beta=-1.0)
    with pytest.raises(ValueError, match="lambda_c"):
        focal_distillation_lm(np.zeros((2, 3)), np.zeros((2, 3)), np.array([0, 1]), -1.0)
    with pytest.raises(ValueError, match="shape"):
        focal_distillation_kl(np.zeros((2, 3)), np.zeros((2, 4)), np.array([0, 1]), 1.0)


def _zeros() -> dict[str, np.ndarray]:
    return {
        "w1": np.zeros((D, H), np.float32),
        "b1": np.zeros(H, np.float32),
        "w2": np.zeros((H, K), np.float32),
        "b2": np.zeros(K, np.float32),
    }
