"""Calibration data of the user's own for the recovery statistics, fed through the model's
own input (no CIFAR-10 assumption).

:func:`load_calibration` reads a folder of images (.png, .jpg, .jpeg, .bmp), .npy or .npz
files, or a single .npy/.npz file, and returns batches ready for the model's (single)
input:

* **arrays** are used as they are when they fit the input: with a leading batch axis, or a
  single sample without one (it gets one); the element type is cast only where numpy calls
  that safe or same-kind (float64 -> float32, uint8 -> float32), never float -> int. An
  .npz holding an array named like the model input uses that array, else each array is a
  batch.
* **images** become uint8 [n, C, H, W] (C = 1, 3 or 4 after the input's channel count),
  then go through the model's ``axonnx.preprocess`` metadata when it has one
  (:mod:`axonnx.evaluate`), else are laid out as the input shape says (NCHW or NHWC) and
  cast to its element type with their raw 0..255 values. They are never resized: their
  height and width must be the input's.

Every batch is checked against the input (:func:`fit_to_input`) before onnxruntime sees it,
so a mismatch is one line naming the expected shape and type.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from axonnx.errors import AxonnxError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
ARRAY_SUFFIXES = (".npy", ".npz")


@dataclass
class Calibration:
    """Batches for the model's input, and where they come from."""

    batches: list[np.ndarray]
    source: str

    @property
    def samples(self) -> int:
        return sum(len(b) for b in self.batches)


def single_input(model):
    """The model's one fed input (:class:`axonnx.model.ModelInput`)."""
    from axonnx.model import model_inputs

    inputs = model_inputs(model)
    if len(inputs) != 1:
        raise AxonnxError(
            f"calibration data feeds a single-input model; this one has {len(inputs)} inputs "
            f"({', '.join(i.name for i in inputs)}): measure the statistics in Python with "
            "axonnx.recovery.measure_activations(model, inputs=[{name: array, ...}, ...])")
    return inputs[0]


def fit_to_input(array: np.ndarray, spec, where: str) -> np.ndarray:
    """``array`` as a batch for input ``spec``: a batch axis added to a single sample, the
    element type cast where that is safe; anything else is an error naming the expected
    shape and type."""
    array = np.asarray(array)
    expected = f"input {spec.name!r} is {spec.describe()}"
    if spec.dims is not None:
        rank = len(spec.dims)
        if array.ndim == rank - 1:
            array = array[None]
        if array.ndim != rank or any(d is not None and d != s
                                     for d, s in zip(spec.dims[1:], array.shape[1:])):
            raise AxonnxError(
                f"{where} has shape {list(array.shape)} but the model {expected}; give "
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


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise AxonnxError(f"calibration data {path} does not exist")
    if path.is_file():
        if path.suffix.lower() not in ARRAY_SUFFIXES + IMAGE_SUFFIXES:
            raise AxonnxError(f"calibration data {path}: give a folder, or an .npy or .npz file")
        return [path]
    files = sorted(p for p in path.rglob("*")
                   if p.is_file() and p.suffix.lower() in ARRAY_SUFFIXES + IMAGE_SUFFIXES)
    if not files:
        raise AxonnxError(f"calibration data {path} holds no {', '.join(IMAGE_SUFFIXES + ARRAY_SUFFIXES)} "
                          "files")
    kinds = {p.suffix.lower() in IMAGE_SUFFIXES for p in files}
    if len(kinds) > 1:
        raise AxonnxError(f"calibration data {path} mixes images and arrays; use one kind")
    return files


def _arrays(files: list[Path], spec) -> Iterator[tuple[np.ndarray, str]]:
    for f in files:
        try:
            if f.suffix.lower() == ".npy":
                yield np.load(f, allow_pickle=False), f.name
                continue
            with np.load(f, allow_pickle=False) as data:
                keys = [spec.name] if spec.name in data.files else list(data.files)
                for key in keys:
                    yield data[key], f"{f.name}[{key}]"
        except (OSError, ValueError) as exc:
            raise AxonnxError(f"cannot read calibration data {f}: {exc}") from None


def _image_layout(model, spec):
    """(channels, layout, preprocess or None) for images fed to ``spec``."""
    from axonnx.data.preprocess import PREPROCESS_KEY, model_preprocess

    dims = spec.dims
    if dims is None or len(dims) != 4:
        raise AxonnxError(f"images need a 4-D image input; the model's input {spec.name!r} is "
                          f"{spec.describe()}: give .npy/.npz arrays instead")
    if any(p.key == PREPROCESS_KEY for p in model.metadata_props):
        prep = model_preprocess(model)
        return (dims[1] if prep.layout == "NCHW" else dims[3]), prep.layout, prep
    channel_like = (1, 3, 4)
    if dims[1] in channel_like and dims[3] not in channel_like:
        return dims[1], "NCHW", None
    if dims[3] in channel_like and dims[1] not in channel_like:
        return dims[3], "NHWC", None
    if dims[1] in channel_like:
        return dims[1], "NCHW", None
    raise AxonnxError(f"cannot tell the channel axis of input {spec.name!r} {spec.describe()}; "
                      "give .npy/.npz arrays in its layout instead of images")


def _read_image(path: Path, channels: int) -> np.ndarray:
    from PIL import Image

    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels or 3)
    if mode is None:
        raise AxonnxError(f"images have 1, 3 or 4 channels; the model input has {channels}: "
                          "give .npy/.npz arrays instead")
    try:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert(mode), dtype=np.uint8)
    except OSError as exc:
        raise AxonnxError(f"cannot read image {path}: {exc}") from None
    return pixels[..., None] if pixels.ndim == 2 else pixels  # HWC


def _images(files: list[Path], model, spec, limit: int | None) -> list[np.ndarray]:
    channels, layout, prep = _image_layout(model, spec)
    h_axis = 2 if layout == "NCHW" else 1
    want = (spec.dims[h_axis], spec.dims[h_axis + 1])
    pixels = []
    for f in files[:limit]:
        hwc = _read_image(f, channels)
        size = hwc.shape[:2]
        if any(w is not None and w != s for w, s in zip(want, size)):
            hw = "x".join("?" if w is None else str(w) for w in want)
            raise AxonnxError(f"image {f.name} is {size[0]}x{size[1]} but the model input "
                              f"{spec.name!r} is {spec.describe()} ({layout}): resize the "
                              f"images to {hw} (axonnx does not resize)")
        if pixels and size != pixels[0].shape[:2]:
            raise AxonnxError(f"image {f.name} is {size[0]}x{size[1]}, the first one "
                              f"{pixels[0].shape[0]}x{pixels[0].shape[1]}; give images of one size")
        pixels.append(hwc)
    nchw = np.stack(pixels).transpose(0, 3, 1, 2)
    if prep is not None:
        x = prep.apply(nchw)
    else:
        x = nchw if layout == "NCHW" else nchw.transpose(0, 2, 3, 1)
        x = x.astype(spec.dtype)
    return [fit_to_input(x, spec, f"the images of {files[0].parent}")]


def load_calibration(path: str | Path, model, *, limit: int | None = None) -> Calibration:
    """The calibration samples in ``path`` (the first ``limit`` of them, in file-name
    order), as batches for the model's input; see the module docstring."""
    from axonnx.model import load_model

    if limit is not None and limit < 1:
        raise AxonnxError(f"--calib must be at least 1 sample, not {limit}")
    model = load_model(model)
    spec = single_input(model)
    path = Path(path)
    files = _files(path)
    if files[0].suffix.lower() in IMAGE_SUFFIXES:
        batches = _images(files, model, spec, limit)
        kind = "images"
    else:
        batches, taken = [], 0
        for array, where in _arrays(files, spec):
            if limit is not None and taken >= limit:
                break
            batch = fit_to_input(array, spec, f"calibration array {where}")
            if limit is not None:
                batch = batch[: limit - taken]
            batches.append(batch)
            taken += len(batch)
        kind = "samples"
    calibration = Calibration(batches, "")
    if calibration.samples == 0:
        raise AxonnxError(f"calibration data {path} holds no samples")
    calibration.source = f"{calibration.samples} {kind} from {path}"
    return calibration
