"""The in-memory loaders drive a Lightning `Trainer` like ordinary DataLoaders."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn

from clarena.cl_datasets import SplitCLDataset


class _Probe(pl.LightningModule):
    """A linear model that records what the trainer fed it."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(64, 2)
        self.seen: list[tuple[str, int, int]] = []
        self.inputs: dict[int, list[torch.Tensor]] = {}

    def training_step(self, batch, batch_idx):
        x, y, _ = batch
        self.seen.append(("train", self.current_epoch, x.shape[0]))
        self.inputs.setdefault(self.current_epoch, []).append(x.clone())
        return nn.functional.cross_entropy(self.net(x.flatten(1)), y)

    def validation_step(self, batch, batch_idx):
        self.seen.append(("val", self.current_epoch, batch[0].shape[0]))

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        self.seen.append((f"test{dataloader_idx}", int(batch[2][0]), batch[0].shape[0]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_fits_and_tests_on_the_in_memory_loaders():
    data = SplitCLDataset("digits", "TIL", classes_per_task=2, batch_size=100, val_fraction=0.1)
    data.setup_task(2)
    model = _Probe()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    # Task 2 holds digits 2 and 3 (177 and 183 samples): 3/4 minus 10% (round) for validation.
    # 2: 177 - 44 = 133 -> 13 val, 120 train; 3: 183 - 45 = 138 -> 14 val, 124 train.
    train = [n for kind, _, n in model.seen if kind == "train"]
    assert train == [100, 100, 44, 100, 100, 44]
    assert [n for kind, _, n in model.seen if kind == "val"][-1:] == [27]
    # Lightning set each epoch's order: a fresh loader set to epoch e replays exactly epoch e.
    for e in (0, 1):
        replay = data.train_dataloader()
        replay.sampler.set_epoch(e)
        assert all(torch.equal(a, b) for a, (b, _, _) in zip(model.inputs[e], replay, strict=True))
    assert not torch.equal(model.inputs[0][0], model.inputs[1][0])  # reshuffled
    model.seen.clear()
    trainer.test(model, datamodule=data, verbose=False)
    # Test: digits 0, 1 (44 + 45) for task 1, digits 2, 3 (44 + 45) for task 2.
    assert sorted(model.seen) == [("test0", 1, 89), ("test1", 2, 89)]
