"""Which images a study uses: the evaluation split, a class-balanced search subset, and
calibration images for the recovery statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from axonnx.errors import AxonnxError


def evaluation_split(data: str | Path | None = None, sample: bool = False, limit: int | None = None):
    """The full official CIFAR-10 test set (or the packaged 1,000-image sample)."""
    from axonnx.data import load_sample, load_split

    if sample:
        if data is not None:
            raise AxonnxError("--sample uses the packaged images; drop --data")
        split = load_sample()
    else:
        split = load_split("test", data, progress=False)
    if limit is not None:
        if limit < 1:
            raise AxonnxError(f"--limit must be at least 1, not {limit}")
        split = split.head(limit)
    return split


def balanced_subset(split, n: int | None):
    """The first ``n / classes`` images of each class, in split order (all if n is None or
    not smaller than the split)."""
    from axonnx.data import Split

    if n is None or n >= len(split):
        return split
    if n < 1:
        raise AxonnxError(f"--subset must be at least 1, not {n}")
    labels = np.asarray(split.labels)
    classes = np.unique(labels)
    per, extra = divmod(n, len(classes))
    picked = []
    for rank, c in enumerate(classes):
        where = np.flatnonzero(labels == c)
        picked.append(where[: per + (1 if rank < extra else 0)])
    idx = np.sort(np.concatenate(picked))
    return Split(split.images[idx], labels[idx], f"{split.source} (balanced subset of {len(idx)})")


def calibration_images(data: str | Path | None, sample: bool, n: int, fallback):
    """``n`` training images (a fixed, seeded draw) for activation statistics; without the
    training batches (``--sample``, or no data_batch files), the first ``n`` images of
    ``fallback`` and a note saying so."""
    from axonnx.data import load_split

    if n < 1:
        raise AxonnxError(f"--calib must be at least 1 image, not {n}")
    if not sample:
        try:
            train = load_split("train", data, progress=False)
        except AxonnxError:
            train = None
        if train is not None:
            idx = np.sort(np.random.default_rng(0).permutation(len(train))[:n])
            return train.images[idx], f"{n} CIFAR-10 training images (seed 0)"
    images = fallback.images[:n]
    return images, f"first {len(images)} images of {fallback.source} (no training batches)"


def own_calibration(model, recovery: str, calib_data: str | Path | None, calib: int):
    """The user's ``--calib-data`` as model-ready batches (at most ``calib`` samples;
    :func:`axonnx.data.calibration.load_calibration`), None when not given."""
    from axonnx.recovery import recovery_flags

    if calib_data is None:
        return None
    if recovery_flags(recovery) == (False, False):
        raise AxonnxError("--calib-data feeds the recovery statistics: add --recovery tune, "
                          "bias or tune+bias, or drop --calib-data")
    from axonnx.data.calibration import load_calibration

    return load_calibration(calib_data, model, limit=calib)


def recovery_statistics(model, recovery: str, data, sample: bool, calib: int, fallback,
                        calib_data: str | Path | None = None):
    """The activation statistics a recovery mode needs (None for ``none``), measured on
    :func:`own_calibration` when ``calib_data`` is given, else on :func:`calibration_images`."""
    from axonnx.recovery import recovery_flags
    from axonnx.recovery import measure_activations

    own = own_calibration(model, recovery, calib_data, calib)
    if own is not None:
        return measure_activations(model, inputs=own.batches, source=own.source)
    if recovery_flags(recovery) == (False, False):
        return None
    images, source = calibration_images(data, sample, calib, fallback)
    return measure_activations(model, images, source=source)
