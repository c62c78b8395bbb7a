"""clarena: continual learning and backward-compatible model updates for PyTorch.

The package is organised by role:

- `clarena.losses`: the BackwardCompatibilityML-named backward-compatibility losses.
- `clarena.cl_algorithms`: the `CLAlgorithm` base, the algorithms, and
  `clarena.cl_algorithms.regularizers`, the math they are built from.
- `clarena.cl_datasets`: task-sequenced datasets (split, permuted, rotated, data-incremental).
- `clarena.backbones`, `clarena.heads`: feature extractors and scenario-specific output heads.
- `clarena.metrics`: the accuracy matrix, CL metrics and compatibility metrics (the numbers).
- `clarena.reports`: the results files, plots and HTML pages made from them.
- `clarena.run`: one run: the config composed and checked once, the components, the task loop
  and the loop (on Lightning Fabric).
- `clarena.run_folder`: the run folder: lock, checkpoints, log, the checks of a received folder.
- `clarena.commands`: the verbs of the `clarena` command (train, eval, report, compare, ...).
- `clarena.tensorflow`: the Keras interface (extra `clarena[tensorflow]`; never imports torch).

Importing `clarena` itself is cheap: it imports no deep-learning framework.
"""

__version__ = "0.1.0"
