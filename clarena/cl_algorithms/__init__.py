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
| `icarl` | `ICaRL` | CIL, TIL | `bce`, `distillation` (test: nearest mean of exemplars) |
| `si` | `SI` | all | `ce`, `si` |
| `mas` | `MAS` | all | `ce`, `mas` |
| `agem` | `AGEM` | all | `ce` (its gradient projected) |
| `hat` | `HAT` | TIL (MLP backbone) | `ce`, `capacity` |

¹ only with a replay buffer.

A new algorithm is a subclass implementing `loss_terms(batch)` from the regularizers in
`clarena.cl_algorithms.regularizers`; see `docs/examples/lwf_with_bc.py`.
"""

from clarena.cl_algorithms import regularizers
from clarena.cl_algorithms.agem import AGEM
from clarena.cl_algorithms.base import CLAlgorithm
from clarena.cl_algorithms.bc_base import BCAlgorithm
from clarena.cl_algorithms.bc_new_error import BCNewError
from clarena.cl_algorithms.der import DER
from clarena.cl_algorithms.derpp import DERPP
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

ALGORITHMS: dict[str, type[CLAlgorithm]] = {
    "finetuning": Finetuning,
    "joint": Joint,
    "lwf": LwF,
    "ewc": EWC,
    "er": ER,
    "der": DER,
    "derpp": DERPP,
    "bc_new_error": BCNewError,
    "strict_imitation": StrictImitation,
    "focal_distillation": FocalDistillation,
    "icarl": ICaRL,
    "si": SI,
    "mas": MAS,
    "agem": AGEM,
    "hat": HAT,
}
"""Config name → algorithm class (the one registry; the tests iterate it)."""

__all__ = [
    "AGEM",
    "ALGORITHMS",
    "DER",
    "DERPP",
    "ER",
    "EWC",
    "HAT",
    "MAS",
    "SI",
    "BCAlgorithm",
    "BCNewError",
    "CLAlgorithm",
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
    "der",
    "derpp",
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
]
