"""The PyTorch side of the cross-framework parity test, run in its own process.

Usage: `python torch_reference.py INPUT.npz CASES.json OUTPUT.json`. Builds the same MLPs as the
TensorFlow test from the weights in INPUT.npz (logits out; NLL models end in a log-softmax), runs
each case `{"name": ..., "lambda_c": ..., "options": {...}, "binary": bool}` through the
`clarena.losses` class of that name and writes the values (lists for `reduction="none"`).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from torch import nn

import clarena.losses


def mlp(weights: np.lib.npyio.NpzFile, prefix: str, log_softmax: bool) -> nn.Module:
    w1, b1 = weights[f"{prefix}_w1"], weights[f"{prefix}_b1"]
    w2, b2 = weights[f"{prefix}_w2"], weights[f"{prefix}_b2"]
    first, second = nn.Linear(*w1.shape), nn.Linear(*w2.shape)
    with torch.no_grad():
        for layer, w, b in ((first, w1, b1), (second, w2, b2)):
            layer.weight.copy_(torch.from_numpy(w.T.copy()))  # Keras kernels are (in, out)
            layer.bias.copy_(torch.from_numpy(b))
    layers = [first, nn.ReLU(), second]
    if log_softmax:
        layers.append(nn.LogSoftmax(dim=1))
    return nn.Sequential(*layers)


def main(input_path: str, cases_path: str, output_path: str) -> None:
    data = np.load(input_path)
    x = torch.from_numpy(data["x"])
    with open(cases_path) as f:
        cases = json.load(f)
    results = []
    for case in cases:
        prefix = "bin" if case["binary"] else "multi"
        log_softmax = case["name"].endswith("NLLLoss")
        h1 = mlp(data, f"{prefix}_h1", log_softmax)
        h2 = mlp(data, f"{prefix}_h2", log_softmax)
        y = torch.from_numpy(data["y_bin" if case["binary"] else "y"])
        loss_fn = getattr(clarena.losses, case["name"])(h1, h2, case["lambda_c"], **case["options"])
        value = loss_fn(x, y)
        results.append(value.detach().double().numpy().tolist())
    with open(output_path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
