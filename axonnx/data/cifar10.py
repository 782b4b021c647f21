"""CIFAR-10 loader: official python-version batches, md5-verified before use.

Where the batches are looked for, in order:
  1. an explicit directory (the directory itself or its ``cifar-10-batches-py/``);
  2. ``$AXONNX_DATA`` (same rule);
  3. the user cache directory (``$XDG_CACHE_HOME/axonnx`` or ``~/.cache/axonnx``).

When none has them and downloading is allowed, the official tarball is fetched into the
cache, md5-checked and unpacked.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from axonnx.errors import AxonnxError

CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
BATCH_DIR = "cifar-10-batches-py"
BATCH_MD5 = {
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
}
TARBALL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


@dataclass(frozen=True)
class Split:
    """Images as uint8 NCHW [n, 3, 32, 32] and int64 labels [n]."""

    images: np.ndarray
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> "Split":
        if n is None or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n], f"{self.source} (first {n})")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "axonnx"


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _batch_dir_in(root: Path) -> Path | None:
    for candidate in (root / BATCH_DIR, root):
        if (candidate / "test_batch").exists() or any(
            (candidate / b).exists() for b in TRAIN_BATCHES
        ):
            return candidate
    return None


def _candidate_roots(data_dir: str | os.PathLike | None) -> list[Path]:
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir))
    if os.environ.get("AXONNX_DATA"):
        roots.append(Path(os.environ["AXONNX_DATA"]))
    roots.append(cache_dir())
    return roots


def find_batches(
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
    url: str = TARBALL_URL,
) -> Path:
    """Return the directory holding the batch files, downloading them if allowed."""
    roots = _candidate_roots(data_dir)
    if data_dir is not None and _batch_dir_in(Path(data_dir)) is None and not download:
        raise AxonnxError(
            f"no CIFAR-10 batches in {data_dir}: put the official python-version files "
            f"(test_batch, data_batch_1..5) in {Path(data_dir) / BATCH_DIR}"
        )
    for root in roots:
        found = _batch_dir_in(root)
        if found is not None:
            return found
    if download:
        return download_cifar10(cache_dir() if data_dir is None else Path(data_dir), url=url)
    raise AxonnxError(
        "CIFAR-10 not found: put the official python-version batches in "
        f"{cache_dir() / BATCH_DIR}, or pass --data DIR, or set AXONNX_DATA, "
        "or allow the download (--download)"
    )


def download_cifar10(root: Path, *, url: str = TARBALL_URL) -> Path:
    """Fetch the official tarball into ``root``, verify its md5 and unpack it."""
    from rich.progress import Progress, DownloadColumn, TransferSpeedColumn, BarColumn

    root.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=root, suffix=".tar.gz.part", delete=False) as tmp:
        part = Path(tmp.name)
    try:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with Progress(
                    "[progress.description]{task.description}", BarColumn(),
                    DownloadColumn(), TransferSpeedColumn(), transient=True,
                ) as progress:
                    task = progress.add_task("cifar-10-python.tar.gz", total=total)
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        out.write(chunk)
                        progress.advance(task, len(chunk))
        except OSError as exc:
            raise AxonnxError(
                f"could not download CIFAR-10 from {url} ({exc}): download it by hand and "
                f"unpack it into {root}"
            ) from None
        got = md5sum(part)
        if got != TARBALL_MD5:
            raise AxonnxError(
                f"corrupt CIFAR-10 download from {url}: md5 {got}, expected {TARBALL_MD5}; "
                "delete it and try again"
            )
        with tarfile.open(part, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(BATCH_DIR + "/")]
            tar.extractall(root, members=members, filter="data")
    finally:
        part.unlink(missing_ok=True)
    return root / BATCH_DIR


def _read_batch(directory: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    path = directory / name
    if not path.exists():
        raise AxonnxError(f"missing CIFAR-10 batch {path}: copy the official file there")
    got = md5sum(path)
    if got != BATCH_MD5[name]:
        raise AxonnxError(
            f"corrupt CIFAR-10 batch {path}: md5 {got}, expected {BATCH_MD5[name]}; "
            "replace it with the official file"
        )
    with open(path, "rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    return images, labels


def load_split(
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
) -> Split:
    """Load ``"test"`` (10,000 images) or ``"train"`` (50,000) from the official batches."""
    if split not in ("test", "train"):
        raise AxonnxError(f"unknown CIFAR-10 split {split!r}: use 'test' or 'train'")
    directory = find_batches(data_dir, download=download)
    names = ("test_batch",) if split == "test" else TRAIN_BATCHES
    parts = [_read_batch(directory, n) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return Split(images, labels, f"CIFAR-10 {split} ({directory})")
