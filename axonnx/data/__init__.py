"""Data for every command: :class:`Dataset` (:mod:`axonnx.data.source`), read by
:mod:`axonnx.data.load` from CIFAR-10 (official batches, md5-verified, and an offline
sample), folders of images or arrays, or a Python iterable; preprocessing in
:mod:`axonnx.data.preprocess` (docs/data.md)."""

from axonnx.data.cifar10 import (
    CLASSES, Split, cache_dir, download_cifar10, find_batches, load_sample, load_split,
)
from axonnx.data.load import DataOptions, from_iterable, load_data, read_data
from axonnx.data.source import Batch, Dataset

__all__ = [
    "CLASSES", "Batch", "DataOptions", "Dataset", "Split", "cache_dir", "download_cifar10",
    "find_batches", "from_iterable", "load_data", "load_sample", "load_split", "read_data",
]
