"""The continual-learning scenario names, defined once for every wing.

- `"TIL"`: task-incremental, the task id is given at test time (one head per task);
- `"CIL"`: class-incremental, one growing label space and no task id;
- `"DIL"`: domain-incremental, one shared head over the same classes in every task;
- `"DataIL"`: data-incremental, new samples of the same classes in every task.

See `docs/architecture.md`.
"""

from __future__ import annotations

SCENARIOS: tuple[str, ...] = ("TIL", "CIL", "DIL", "DataIL")
"""The scenario names, in the order the documentation lists them."""
