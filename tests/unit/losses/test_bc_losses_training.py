"""The original library's documented training loop, on scikit-learn's real 8x8 digits.

BackwardCompatibilityML's documentation trains h2 with `optim.SGD(h2.parameters(), ...,
momentum=...)`, `loss = bc_loss(data, target)`, `loss.backward()`, `optimizer.step()`, with models
(a LogisticRegression, a small ConvolutionalNetwork) that return the triple
`(logits, softmax, log_softmax)`. That code must run unchanged, and the BC loss must do its job:
h1 trained on part of the data, h2 on all of it, lambda_c = 1 keeps more of what h1 got right
(backward trust compatibility) than lambda_c = 0, at a similar accuracy.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn, optim

from clarena import losses


class LogisticRegression(nn.Module):
    """The shape of the original documentation's model: it returns the triple."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x):
        logits = self.linear(x.flatten(1))
        return logits, F.softmax(logits, dim=1), F.log_softmax(logits, dim=1)


class ConvolutionalNetwork(nn.Module):
    """A small CNN for 1x8x8 images, returning the triple like the original's example."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.dropout = nn.Dropout(0.25)
        self.fc = nn.Linear(16 * 2 * 2, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        logits = self.fc(self.dropout(x.flatten(1)))
        return logits, F.softmax(logits, dim=1), F.log_softmax(logits, dim=1)


@pytest.fixture(scope="module")
def digits():
    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(labels)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:1200], y[:1200], x[1200:], y[1200:]


def batches(x, y, seed, size=64):
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(x), size):
        index = order[start : start + size]
        yield x[index], y[index]


def train_h1(x, y, seed):
    torch.manual_seed(100 + seed)
    h1 = LogisticRegression(64, 10)
    optimizer = optim.SGD(h1.parameters(), lr=0.05, momentum=0.9)
    for _ in range(30):
        for data, target in batches(x, y, seed):
            optimizer.zero_grad()
            F.nll_loss(h1(data)[2], target).backward()
            optimizer.step()
    return h1.eval()


def correct(model, x, y):
    with torch.no_grad():
        return model(x)[0].argmax(dim=1) == y


def test_documented_loop_raises_backward_trust_compatibility(digits):
    x_train, y_train, x_test, y_test = digits
    results = {0.0: [], 1.0: []}
    for seed in range(4):
        subset = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))[:150]
        h1 = train_h1(x_train[subset], y_train[subset], seed)
        h1_state = {k: v.clone() for k, v in h1.state_dict().items()}
        h1_right = correct(h1, x_test, y_test)
        for lambda_c in (0.0, 1.0):
            torch.manual_seed(200 + seed)
            h2 = LogisticRegression(64, 10)
            # --- the original documentation's loop, unchanged ---
            bc_loss = losses.BCCrossEntropyLoss(h1, h2, lambda_c)
            optimizer = optim.SGD(h2.parameters(), lr=0.05, momentum=0.9)
            for _ in range(5):
                for data, target in batches(x_train, y_train, seed):
                    optimizer.zero_grad()
                    loss = bc_loss(data, target)
                    loss.backward()
                    optimizer.step()
            # ---
            h2_right = correct(h2, x_test, y_test)
            btc = (h1_right & h2_right).sum().item() / h1_right.sum().item()
            results[lambda_c].append((btc, h2_right.float().mean().item()))
        assert all(torch.equal(v, h1.state_dict()[k]) for k, v in h1_state.items())
    mean = {
        lam: [sum(column) / len(values) for column in zip(*values)]
        for lam, values in results.items()
    }
    (btc_plain, acc_plain), (btc_bc, acc_bc) = mean[0.0], mean[1.0]
    assert btc_bc >= btc_plain, mean
    assert abs(acc_bc - acc_plain) <= 0.02, mean
    assert acc_plain > 0.85 and acc_bc > 0.85, mean


@pytest.mark.parametrize(
    "name", ["BCCrossEntropyLoss", "StrictImitationKLDivergenceLoss", "BCNLLLoss"]
)
def test_documented_loop_trains_the_convolutional_network(digits, name):
    x_train, y_train, x_test, y_test = digits
    torch.manual_seed(0)
    h1 = ConvolutionalNetwork()
    optimizer = optim.SGD(h1.parameters(), lr=0.05, momentum=0.9)
    for data, target in batches(x_train[:400], y_train[:400], 0):
        optimizer.zero_grad()
        F.cross_entropy(h1(data)[0], target).backward()
        optimizer.step()
    h1.eval()
    h2 = ConvolutionalNetwork()
    h2.train()
    bc_loss = getattr(losses, name)(h1, h2, 0.5)
    optimizer = optim.SGD(h2.parameters(), lr=0.1, momentum=0.9)
    epoch_losses = []
    for epoch in range(6):
        total = 0.0
        for data, target in batches(x_train, y_train, epoch):
            optimizer.zero_grad()
            loss = bc_loss(data, target)
            loss.backward()
            optimizer.step()
            total += loss.item()
        epoch_losses.append(total)
    assert not h1.training and h2.training  # the loss leaves both modes as they were
    h2.eval()
    assert epoch_losses[-1] < 0.5 * epoch_losses[0], epoch_losses
    assert correct(h2, x_test, y_test).float().mean() > 0.8
