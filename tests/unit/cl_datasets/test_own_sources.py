"""The user's sources: image folders, `.npz` files, arrays and tensors, `Dataset`s, HF datasets;
and a test of every message for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cl_dataset_helpers import folder_image, write_image_folder, write_own_source
from PIL import Image

from clarena.cl_datasets import (
    DatasetSource,
    ImageError,
    ImageFolderSource,
    SplitCLDataset,
    array_source,
    load_npz,
)
from clarena.metrics.provenance import label_names, label_names_from_config

CLASSES = ("cat", "dog", "emu", "fox")


def _expected(split: str, per_class: int, channels: int = 1) -> torch.Tensor:
    offset = 0 if split == "train" else 100
    images = [folder_image(c, offset + i, 6, channels) for c in range(4) for i in range(per_class)]
    x = torch.from_numpy(np.stack(images))
    return x[:, None] if channels == 1 else x.permute(0, 3, 1, 2)


def test_folder_classes_named_and_sorted_pixels_exact(tmp_path):
    root = write_image_folder(tmp_path / "d", classes=("fox", "cat", "emu", "dog"))
    source = ImageFolderSource(root)
    assert source.class_names == CLASSES  # sorted folder names, as ImageFolder
    assert source.train_y.tolist() == [c for c in range(4) for _ in range(6)]
    data = SplitCLDataset(source, "TIL", classes_per_task=2, in_memory=True)
    assert data.input_shape == (1, 6, 6) and data.class_names == CLASSES
    # the folder named "fox" was written with label 0's pixels: folder order, not writing order
    written = {"fox": 0, "cat": 1, "emu": 2, "dog": 3}
    order = [written[name] for name in CLASSES]
    want = _expected("train", 6).reshape(4, 6, 1, 6, 6)[order].reshape(24, 1, 6, 6)
    assert torch.equal(data.data.train_x, want)
    assert label_names(data) == ["cat | emu", "dog | fox"]


def test_folder_rgb_jpeg_and_layout_without_train_folder(tmp_path):
    root = write_image_folder(tmp_path / "d", channels=3, test=False, suffix=".jpg")
    flat = tmp_path / "flat"
    (root / "train").rename(flat)
    source = ImageFolderSource(flat, test_fraction=0.5)
    data = SplitCLDataset(source, "CIL", classes_per_task=2, in_memory=True)
    assert data.input_shape == (3, 6, 6)
    assert data.data.train_x.shape == (12, 3, 6, 6) and data.data.test_x.shape == (12, 3, 6, 6)


def test_folder_without_test_holds_out_a_fixed_stratified_part(tmp_path):
    root = write_image_folder(tmp_path / "d", test=False)
    first = ImageFolderSource(root, test_fraction=1 / 3)
    again = ImageFolderSource(root, test_fraction=1 / 3)
    assert torch.bincount(first.test_y).tolist() == [2, 2, 2, 2]
    assert torch.bincount(first.train_y).tolist() == [4, 4, 4, 4]
    assert (first.paths["test"] == again.paths["test"]).all()
    assert not set(first.paths["test"]) & set(first.paths["train"])
    # the held-out part is a property of the source: the experiment's seed does not move it
    a = SplitCLDataset(first, "TIL", classes_per_task=2, seed=1, in_memory=True)
    b = SplitCLDataset(again, "TIL", classes_per_task=2, seed=2, in_memory=True)
    assert torch.equal(a.data.test_x, b.data.test_x)


def test_split_folder_takes_split_fmnist_options(tmp_path):
    root = write_image_folder(tmp_path / "d")
    data = SplitCLDataset(
        "folder", "CIL", root=root, num_tasks=2, class_order=[3, 1, 0, 2], in_memory=True
    )
    assert data.task_classes() == [(3, 1), (0, 2)]
    assert label_names(data) == ["fox", "dog", "cat", "emu"]


def test_label_names_from_a_config_of_a_folder(tmp_path):
    root = write_image_folder(tmp_path / "d")
    node = {"_target_": "clarena.cl_datasets.SplitCLDataset", "source": "folder"}
    node |= {"root": str(root), "scenario": "CIL", "classes_per_task": 2}
    assert label_names_from_config({"cl_dataset": node}) == list(CLASSES)
    node["root"] = str(tmp_path / "gone")  # a moved run: the report has no names, no error
    assert label_names_from_config({"cl_dataset": node}) is None


def test_npz_source_with_class_names(tmp_path):
    path = write_own_source("npz", tmp_path / "n")
    source = load_npz(path)
    assert source.class_names == CLASSES and source.num_classes == 4
    data = SplitCLDataset("npz", "CIL", root=path, classes_per_task=2)
    assert data.input_shape == (1, 6, 6) and data.class_names == CLASSES
    assert torch.equal(data.data.train_x[6, 0], torch.from_numpy(folder_image(1, 6)))


def test_array_source_from_nhwc_numpy_and_tensors():
    x = np.arange(2 * 5 * 4 * 3, dtype=np.uint8).reshape(2, 5, 4, 3)  # N, H, W, C
    source = array_source(x, [0, 1], torch.from_numpy(x), torch.tensor([1, 0]))
    assert source.input_shape == (3, 5, 4) and source.num_classes == 2
    assert torch.equal(source.train_x[1], torch.from_numpy(x[1]).permute(2, 0, 1))
    assert source.class_names is None


class PlainDataset(torch.utils.data.Dataset):
    """A user's map-style dataset: PIL images and `targets`, like torchvision's datasets."""

    def __init__(self, images: torch.Tensor, targets: list[int]) -> None:
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return Image.fromarray(self.images[i, 0].numpy()), self.targets[i]


def test_dataset_source_matches_the_same_arrays(tmp_path):
    train, test = _expected("train", 6), _expected("test", 3)
    train_y, test_y = np.repeat(np.arange(4), 6), np.repeat(np.arange(4), 3)
    dataset = DatasetSource(
        PlainDataset(train, train_y.tolist()), PlainDataset(test, test_y.tolist()), CLASSES
    )
    arrays = array_source(train, train_y, test, test_y, CLASSES)
    loaders = []
    for source in (dataset, arrays):
        data = SplitCLDataset(
            source, "TIL", classes_per_task=2, batch_size=5, seed=3, normalize_mean=[0.5],
            normalize_std=[0.25],
        )  # fmt: skip
        data.setup_task(2)
        loaders.append([b for loader in (data.train_dataloader(),) for b in loader])
    for a, b in zip(*loaders, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_hf_dataset_on_disk_and_parquet(tmp_path):
    datasets = pytest.importorskip("datasets")
    root = write_own_source("hf", tmp_path / "hf")
    data = SplitCLDataset("hf", "TIL", root=root, classes_per_task=2, in_memory=True)
    assert data.class_names == CLASSES and data.input_shape == (1, 6, 6)
    assert torch.equal(data.data.test_x[4, 0], torch.from_numpy(folder_image(1, 4)))
    assert torch.equal(data.data.train_x[7, 0], torch.from_numpy(folder_image(1, 7)))
    parquet = tmp_path / "pq"
    parquet.mkdir()
    for split, ds in datasets.load_from_disk(str(root)).items():
        ds.to_parquet(str(parquet / f"{split}-00000-of-00001.parquet"))
    arrow = tmp_path / "arrow"
    arrow.mkdir()
    for split in ("train", "test"):  # the arrow file save_to_disk wrote, named by its split
        (arrow / f"{split}.arrow").write_bytes(next((root / split).glob("*.arrow")).read_bytes())
    for folder in (parquet, arrow):
        again = SplitCLDataset("hf", "TIL", root=folder, classes_per_task=2, in_memory=True)
        assert again.class_names == CLASSES
        assert torch.equal(again.data.train_x, data.data.train_x)
    with pytest.raises(ValueError, match=r"no column 'img'.*source_options.image_column"):
        SplitCLDataset("hf", "TIL", root=root, source_options={"image_column": "img"})


# ---------------------------------------------------------------- bad input: one line each
def test_empty_class_folder_is_named(tmp_path):
    root = write_image_folder(tmp_path / "d")
    (root / "train" / "gnu").mkdir()
    (root / "train" / "gnu" / "notes.txt").write_text("no image")
    with pytest.raises(ValueError, match=r"class folder '.*train/gnu' holds no image.*add images"):
        ImageFolderSource(root)


def test_class_missing_from_test_is_named(tmp_path):
    root = write_image_folder(tmp_path / "d")
    for f in (root / "test" / "emu").iterdir():
        f.unlink()
    (root / "test" / "emu").rmdir()
    with pytest.raises(ValueError, match=r"class 'emu' is in '.*/train' but not in '.*/test'"):
        ImageFolderSource(root)


def test_corrupt_image_is_named_before_training(tmp_path):
    root = write_image_folder(tmp_path / "d")
    bad = root / "train" / "dog" / "002.png"
    bad.write_bytes(b"not a png at all")
    data = SplitCLDataset("folder", "TIL", root=root, classes_per_task=2)
    with pytest.raises(ImageError, match=rf"cannot read image '{bad}'.*replace or delete the file"):
        data.setup_task(1)


def test_mixed_sizes_without_a_resize_are_named(tmp_path):
    root = write_image_folder(tmp_path / "d")
    Image.fromarray(np.zeros((9, 7), np.uint8)).save(root / "test" / "fox" / "001.png")
    data = SplitCLDataset("folder", "TIL", root=root, classes_per_task=2)
    with pytest.raises(ValueError, match=r"different sizes \(6x6 from .*000.png, 9x7 from .*fox/"):
        data.prepare_data()
    resize = {"test": [{"name": "Resize", "size": [6, 6]}]}
    resized = SplitCLDataset("folder", "TIL", root=root, classes_per_task=2, transforms=resize)
    assert resized.input_shape == (1, 6, 6)


def test_npz_labels_out_of_range_are_named(tmp_path):
    path = tmp_path / "bad.npz"
    x = np.zeros((4, 5, 5), np.uint8)
    np.savez(path, train_x=x, train_y=[0, 1, 2, 7], test_x=x, test_y=[0, 1, 2, 3],
             class_names=np.array(["a", "b", "c", "d"]))  # fmt: skip
    with pytest.raises(ValueError, match=rf"{path}: train_y: labels outside 0..3 \(e.g. 7"):
        load_npz(path)


def test_npz_missing_array_is_named(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, train_x=np.zeros((2, 3, 3), np.uint8), train_y=[0, 1])
    with pytest.raises(ValueError, match=r"lacks test_x, test_y: save it with np.savez"):
        SplitCLDataset("npz", "TIL", root=path, classes_per_task=1)


def test_dataset_of_normalised_floats_is_refused(tmp_path):
    class Floats(PlainDataset):
        def __getitem__(self, i: int):
            return torch.rand(1, 6, 6), self.targets[i]

    source = DatasetSource(Floats(_expected("train", 6), [0, 1, 2, 3] * 6), test_fraction=0.25)
    data = SplitCLDataset(source, "TIL", classes_per_task=2)
    with pytest.raises(ValueError, match=r"torch.float32 tensor: give uint8 pixels \(no ToTensor"):
        data.setup_task(1)


def test_a_source_of_the_users_needs_root():
    with pytest.raises(ValueError, match=r"source=folder reads your data: set cl_dataset.root"):
        SplitCLDataset("folder", "TIL", classes_per_task=2)


def test_png_and_jpeg_headers_read_directly_agree_with_pillow(tmp_path):
    from clarena.cl_datasets.images import GREY_MODES, _png_or_jpeg_header, probe

    rng = np.random.default_rng(0)
    cases = {
        "L.png": ("L", (5, 7)), "L.jpg": ("L", (5, 7)), "RGB.png": ("RGB", (5, 7, 3)),
        "RGB.jpg": ("RGB", (5, 7, 3)), "RGBA.png": ("RGBA", (5, 7, 4)), "LA.png": ("LA", (5, 7, 2)),
    }  # fmt: skip
    for name, (mode, shape) in cases.items():
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(tmp_path / name)
    Image.fromarray(np.zeros((9, 4), np.uint8)).convert("P").save(tmp_path / "P.png")
    Image.fromarray(np.zeros((9, 4, 3), np.uint8)).save(
        tmp_path / "exif.jpg", progressive=True, exif=b"Exif\x00\x00" + bytes(5000)
    )
    Image.fromarray(np.zeros((3, 8), np.uint8)).save(tmp_path / "L.bmp")
    for path in sorted(tmp_path.iterdir()):
        with Image.open(path) as image:
            want = (image.size[1], image.size[0], image.mode in GREY_MODES)
        header = probe(path)
        assert (header.height, header.width, header.grey) == want, path.name
        assert (_png_or_jpeg_header(path) is None) is (path.suffix == ".bmp")  # Pillow's turn
