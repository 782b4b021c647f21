"""Arrays checked against a model's input before onnxruntime sees them, and the
calibration data of the user's own (read by :mod:`axonnx.data.load` like any data).

Arrays are used as they are when they fit the input: with a leading batch axis, or a
single sample without one (it gets one); the element type is cast only where numpy calls
that safe or same-kind (float64 -> float32, uint8 -> float32), never float -> int. A
mismatch is one line naming the expected shape and type.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from axonnx.errors import AxonnxError


def fit_to_input(array: np.ndarray, spec, where: str) -> np.ndarray:
    """``array`` as a batch for input ``spec``: a batch axis added to a single sample, the
    element type cast where that is safe; anything else is an error naming the expected
    shape and type."""
    array = np.asarray(array)
    given = list(array.shape)  # as the user wrote it, before a batch axis is added
    expected = f"input {spec.name!r} is {spec.describe()}"
    if spec.dims is not None:
        rank = len(spec.dims)
        if array.ndim == rank - 1:
            array = array[None]
        if array.ndim != rank or any(d is not None and d != s
                                     for d, s in zip(spec.dims[1:], array.shape[1:])):
            raise AxonnxError(
                f"{where} has shape {given} but the model {expected}; give "
                "arrays of that shape (a leading batch axis optional)")
        if spec.dims[0] is not None and len(array) % spec.dims[0]:
            raise AxonnxError(f"{where} holds {len(array)} samples but the model {expected}, "
                              f"a fixed batch of {spec.dims[0]}; give a multiple of "
                              f"{spec.dims[0]} samples")
    if array.dtype != spec.dtype:
        if not np.can_cast(array.dtype, spec.dtype, casting="same_kind"):
            raise AxonnxError(f"{where} is {array.dtype} but the model {expected}; convert "
                              f"the data to {spec.dtype}")
        array = array.astype(spec.dtype)
    return np.ascontiguousarray(array)


def load_calibration(path: str | Path, model, *, limit: int | None = None,
                     preprocess: str | None = None):
    """The calibration samples in ``path`` (the first ``limit`` of them, in file-name
    order) as a :class:`~axonnx.data.source.Dataset` for the model
    (:func:`axonnx.data.load.read_data`)."""
    from axonnx.data.load import read_data
    from axonnx.model import load_model

    if limit is not None and limit < 1:
        raise AxonnxError(f"--calib must be at least 1 sample, not {limit}")
    return read_data(Path(path), load_model(model), preprocess=preprocess, limit=limit,
                     what="calibration data")
