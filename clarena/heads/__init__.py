"""Output heads: features of a task → logits, one kind per scenario.

- `TaskHeads` (TIL): one linear head per task, selected by the batch's task ids.
- `GrowingHead` (CIL): one linear layer over every class seen so far; growing keeps the old
  classes' weights. With `num_outputs` (the dataset's `head_outputs`, `active_classes: all`) the
  layer has every class of the sequence from the first task.
- `SharedHead` (DIL, DataIL): one linear layer shared by all tasks.

`make_heads(scenario, in_features, num_outputs=None)` builds the right one. Every head has
`setup_task(task_id, num_classes)` (called at the start of each task with the dataset's
`output_dim(task_id)`), `forward(features, task_ids)` → logits, and `class_range(task_id)`, the
columns of the logits that belong to a task (for task-aware predictions).
"""

from clarena.heads.heads import (
    PAD_LOGIT,
    GrowingHead,
    Heads,
    SharedHead,
    TaskHeads,
    make_heads,
)

__all__ = ["PAD_LOGIT", "GrowingHead", "Heads", "SharedHead", "TaskHeads", "make_heads"]
