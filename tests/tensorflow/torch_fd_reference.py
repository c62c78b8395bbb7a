"""The PyTorch side of the focal-distillation parity test, run in its own process.

Usage: `python torch_fd_reference.py INPUT.npz CASES.json OUTPUT.json`. INPUT.npz holds logits
`h1`, `h2`, labels `y` and, for the loss cases, the MLP weights; each case
`{"fn": "kl" | "lm" | "kl_loss" | "lm_loss", "args": {...}}` is computed with
`clarena.cl_algorithms.regularizers` (the loss cases add the mean cross-entropy of h2, as the
TensorFlow loss classes do) and the values are written as JSON (lists for `reduction="none"`).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

from clarena.cl_algorithms.regularizers import focal_distillation_kl, focal_distillation_lm


def mlp_logits(data: np.lib.npyio.NpzFile, prefix: str, x: torch.Tensor) -> torch.Tensor:
    w1, b1 = (torch.from_numpy(data[f"{prefix}_{n}"]) for n in ("w1", "b1"))
    w2, b2 = (torch.from_numpy(data[f"{prefix}_{n}"]) for n in ("w2", "b2"))
    return torch.relu(x @ w1 + b1) @ w2 + b2  # Keras kernels are (in, out)


def main(input_path: str, cases_path: str, output_path: str) -> None:
    data = np.load(input_path)
    with open(cases_path) as f:
        cases = json.load(f)
    results = []
    for case in cases:
        fn, args = case["fn"], case["args"]
        if fn.endswith("_loss"):
            x = torch.from_numpy(data["x"])
            h1, h2 = mlp_logits(data, "h1", x), mlp_logits(data, "h2", x)
            y = torch.from_numpy(data["y_mlp"])
        else:
            h1, h2 = torch.from_numpy(data[case["h1"]]), torch.from_numpy(data[case["h2"]])
            y = torch.from_numpy(data["y"])
        regularizer = focal_distillation_kl if fn.startswith("kl") else focal_distillation_lm
        value = regularizer(h2, h1, y, **args)
        if fn.endswith("_loss"):
            value = value + F.cross_entropy(h2, y)
        results.append(value.detach().double().numpy().tolist())
    with open(output_path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
