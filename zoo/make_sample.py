"""Make the offline CIFAR-10 sample shipped as ``axonnx/data/cifar10_test_sample.npz``.

    AXONNX_DATA=../shared/data python zoo/make_sample.py

Provenance: the official CIFAR-10 python-version ``test_batch``
(md5 40351d587109b95175f43aff81a1287e, from cifar-10-python.tar.gz,
md5 c58f30108f718f92721af3b95e74349a). Selection rule: for each class, the first 100 images
of that class in ``test_batch`` order; the 1,000 selected images keep ``test_batch`` order.

The file (``np.savez_compressed``) holds ``images`` (uint8 [1000, 3, 32, 32], NCHW RGB),
``labels`` (uint8 [1000]), ``indices`` (int32 [1000], positions in ``test_batch``) and
``provenance`` (this rule, as a string). The loader md5-checks ``test_batch`` before use.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from axonnx.data.cifar10 import BATCH_MD5, CLASSES, SAMPLE_FILE, SAMPLE_PER_CLASS, load_split  # noqa: E402

PROVENANCE = (
    "CIFAR-10 official python-version test_batch (md5 {md5}); for each of the 10 classes the "
    "first {k} images of that class in test_batch order, kept in test_batch order; "
    "indices are positions in test_batch. Made by zoo/make_sample.py."
)


def select(labels: np.ndarray, per_class: int = SAMPLE_PER_CLASS) -> np.ndarray:
    """Indices of the first ``per_class`` images of each class, in ascending order."""
    picked = [np.flatnonzero(labels == c)[:per_class] for c in range(len(CLASSES))]
    return np.sort(np.concatenate(picked)).astype(np.int32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="folder with cifar-10-batches-py/ (default: $AXONNX_DATA)")
    ap.add_argument("--out", default=str(ROOT / "axonnx" / "data" / SAMPLE_FILE))
    args = ap.parse_args()
    test = load_split("test", args.data)
    idx = select(test.labels)
    np.savez_compressed(
        args.out,
        images=test.images[idx],
        labels=test.labels[idx].astype(np.uint8),
        indices=idx,
        provenance=np.array(PROVENANCE.format(md5=BATCH_MD5["test_batch"], k=SAMPLE_PER_CLASS)),
    )
    counts = np.bincount(test.labels[idx], minlength=len(CLASSES))
    print(f"wrote {args.out}: {len(idx)} images, per class {counts.tolist()}, "
          f"{Path(args.out).stat().st_size} bytes")


if __name__ == "__main__":
    main()
