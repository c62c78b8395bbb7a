"""Collectives of a run on several processes (DDP through Lightning Fabric), and no-ops on one.

Everything here works whether or not `torch.distributed` is initialised: on one process each
function returns its input (or does nothing), so callers need no branch.

- `gather_rows` concatenates tensors of different lengths from every rank, in rank order.
- `gather_sharded` undoes the evaluation sharding of `clarena.cl_datasets.loader.InMemoryLoader`
  (rank $r$ holds positions $r, r + W, r + 2W, \\dots$): the result is in the dataset's own order,
  exactly as one process would have produced it, with no padded duplicates.
- `barrier` waits for every rank; `rank` and `world_size` tell where this process stands.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _active() -> bool:
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return torch.distributed.get_rank() if _active() else 0


def world_size() -> int:
    """The number of processes (1 when not distributed)."""
    return torch.distributed.get_world_size() if _active() else 1


def barrier() -> None:
    """Wait until every rank arrives (nothing on one process)."""
    if _active():
        torch.distributed.barrier()


def _device_for_collectives(tensor: Tensor) -> torch.device:
    backend = torch.distributed.get_backend()
    return tensor.device if backend != "gloo" else torch.device("cpu")


def _gather_parts(tensor: Tensor) -> list[Tensor]:
    """The rows of `tensor` of every rank, one tensor per rank (lengths may differ)."""
    local = tensor.to(_device_for_collectives(tensor))
    count = torch.tensor([local.shape[0]], device=local.device)
    counts = [torch.zeros_like(count) for _ in range(world_size())]
    torch.distributed.all_gather(counts, count)
    longest = max(int(c) for c in counts)
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.zeros_like(padded) for _ in counts]
    torch.distributed.all_gather(parts, padded)
    return [part[: int(c)].to(tensor.device) for part, c in zip(parts, counts, strict=True)]


def gather_rows(tensor: Tensor) -> Tensor:
    """The rows of `tensor` from every rank, concatenated in rank order (lengths may differ).

    Every rank must call it, in the same order, with tensors of the same dtype and trailing shape.
    """
    if not _active():
        return tensor
    return torch.cat(_gather_parts(tensor))


def gather_sharded(tensor: Tensor) -> Tensor:
    """The whole of a strided evaluation shard (`rank::world`), back in the dataset's order."""
    if not _active():
        return tensor
    parts = _gather_parts(tensor)
    world = len(parts)
    out = tensor.new_empty((sum(p.shape[0] for p in parts), *tensor.shape[1:]))
    for r, part in enumerate(parts):
        out[r::world][: part.shape[0]] = part
    return out
