"""Each TensorFlow loss equals the PyTorch loss of the same name on the same weights and batch.

The PyTorch side runs in a separate process (`torch_reference.py`): TensorFlow is already imported
here, and importing torch after it aborts the interpreter.
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

import clarena.tensorflow as ctf

B, D, H, K = 32, 8, 16, 5
MULTICLASS = ["NLLLoss", "CrossEntropyLoss", "KLDivergenceLoss"]
CASES = (
    [{"name": f"BC{n}", "lambda_c": 0.7, "options": {}} for n in MULTICLASS]
    + [{"name": f"StrictImitation{n}", "lambda_c": 0.7, "options": {}} for n in MULTICLASS]
    + [
        {"name": "BCBinaryCrossEntropyLoss", "lambda_c": 0.7, "options": {}},
        {"name": "StrictImitationBinaryCrossEntropyLoss", "lambda_c": 0.7, "options": {}},
        {"name": "BCCrossEntropyLoss", "lambda_c": 1.3, "options": {"reduction": "sum"}},
        {"name": "BCNLLLoss", "lambda_c": 0.4, "options": {"reduction": "none"}},
        {
            "name": "StrictImitationKLDivergenceLoss",
            "lambda_c": 0.9,
            "options": {"temperature": 2.0, "focal_alpha": 0.5, "reduction": "none"},
        },
        {
            "name": "StrictImitationCrossEntropyLoss",
            "lambda_c": 0.9,
            "options": {"temperature": 3.0, "focal_alpha": 0.25},
        },
        {
            "name": "StrictImitationBinaryCrossEntropyLoss",
            "lambda_c": 0.6,
            "options": {"temperature": 2.0, "focal_alpha": 0.5, "discriminant_pivot": 0.3},
        },
        {
            "name": "BCBinaryCrossEntropyLoss",
            "lambda_c": 0.6,
            "options": {"discriminant_pivot": 0.7},
        },
    ]
)
for case in CASES:
    case["binary"] = "Binary" in case["name"]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("clarena.losses") is None,
    reason="needs PyTorch and clarena.losses",
)


def weights(rng: np.random.Generator, prefix: str, outputs: int) -> dict[str, np.ndarray]:
    def normal(*shape: int, scale: float) -> np.ndarray:
        return (rng.normal(size=shape) * scale).astype(np.float32)

    return {
        f"{prefix}_w1": normal(D, H, scale=0.6),
        f"{prefix}_b1": normal(H, scale=0.1),
        f"{prefix}_w2": normal(H, outputs, scale=0.6),
        f"{prefix}_b2": normal(outputs, scale=0.1),
    }


def keras_mlp(arrays: dict[str, np.ndarray], prefix: str, activation: str | None) -> keras.Model:
    outputs = arrays[f"{prefix}_b2"].shape[0]
    model = keras.Sequential(
        [
            keras.Input((D,)),
            keras.layers.Dense(H, activation="relu"),
            keras.layers.Dense(outputs, activation=activation),
        ]
    )
    model.set_weights([arrays[f"{prefix}_{n}"] for n in ("w1", "b1", "w2", "b2")])
    return model


@pytest.fixture(scope="module")
def batch_and_torch_values(tmp_path_factory):
    rng = np.random.default_rng(7)
    arrays = {"x": rng.normal(size=(B, D)).astype(np.float32)}
    for prefix, outputs in (("multi_h1", K), ("multi_h2", K), ("bin_h1", 1), ("bin_h2", 1)):
        arrays.update(weights(rng, prefix, outputs))
    # Labels: h1's own prediction on the first half (in the support), random on the second.
    h1_logits = keras_mlp(arrays, "multi_h1", None)(arrays["x"]).numpy()
    y = rng.integers(0, K, size=B)
    y[: B // 2] = h1_logits.argmax(1)[: B // 2]
    arrays["y"] = y.astype(np.int64)
    arrays["y_bin"] = rng.integers(0, 2, size=B).astype(np.float32)
    folder = tmp_path_factory.mktemp("parity")
    np.savez(folder / "batch.npz", **arrays)
    (folder / "cases.json").write_text(json.dumps(CASES))
    script = Path(__file__).with_name("torch_reference.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, str(script), *(str(folder / n) for n in ("batch.npz", "cases.json"))]
    result = subprocess.run(
        [*args, str(folder / "out.json")], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return arrays, json.loads((folder / "out.json").read_text())


def test_h1_is_right_on_part_of_the_batch(batch_and_torch_values):
    arrays, _ = batch_and_torch_values
    h1 = keras_mlp(arrays, "multi_h1", None)
    right = (h1(arrays["x"]).numpy().argmax(1) == arrays["y"]).mean()
    assert 0.5 <= right < 1.0


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["name"] for c in CASES])
def test_tensorflow_loss_equals_pytorch_loss(batch_and_torch_values, index):
    arrays, torch_values = batch_and_torch_values
    case = CASES[index]
    prefix = "bin" if case["binary"] else "multi"
    activation = "sigmoid" if case["binary"] else "softmax"  # Keras convention: probabilities
    h1 = keras_mlp(arrays, f"{prefix}_h1", activation)
    h2 = keras_mlp(arrays, f"{prefix}_h2", activation)
    y = arrays["y_bin" if case["binary"] else "y"]
    loss_fn = getattr(ctf, case["name"])(h1, h2, case["lambda_c"], **case["options"])
    np.testing.assert_allclose(loss_fn(arrays["x"], y).numpy(), torch_values[index], rtol=1e-5)


@pytest.mark.parametrize("binary", [False, True])
def test_from_logits_equals_pytorch_on_logits(batch_and_torch_values, binary):
    arrays, torch_values = batch_and_torch_values
    name = "StrictImitationBinaryCrossEntropyLoss" if binary else "StrictImitationCrossEntropyLoss"
    index = next(i for i, c in enumerate(CASES) if c["name"] == name and not c["options"])
    prefix = "bin" if binary else "multi"
    h1, h2 = keras_mlp(arrays, f"{prefix}_h1", None), keras_mlp(arrays, f"{prefix}_h2", None)
    loss_fn = getattr(ctf, name)(h1, h2, 0.7, from_logits=True)
    y = arrays["y_bin" if binary else "y"]
    np.testing.assert_allclose(float(loss_fn(arrays["x"], y)), torch_values[index], rtol=1e-5)
