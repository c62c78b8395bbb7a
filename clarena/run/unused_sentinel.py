"""A parameter no step uses, so that DDP with `find_unused_parameters=True` never warns.

A continual-learning step often leaves parameters without a gradient: in task-incremental
learning the heads of the tasks absent from a batch, and with replay that set changes from step to
step and from rank to rank. DDP copes with it only with `find_unused_parameters=True` (each step
it walks the autograd graph and all-reduces which parameters were used), and its reducer then
prints a C++ warning on every rank (c10 logging, out of reach of Python's `warnings`) the first
time a step happens to use every parameter: "find_unused_parameters=True was specified in DDP
constructor, but did not find any unused parameters". The walk is needed, so the warning is wrong
for these runs.

`add_unused_sentinel(module)`, called before the module is wrapped in DDP, registers a one-element
parameter that no forward pass uses: the reducer always finds one unused parameter, so the
warning's condition never holds, and everything else stays DDP's own code. Its dtype is one no
other parameter has, so DDP puts it in a bucket of its own (one more one-element all-reduce per
step) and the buckets of the other parameters, and so the order in which gradients are summed,
stay as without it. Its gradient stays `None` (no rank uses it), so no optimizer moves it, and it
is left out of `state_dict` (and not expected by `load_state_dict`): checkpoints are as without
it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

SENTINEL = "_ddp_unused_sentinel"
"""The sentinel's name among the module's parameters."""


def add_unused_sentinel(module: nn.Module) -> nn.Parameter:
    """Register the sentinel on `module` (once; later calls return the one there)."""
    existing = module._parameters.get(SENTINEL)
    if existing is not None:
        return existing
    taken = {p.dtype for p in module.parameters()}
    dtype = next(d for d in (torch.float64, torch.float32, torch.bfloat16) if d not in taken)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    sentinel = nn.Parameter(torch.zeros(1, dtype=dtype, device=device))
    module.register_parameter(SENTINEL, sentinel)

    def leave_out(_module: nn.Module, state: dict[str, Any], prefix: str, _local: Any) -> None:
        state.pop(prefix + SENTINEL, None)

    def fill_in(state: dict[str, Any], prefix: str, *_args: Any) -> None:
        state.setdefault(prefix + SENTINEL, sentinel.detach())

    module._register_state_dict_hook(leave_out)
    module._register_load_state_dict_pre_hook(fill_in)
    return sentinel
