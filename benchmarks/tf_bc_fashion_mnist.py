"""BackwardCompatibilityML's TensorFlow MNIST protocol, on Fashion-MNIST, with clarena.tensorflow.

The original example (`examples/tensorflow-MNIST.ipynb` of microsoft/BackwardCompatibilityML)
trains h1 = Flatten → Dense(128, relu) → Dense(10, softmax) for 3 epochs (Adam 0.001, batch 128,
sparse cross-entropy), freezes it, then trains h2 of the same architecture for 6 epochs with
`BCNewErrorCompatibilityModel(..., h1=h1, lambda_c=λc)` and the same compile/fit settings, and
scores h2 against h1 on the test set. It reported BEC 0.581 at λc = 0 and 0.673 at λc = 0.9 for
0.3 points of accuracy (MNIST, one seed).

Here: the real Fashion-MNIST from Debian's `dataset-fashion-mnist` (60,000 training and 10,000
test images), λc ∈ {0, 0.5, 0.9}, several seeds. For each seed one h1 is trained and every λc
starts h2 from the same initial weights and sees the same batch order, so λc is the only
difference. Reported per λc (mean ± std over seeds): h2's test accuracy, BTC, BEC (÷ h2's
errors, the paper's definition), BEC as the original library's code computes it (÷ h1's errors,
the number its notebook printed), NFR and PFR.

    python benchmarks/tf_bc_fashion_mnist.py            # the full protocol, 3 seeds
    python benchmarks/tf_bc_fashion_mnist.py --train-subset 10000 --seeds 0   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf
from keras.layers import Dense, Flatten, Input

from clarena.core.idx import read_idx
from clarena.tensorflow import BCNewErrorCompatibilityModel, compatibility_scores

DATA = Path("/usr/share/datasets/fashion-mnist")


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(DATA / f"{prefix}-images-idx3-ubyte.gz")[..., None].astype(np.float32) / 255.0
    y = read_idx(DATA / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return x, y


def architecture() -> list[keras.layers.Layer]:
    return [Input((28, 28, 1)), Flatten(), Dense(128, activation="relu"), Dense(10, "softmax")]


def compile_args() -> dict:
    return {
        "loss": keras.losses.sparse_categorical_crossentropy,
        "optimizer": keras.optimizers.Adam(0.001),
        "metrics": ["accuracy"],
    }


def run(args: argparse.Namespace) -> dict:
    x_train, y_train = load("train")
    x_test, y_test = load("test")
    if args.train_subset:
        x_train, y_train = x_train[: args.train_subset], y_train[: args.train_subset]
    runs = []
    for seed in args.seeds:
        keras.utils.set_random_seed(seed)
        train = (
            tf.data.Dataset.from_tensor_slices((x_train, y_train))
            .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
            .batch(128)
        )
        h1 = keras.Sequential(architecture())
        h1.compile(**compile_args())
        h1.fit(train, epochs=args.epochs_h1, verbose=0)
        h1.trainable = False
        h1_right = h1.predict(x_test, batch_size=1000, verbose=0).argmax(1) == y_test
        keras.utils.set_random_seed(seed + 1000)
        initial = keras.Sequential(architecture()).get_weights()
        for lambda_c in args.lambdas:
            keras.utils.set_random_seed(seed + 2000)  # the same batch order for every λc
            start = time.perf_counter()
            h2 = BCNewErrorCompatibilityModel(architecture(), h1=h1, lambda_c=lambda_c)
            h2.set_weights(initial)
            h2.compile(**compile_args())
            h2.fit(train, epochs=args.epochs_h2, verbose=0)
            h2_right = h2.predict(x_test, batch_size=1000, verbose=0).argmax(1) == y_test
            scores = compatibility_scores(h1_right, h2_right)
            both_wrong = int((~h1_right & ~h2_right).sum())
            runs.append(
                {
                    "seed": seed,
                    "lambda_c": lambda_c,
                    "h1_accuracy": float(h1_right.mean()),
                    "accuracy": float(h2_right.mean()),
                    **scores,
                    "bec_original_code": both_wrong / int((~h1_right).sum()),
                    "seconds": time.perf_counter() - start,
                }
            )
            print(json.dumps(runs[-1]), flush=True)
    return {"runs": runs, "summary": summarise(runs, args.lambdas)}


def summarise(runs: list[dict], lambdas: list[float]) -> list[dict]:
    keys = ["h1_accuracy", "accuracy", "btc", "bec", "bec_original_code", "nfr", "pfr"]
    table = []
    for lambda_c in lambdas:
        chosen = [r for r in runs if r["lambda_c"] == lambda_c]
        row = {"lambda_c": lambda_c, "seeds": len(chosen)}
        for key in keys:
            values = np.array([r[key] for r in chosen])
            row[key] = float(values.mean())
            row[f"{key}_std"] = float(values.std())
        table.append(row)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 0.5, 0.9])
    parser.add_argument("--epochs-h1", type=int, default=3)
    parser.add_argument("--epochs-h2", type=int, default=6)
    parser.add_argument("--train-subset", type=int, default=0, help="first N training images")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).with_name("tf_bc_fashion_mnist.json")
    )
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"needs Debian's dataset-fashion-mnist package ({DATA} is missing)")
    start = time.perf_counter()
    result = run(args)
    result["protocol"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result["machine"] = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cpu_count": os.cpu_count(),
        "total_seconds": time.perf_counter() - start,
    }
    tmp = args.output.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.output)
    print(f"{'λc':>5} {'acc':>7} {'BTC':>7} {'BEC':>7} {'BEC(orig)':>9} {'NFR':>7} {'PFR':>7}")
    for row in result["summary"]:
        print(
            f"{row['lambda_c']:>5} {row['accuracy']:.4f} {row['btc']:.4f} {row['bec']:.4f} "
            f"{row['bec_original_code']:>9.4f} {row['nfr']:.4f} {row['pfr']:.4f}"
        )


if __name__ == "__main__":
    main()
