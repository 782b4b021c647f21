"""CIFAR-10 loader: official python-version batches, md5-verified before use.

Where the batches are looked for, in order:
  1. an explicit directory (the directory itself or its ``cifar-10-batches-py/``); when one
     is given, nothing else is searched;
  2. ``$AXONNX_DATA`` (same rule);
  3. the user cache directory (``$XDG_CACHE_HOME/axonnx`` or ``~/.cache/axonnx``).

When none has them and downloading is allowed, the official tarball is fetched (into the
explicit directory, or else the cache), md5-checked and unpacked. Every batch file is
md5-checked against the published value before it is unpickled, so a corrupt or partial
file is reported (naming the file) and never used.

For offline work, :func:`load_sample` returns 1,000 official test images (the first 100 of
each class in ``test_batch`` order) shipped inside the package; see ``zoo/make_sample.py``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from axonnx.errors import AxonnxError
from axonnx.progress import Progress

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
TARBALL_NAME = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))

SAMPLE_FILE = "cifar10_test_sample.npz"
SAMPLE_PER_CLASS = 100


@dataclass(frozen=True)
class Split:
    """Images as uint8 NCHW [n, 3, 32, 32] (RGB, 0..255) and int64 labels [n]."""

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
        if any((candidate / b).exists() for b in BATCH_MD5):
            return candidate
    return None


def _candidate_roots(data_dir: str | os.PathLike | None) -> list[Path]:
    if data_dir is not None:
        return [Path(data_dir)]
    roots = []
    if os.environ.get("AXONNX_DATA"):
        roots.append(Path(os.environ["AXONNX_DATA"]))
    roots.append(cache_dir())
    return roots


def find_batches(
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
    url: str = TARBALL_URL,
    progress: Progress = None,
) -> Path:
    """Return the directory holding the batch files, downloading them if allowed."""
    roots = _candidate_roots(data_dir)
    for root in roots:
        found = _batch_dir_in(root)
        if found is not None:
            return found
    target = Path(data_dir) if data_dir is not None else cache_dir()
    if download:
        return download_cifar10(target, url=url, progress=progress)
    looked = ", ".join(str(r) for r in roots)
    raise AxonnxError(
        f"CIFAR-10 not found (looked in {looked}): put the official python-version batch "
        f"files (test_batch, data_batch_1..5) in {target / BATCH_DIR}"
        + ("" if data_dir is not None else ", or set AXONNX_DATA to a folder holding "
           f"{BATCH_DIR}/"),
        {"--download": f"allow the download of {url}",
         "--sample": "use the packaged 1,000-image test sample",
         "--data": "give your own data (a folder of images or arrays)"})


def download_cifar10(root: Path, *, url: str = TARBALL_URL, progress: Progress = None) -> Path:
    """Fetch the official tarball into ``root``, verify its md5 and unpack it.

    The tarball is written to a ``.part`` file and unpacked into a temporary folder; only
    when its md5 and every batch's md5 match is the folder moved to
    ``root/cifar-10-batches-py``. Nothing partial is left behind on failure.
    """
    from axonnx.model import refuse_installed_path

    root = Path(root)
    refuse_installed_path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / BATCH_DIR
    with tempfile.NamedTemporaryFile(dir=root, suffix=".tar.gz.part", delete=False) as tmp:
        part = Path(tmp.name)
    unpack = Path(tempfile.mkdtemp(dir=root, prefix=".cifar10-unpack-"))
    try:
        _fetch(url, part, progress=progress, root=root)
        got = md5sum(part)
        if got != TARBALL_MD5:
            raise AxonnxError(
                f"corrupt CIFAR-10 download from {url}: md5 {got}, expected {TARBALL_MD5}; "
                f"nothing was kept, try again or put {TARBALL_NAME} unpacked into {root}"
            )
        try:
            with tarfile.open(part, "r:gz") as tar:
                members = [m for m in tar.getmembers()
                           if m.name.startswith(BATCH_DIR + "/") and m.isfile()]
                tar.extractall(unpack, members=members, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise AxonnxError(f"could not unpack the CIFAR-10 tarball from {url}: {exc}") from None
        for name in BATCH_MD5:
            _verify(unpack / BATCH_DIR / name)
        if final.exists():
            # A folder with some (e.g. corrupt) files: replace the batch files only.
            for name in BATCH_MD5:
                os.replace(unpack / BATCH_DIR / name, final / name)
        else:
            os.replace(unpack / BATCH_DIR, final)
    finally:
        part.unlink(missing_ok=True)
        shutil.rmtree(unpack, ignore_errors=True)
    return final


def _fetch(url: str, dest: Path, *, progress: Progress, root: Path) -> None:
    kind = f"downloading {TARBALL_NAME} (bytes)"
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            if progress:
                progress(kind, 0, total)
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                if progress:
                    progress(kind, len(chunk), None)
    except OSError as exc:  # URLError, HTTPError, timeouts, disk errors
        raise AxonnxError(
            f"could not download CIFAR-10 from {url} ({exc}): download {TARBALL_NAME} by hand "
            f"and unpack it into {root} (giving {root / BATCH_DIR})"
        ) from None


def _verify(path: Path) -> None:
    name = path.name
    if not path.is_file():
        raise AxonnxError(
            f"missing CIFAR-10 batch {path}: copy the official file {name} there "
            f"(md5 {BATCH_MD5[name]})"
        )
    got = md5sum(path)
    if got != BATCH_MD5[name]:
        raise AxonnxError(
            f"corrupt CIFAR-10 batch {path}: md5 {got}, expected {BATCH_MD5[name]}; "
            "replace it with the official file"
        )


def _read_batch(directory: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    path = directory / name
    _verify(path)  # before unpickling: a corrupt file is never used
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
    url: str = TARBALL_URL,
    progress: Progress = None,
) -> Split:
    """Load ``"test"`` (10,000 images) or ``"train"`` (50,000) from the official batches."""
    if split not in ("test", "train"):
        raise AxonnxError(f"unknown CIFAR-10 split {split!r}: use 'test' or 'train'")
    directory = find_batches(data_dir, download=download, url=url, progress=progress)
    names = ("test_batch",) if split == "test" else TRAIN_BATCHES
    parts = [_read_batch(directory, n) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return Split(images, labels, f"CIFAR-10 {split} ({directory})")


def sample_path() -> Path:
    """The packaged offline sample (``axonnx/data/cifar10_test_sample.npz``)."""
    return Path(str(resources.files("axonnx.data") / SAMPLE_FILE))


def load_sample() -> Split:
    """1,000 official CIFAR-10 test images, 100 per class, shipped with the package.

    They are the first 100 images of each class in ``test_batch`` order, kept in that order
    (``indices`` in the file are their positions in ``test_batch``). Made by
    ``zoo/make_sample.py``; good for smoke tests and quick checks, not for reporting accuracy.
    """
    path = sample_path()
    if not path.is_file():
        raise AxonnxError(f"the packaged CIFAR-10 sample is missing ({path}): reinstall axonnx")
    with np.load(path) as data:
        images = np.ascontiguousarray(data["images"], dtype=np.uint8)
        labels = data["labels"].astype(np.int64)
    if images.shape != (len(CLASSES) * SAMPLE_PER_CLASS, 3, 32, 32) or labels.shape != images.shape[:1]:
        raise AxonnxError(f"the packaged CIFAR-10 sample {path} is damaged: reinstall axonnx")
    return Split(images, labels, "CIFAR-10 test sample (1,000 images, 100 per class)")
