"""Continual-learning algorithms and the regularizers they are composed from.

Every algorithm is a `CLAlgorithm` (a `LightningModule`) in its own module, built as
`Algorithm(backbone, heads, optimizer, scenario, **hyper_parameters)`; its `supported_scenarios`
are checked at construction. `ALGORITHMS` maps each config name (`configs/cl_algorithm/<name>.yaml`)
to its class.

| name | class | supports | loss terms |
|---|---|---|---|
| `finetuning` | `Finetuning` | all | `ce` |
| `joint` | `Joint` | all | `ce` (on all data so far) |
| `lwf` | `LwF` | all | `ce`, `distillation` |
| `ewc` | `EWC` | all | `ce`, `ewc` |
| `er` | `ER` | all | `ce`, `replay_ce` |
| `der` | `DER` | all | `ce`, `logit_replay` |
| `derpp` | `DERPP` | all | `ce`, `logit_replay`, `replay_ce` |
| `bc_new_error` | `BCNewError` | all (TIL, CIL: with a buffer) | `ce`, `replay_ce`¹, `dissonance` |
| `strict_imitation` | `StrictImitation` | all (TIL, CIL: with a buffer) | as `bc_new_error` |
| `focal_distillation` | `FocalDistillation` | all (TIL, CIL: with a buffer) | as `bc_new_error` |
| `elodi` | `ELODI` | DIL, DataIL | `ce`, `ldi` (towards an ensemble) |
| `bcwi` | `BCWI` | DIL, DataIL | `ce` (weights interpolated towards h1 after training) |
| `icarl` | `ICaRL` | CIL, TIL | `bce`, `distillation` (test: nearest mean of exemplars) |
| `si` | `SI` | all | `ce`, `si` |
| `mas` | `MAS` | all | `ce`, `mas` |
| `agem` | `AGEM` | all | `ce` (its gradient projected) |
| `hat` | `HAT` | TIL (MLP backbone) | `ce`, `capacity` |
| `composed` | `Composed` | as its terms allow | the names of its terms |

¹ only with a replay buffer.

A new algorithm is a YAML file composing terms (`Composed`, `clarena.cl_algorithms.terms`; see
`docs/composing.md` and `configs/cl_algorithm/lwf_bc.yaml`), or a subclass implementing
`loss_terms(batch)` from the regularizers in `clarena.cl_algorithms.regularizers` (see
`docs/examples/lwf_with_bc.py`). Submodules are imported on first use, so importing
`clarena.cl_algorithms.regularizers` alone imports neither Lightning nor the algorithms.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from clarena.core.lazy import lazy_exports

if TYPE_CHECKING:  # what `__getattr__` imports on first use, for type checkers and `clarena list`
    from clarena.cl_algorithms.agem import AGEM
    from clarena.cl_algorithms.base import CLAlgorithm
    from clarena.cl_algorithms.bc_base import BCAlgorithm
    from clarena.cl_algorithms.bc_new_error import BCNewError
    from clarena.cl_algorithms.bcwi import BCWI
    from clarena.cl_algorithms.composed import Composed
    from clarena.cl_algorithms.deployed import DeployedModel
    from clarena.cl_algorithms.der import DER
    from clarena.cl_algorithms.derpp import DERPP
    from clarena.cl_algorithms.elodi import ELODI
    from clarena.cl_algorithms.er import ER
    from clarena.cl_algorithms.ewc import EWC
    from clarena.cl_algorithms.finetuning import Finetuning
    from clarena.cl_algorithms.focal_distillation import FocalDistillation
    from clarena.cl_algorithms.hat import HAT
    from clarena.cl_algorithms.icarl import ICaRL
    from clarena.cl_algorithms.joint import Joint
    from clarena.cl_algorithms.lwf import LwF
    from clarena.cl_algorithms.mas import MAS
    from clarena.cl_algorithms.replay_buffer import ReplayBuffer
    from clarena.cl_algorithms.si import SI
    from clarena.cl_algorithms.snapshot import Snapshot
    from clarena.cl_algorithms.strict_imitation import StrictImitation

    ALGORITHMS: dict[str, type[CLAlgorithm]]

# The package imports its submodules on first use (PEP 562), so that importing the math alone
# (`clarena.cl_algorithms.regularizers`, which `clarena.losses` uses) does not import Lightning
# and every algorithm.
_CLASSES: dict[str, str] = {
    "AGEM": "agem",
    "BCAlgorithm": "bc_base",
    "BCWI": "bcwi",
    "BCNewError": "bc_new_error",
    "CLAlgorithm": "base",
    "Composed": "composed",
    "DER": "der",
    "DeployedModel": "deployed",
    "DERPP": "derpp",
    "ELODI": "elodi",
    "ER": "er",
    "EWC": "ewc",
    "Finetuning": "finetuning",
    "FocalDistillation": "focal_distillation",
    "HAT": "hat",
    "ICaRL": "icarl",
    "Joint": "joint",
    "LwF": "lwf",
    "MAS": "mas",
    "ReplayBuffer": "replay_buffer",
    "SI": "si",
    "Snapshot": "snapshot",
    "StrictImitation": "strict_imitation",
}
"""Class name → the submodule defining it."""

_REGISTRY: dict[str, str] = {
    "finetuning": "Finetuning",
    "joint": "Joint",
    "lwf": "LwF",
    "ewc": "EWC",
    "er": "ER",
    "der": "DER",
    "derpp": "DERPP",
    "bc_new_error": "BCNewError",
    "strict_imitation": "StrictImitation",
    "focal_distillation": "FocalDistillation",
    "elodi": "ELODI",
    "bcwi": "BCWI",
    "icarl": "ICaRL",
    "si": "SI",
    "mas": "MAS",
    "agem": "AGEM",
    "hat": "HAT",
    "composed": "Composed",
}
"""Config name → class name: `ALGORITHMS`, the one registry (the tests iterate it), maps each
config name to its class. The YAML-only compositions of `Composed` (`lwf_bc`, `er_strict`,
`ewc_lwf`, `der_bc`) are configs of `composed`'s class, not registry entries."""

__all__ = [
    "AGEM",
    "ALGORITHMS",
    "BCWI",
    "DER",
    "DERPP",
    "ELODI",
    "ER",
    "EWC",
    "HAT",
    "MAS",
    "SI",
    "BCAlgorithm",
    "BCNewError",
    "CLAlgorithm",
    "Composed",
    "DeployedModel",
    "Finetuning",
    "FocalDistillation",
    "ICaRL",
    "Joint",
    "LwF",
    "ReplayBuffer",
    "Snapshot",
    "StrictImitation",
    # submodules, listed so that the API docs include them
    "agem",
    "base",
    "bc_base",
    "bc_new_error",
    "bcwi",
    "composed",
    "deployed",
    "der",
    "derpp",
    "elodi",
    "er",
    "ewc",
    "exemplars",
    "finetuning",
    "focal_distillation",
    "hat",
    "icarl",
    "joint",
    "lwf",
    "mas",
    "regularizers",
    "replay_buffer",
    "si",
    "snapshot",
    "strict_imitation",
    "terms",
]

_SUBMODULES = frozenset(n for n in __all__ if n[0].islower() and n != "ALGORITHMS")


def _algorithms() -> dict[str, type]:
    package = sys.modules[__name__]
    return {config: getattr(package, cls) for config, cls in _REGISTRY.items()}


__getattr__, __dir__ = lazy_exports(
    __name__, globals(), _CLASSES, _SUBMODULES, computed={"ALGORITHMS": _algorithms}
)
