"""Datasets: the CIFAR-10 loader (official batches, md5-verified) and its offline sample."""

from axonnx.data.cifar10 import (
    CLASSES, Split, cache_dir, download_cifar10, find_batches, load_sample, load_split,
)

__all__ = [
    "CLASSES", "Split", "cache_dir", "download_cifar10", "find_batches", "load_sample",
    "load_split",
]
