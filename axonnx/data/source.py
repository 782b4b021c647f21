"""One data set type for every command: :class:`Dataset`, samples for a model's inputs,
with optional labels.

Evaluation, sensitivity, explore, reproduce and the recovery statistics all take a
Dataset, whatever it was read from (CIFAR-10, a folder of images, .npy/.npz files, a
Python iterable: :mod:`axonnx.data.load`). Images are kept as uint8 NCHW and go through
the :class:`~axonnx.data.preprocess.Preprocess` only when a batch is fed, so a data set
costs one byte per pixel and pickles cheaply to worker processes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np

from axonnx.data.preprocess import Preprocess
from axonnx.errors import AxonnxError


@dataclass
class Batch:
    feeds: dict[str, np.ndarray]
    labels: np.ndarray | None


@dataclass(frozen=True)
class Dataset:
    """Samples for a model's inputs (``arrays``: one array per input name, samples on axis
    0), labels (int64 [n] or None), where they come from, and the preprocessing that turns
    the stored images of the single input into the model's tensor (None: arrays are fed as
    they are)."""

    arrays: dict[str, np.ndarray] = field(repr=False)
    labels: np.ndarray | None = field(repr=False)
    source: str
    preprocess: Preprocess | None = None
    classes: tuple[str, ...] | None = None
    preprocess_source: str = "arrays fed as they are"  # where the preprocessing comes from

    def __post_init__(self):
        counts = {len(a) for a in self.arrays.values()}
        if len(counts) != 1:
            raise AxonnxError(f"{self.source}: the inputs hold different sample counts {sorted(counts)}")
        if self.labels is not None and len(self.labels) != counts.pop():
            raise AxonnxError(f"{self.source}: {len(self.labels)} labels for "
                              f"{len(self)} samples; give one label per sample")

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def feeds(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Model-ready inputs for samples ``start:stop``."""
        out = {}
        for name, array in self.arrays.items():
            part = array[start:stop]
            out[name] = self.preprocess.apply(part) if self.preprocess is not None else part
        return out

    def batches(self, size: int) -> Iterator[Batch]:
        if size < 1:
            raise AxonnxError(f"batch must be at least 1, not {size}")
        for start in range(0, len(self), size):
            labels = None if self.labels is None else self.labels[start:start + size]
            yield Batch(self.feeds(start, start + size), labels)

    def subset(self, index: np.ndarray, source: str) -> "Dataset":
        index = np.asarray(index, np.int64)
        return replace(self, arrays={k: np.ascontiguousarray(a[index]) for k, a in self.arrays.items()},
                       labels=None if self.labels is None else self.labels[index], source=source)

    def head(self, n: int | None) -> "Dataset":
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise AxonnxError(f"--limit must be at least 1, not {n}")
        return self.subset(np.arange(n), f"{self.source} (first {n})")

    def split(self, n: int, seed: int = 0, names: tuple[str, str] = ("search", "report")
              ) -> tuple["Dataset", "Dataset"]:
        """Two disjoint parts: ``n`` samples drawn with ``seed`` (class-balanced when there
        are labels), and the rest, each named for what it is."""
        if not 0 < n < len(self):
            raise AxonnxError(f"cannot split {len(self)} samples into {n} and the rest; give "
                              f"a number between 1 and {len(self) - 1}")
        first = self._draw(n, seed)
        rest = np.setdiff1d(np.arange(len(self)), first)
        return (self.subset(first, f"{self.source}, {names[0]} split ({n}, seed {seed})"),
                self.subset(rest, f"{self.source}, {names[1]} split ({len(rest)}, seed {seed})"))

    def balanced(self, n: int | None, seed: int | None = None) -> "Dataset":
        """``n`` samples, class-balanced when labelled: the first of each class (or a seeded
        draw); all of them when ``n`` is None or not smaller."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise AxonnxError(f"--subset must be at least 1, not {n}")
        return self.subset(self._draw(n, seed), f"{self.source} (balanced subset of {n})"
                           if self.labels is not None else f"{self.source} (subset of {n})")

    def _draw(self, n: int, seed: int | None) -> np.ndarray:
        rng = None if seed is None else np.random.default_rng(seed)
        if self.labels is None:
            order = np.arange(len(self)) if rng is None else rng.permutation(len(self))
            return np.sort(order[:n])
        classes = np.unique(self.labels)
        per, extra = divmod(n, len(classes))
        picked = []
        for rank, c in enumerate(classes):
            where = np.flatnonzero(self.labels == c)
            if rng is not None:
                where = rng.permutation(where)
            picked.append(where[: per + (1 if rank < extra else 0)])
        chosen = np.concatenate(picked)
        if len(chosen) < n:  # small classes: top up from the rest
            rest = np.setdiff1d(np.arange(len(self)), chosen)
            chosen = np.concatenate([chosen, rest[: n - len(chosen)]])
        return np.sort(chosen)

    def digest(self, h: "hashlib._Hash | None" = None) -> str:
        """A content hash (arrays, labels, preprocessing): whether two data sets are one."""
        h = h or hashlib.sha256()
        for name, array in sorted(self.arrays.items()):
            h.update(name.encode())
            h.update(str(array.dtype).encode() + str(array.shape).encode())
            h.update(np.ascontiguousarray(array).tobytes())
        if self.labels is not None:
            h.update(np.ascontiguousarray(self.labels).tobytes())
        h.update(repr(self.preprocess).encode())
        return h.hexdigest()[:16]

    def same_samples(self, other: "Dataset") -> bool:
        return len(self) == len(other) and self.digest() == other.digest()
