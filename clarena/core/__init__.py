"""The ground floor: facts and helpers shared by several wings, free of torch and TensorFlow.

Everything here imports only the standard library (and numpy), so the PyTorch side, the
TensorFlow side and the command-line tools can all use it without pulling in a framework.

- `clarena.core.files`: atomic file writes that honour the umask, and one-line descriptions of
  operating-system errors.
- `clarena.core.scenarios`: the scenario names `SCENARIOS` (heads, datasets and the config check
  import them).
- `clarena.core.idx`: `read_idx`, the reader of MNIST's and Fashion-MNIST's IDX files (the
  datasets, the TensorFlow tests and the benchmarks use it).
- `clarena.core.compatibility`: the names of the compatibility counts and the formulas of NFR,
  PFR, NFI, BTC and BEC (the torch metrics, the release statistics and the Keras helpers use them).
"""
