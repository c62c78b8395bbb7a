"""The unused sentinel: DDP with `find_unused_parameters=True` keeps its results and stops warning
on every rank (issue 37, item 16)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from torch import nn

from clarena.run.unused_sentinel import SENTINEL, add_unused_sentinel

WARNING = "find_unused_parameters=True was specified in DDP constructor"


def test_the_sentinel_is_invisible_to_state_dicts_and_added_once() -> None:
    module = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    before = module.state_dict()
    sentinel = add_unused_sentinel(module)
    assert add_unused_sentinel(module) is sentinel
    assert sentinel.dtype == torch.float64 and sentinel.shape == (1,)
    assert SENTINEL in dict(module.named_parameters())
    assert module.state_dict().keys() == before.keys()
    module.load_state_dict(before)  # strict: a state dict without it loads
    half = nn.Linear(2, 2).to(torch.float64)
    assert add_unused_sentinel(half).dtype == torch.float32  # a dtype of its own


SCRIPT = """
import hashlib, sys
import torch, torch.distributed as dist, torch.multiprocessing as mp
from torch import nn

class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2), nn.Linear(4, 2)

    def forward(self, x, heads):
        h = self.body(x)
        return sum((getattr(self, k)(h).sum() for k in heads), h.sum())

def work(rank, init, mode):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = TwoHeads()
    if mode == "sentinel":
        from clarena.run.unused_sentinel import add_unused_sentinel
        add_unused_sentinel(model)
    ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if n[0] in "ab"], lr=0.1)
    digest = hashlib.sha256()
    torch.manual_seed(1 + rank)
    # step 1 uses every head (the warning's case), step 2 head a on rank 0 only, step 3 none
    for heads in (("a", "b"), ("a",) if rank == 0 else (), ()):
        opt.zero_grad()
        ddp(torch.randn(8, 4), heads).backward()
        opt.step()
        for name, p in sorted(model.named_parameters()):
            if name != "_ddp_unused_sentinel":
                digest.update(name.encode())
                digest.update(b"none" if p.grad is None else p.grad.numpy().tobytes())
                digest.update(p.detach().numpy().tobytes())
    if rank == 0:
        print("DIGEST", digest.hexdigest())
    dist.destroy_process_group()

if __name__ == "__main__":
    mp.spawn(work, args=(sys.argv[1], sys.argv[2]), nprocs=2)
"""


def _run(tmp_path: Path, mode: str) -> tuple[str, str]:
    script = tmp_path / "ddp_probe.py"
    script.write_text(textwrap.dedent(SCRIPT))
    init = tmp_path / f"init_{mode}"
    done = subprocess.run(
        [sys.executable, str(script), str(init), mode],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    digest = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("DIGEST"))
    return digest, done.stderr


def test_ddp_results_are_unchanged_and_no_rank_warns(tmp_path: Path) -> None:
    plain_digest, plain_err = _run(tmp_path, "plain")
    assert plain_err.count(WARNING) == 2  # the defect: once per rank
    digest, err = _run(tmp_path, "sentinel")
    assert WARNING not in err
    assert digest == plain_digest  # every gradient (None included) and parameter, bit for bit
