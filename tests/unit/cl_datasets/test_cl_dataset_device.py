"""Data moves to the training device: the trainer's, or the one given explicitly."""

from __future__ import annotations

from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from clarena.cl_datasets import SplitCLDataset


def test_device_follows_the_attached_trainer_unless_given():
    data = SplitCLDataset("digits", "TIL", classes_per_task=2)
    data.setup_task(1)
    assert data.train_dataloader().device == torch.device("cpu")
    data.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("meta")))
    assert data._target_device() == torch.device("meta")
    explicit = SplitCLDataset("digits", "TIL", classes_per_task=2, device="cpu")
    explicit.trainer = data.trainer
    assert explicit._target_device() == torch.device("cpu")


class _DeviceProbe(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(64, 2)
        self.devices: set[str] = set()

    def training_step(self, batch, batch_idx):
        x, y, task_ids = batch
        self.devices.update(t.device.type for t in (x, y, task_ids))
        return nn.functional.cross_entropy(self.net(x.flatten(1)), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.gpu
def test_batches_are_made_on_the_gpu_of_the_trainer():
    data = SplitCLDataset("digits", "TIL", classes_per_task=2, augment=True, crop_padding=1)
    data.setup_task(2)
    model = _DeviceProbe()
    trainer = pl.Trainer(
        accelerator="cuda", devices=1, max_epochs=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    assert model.devices == {"cuda"}
    loader = data.train_dataloader()
    assert loader.images.is_cuda and loader.index.is_cuda
    # The same seed gives the same batches on the GPU, augmentation included.
    first = [x.cpu() for x, _, _ in loader]
    loader.sampler.set_epoch(0)
    assert all(torch.equal(a, b.cpu()) for a, (b, _, _) in zip(first, loader, strict=True))
