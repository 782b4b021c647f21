"""Where a command's data comes from: one entry point for every command.

:class:`DataOptions` is what the command line says (``--data``, ``--labels``, ``--sample``,
``--limit``, ``--preprocess``); :func:`load_data` turns it into a
:class:`~axonnx.data.source.Dataset` for a loaded model:

* no path, ``--sample``, or a folder holding the CIFAR-10 batches: CIFAR-10 (the official
  test set, or the packaged 1,000-image sample), labelled;
* any other path: your own data (:mod:`axonnx.data.folder`).

:func:`search_and_report` gives explore its two disjoint splits, and
:func:`calibration_data` the recovery statistics their samples; :func:`from_iterable`
wraps a Python iterable. :func:`input_range_note` compares what is fed with the range
the model's input quantizer was calibrated on.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx

from axonnx.data.preprocess import (_HOW_TO_FIX, PREPROCESS_KEY, Preprocess, has_preprocess,
                                    model_preprocess)
from axonnx.data.source import Dataset
from axonnx.errors import AxonnxError
from axonnx.progress import Progress


@dataclass(frozen=True)
class DataOptions:
    path: Path | None = None  # CIFAR-10 batches, or your own data
    labels: Path | None = None
    sample: bool = False
    limit: int | None = None
    preprocess: str | None = None  # --preprocess, over the model's metadata
    download: bool = False

    def __post_init__(self):
        if self.sample and (self.path is not None or self.download):
            given = " and ".join(o for o, on in (("--data", self.path is not None),
                                                  ("--download", self.download)) if on)
            raise AxonnxError(f"--sample uses the packaged CIFAR-10 images; drop {given}")
        if self.limit is not None and self.limit < 1:
            raise AxonnxError(f"--limit must be at least 1, not {self.limit}")

    @property
    def cifar(self) -> bool:
        return self.sample or self.path is None or is_cifar_folder(self.path)


def is_cifar_folder(path: Path) -> bool:
    from axonnx.data.cifar10 import BATCH_DIR

    path = Path(path)
    return path.is_dir() and ((path / "test_batch").is_file() or (path / BATCH_DIR).is_dir())


def _image_preprocess(model: onnx.ModelProto, override: str | None, what: str) -> tuple[Preprocess, str]:
    """The preprocessing for images fed to the model, and where it comes from. Without
    metadata or --preprocess, only the standard [N, 3, 32, 32] input gets the standard
    contract; anything else is an error (the preprocessing is never guessed)."""
    from axonnx.model import model_inputs

    if has_preprocess(model) or override:
        source = " and ".join(s for s, on in (("model metadata", has_preprocess(model)),
                                              ("--preprocess", bool(override))) if on)
        return model_preprocess(model, override), source
    inputs = model_inputs(model)
    spec = inputs[0] if len(inputs) == 1 else None
    standard = (spec is not None and spec.dtype == np.float32 and spec.dims is not None
                and len(spec.dims) == 4 and tuple(spec.dims[1:]) == (3, 32, 32))
    if not standard:
        raise AxonnxError(
            f"{what}: the model has no {PREPROCESS_KEY} metadata and its input "
            f"({'several inputs' if spec is None else spec.describe()}) is not the standard "
            f"float32 [N, 3, 32, 32]; the preprocessing is not guessed: {_HOW_TO_FIX}",
            {"--preprocess": "say it on the command line, e.g. 'range=0-1 mean=... std=...'"})
    return Preprocess(), "assumed (no axonnx.preprocess metadata)"


def single_input(model: onnx.ModelProto):
    from axonnx.model import model_inputs

    inputs = model_inputs(model)
    if len(inputs) != 1:
        raise AxonnxError(
            f"images feed a single-input model; this one has {len(inputs)} inputs "
            f"({', '.join(i.name for i in inputs)}): give .npz files with one array per input, "
            "or a Python iterable of {name: array} dicts")
    return inputs[0]


def cifar_dataset(split, model: onnx.ModelProto, preprocess: str | None = None) -> Dataset:
    """A CIFAR-10 :class:`~axonnx.data.cifar10.Split` for ``model``."""
    from axonnx.data.cifar10 import CLASSES

    prep, origin = _image_preprocess(model, preprocess, "CIFAR-10")
    spec = single_input(model)
    return Dataset({spec.name: split.images}, np.asarray(split.labels, np.int64), split.source,
                   prep, CLASSES, origin)


def _cifar_split(options: DataOptions, split: str, progress: Progress = None):
    from axonnx.data.cifar10 import load_sample, load_split

    if options.sample:
        return load_sample()
    return load_split(split, options.path, download=options.download, progress=progress)


def load_data(options: DataOptions, model: onnx.ModelProto, *, progress: Progress = None,
              what: str = "data") -> Dataset:
    """The samples ``options`` name, ready for ``model`` (first ``limit`` of them)."""
    if options.cifar:
        if options.labels is not None:
            raise AxonnxError("--labels is for your own data; CIFAR-10 carries its labels")
        data = cifar_dataset(_cifar_split(options, "test", progress), model, options.preprocess)
    else:
        data = read_data(options.path, model, labels=options.labels,
                         preprocess=options.preprocess, what=what)
    return data.head(options.limit)


def read_data(path: Path, model: onnx.ModelProto, *, labels: Path | None = None,
              preprocess: str | None = None, limit: int | None = None,
              what: str = "data") -> Dataset:
    """Your own images or arrays at ``path`` (:mod:`axonnx.data.folder`)."""
    from axonnx.data.calibration import fit_to_input
    from axonnx.data.folder import (IMAGE_SUFFIXES, data_files, find_classes, read_arrays,
                                    read_images, read_labels)
    from axonnx.model import model_inputs

    path = Path(path)
    files = data_files(path, what)
    root = path if path.is_dir() else path.parent
    if files[0].suffix.lower() in IMAGE_SUFFIXES:
        prep, origin = _image_preprocess(model, preprocess, f"images in {path}")
        spec = single_input(model)
        classes, index = find_classes(root) if path.is_dir() else ([], {})
        if limit is not None:
            files = files[:limit]
        images = read_images(files, spec, prep)
        label_array = None
        if labels is not None:
            label_array = read_labels(Path(labels), files, root, classes)
        elif classes:
            label_array = np.asarray([index[f.relative_to(root).parts[0]] for f in files], np.int64)
        layout = f"ImageFolder, {len(classes)} classes" if classes and labels is None else "images"
        return Dataset({spec.name: images}, label_array, f"{len(files)} {layout} from {path}",
                       prep, tuple(classes) or None, origin)
    if preprocess:
        raise AxonnxError("--preprocess applies to images; arrays are fed as they are")
    arrays, label_array = read_arrays(files, model_inputs(model), fit_to_input)
    if labels is not None:
        label_array = read_labels(Path(labels), files, root, None)
        if len(label_array) != len(next(iter(arrays.values()))):
            raise AxonnxError(f"labels file {labels} has {len(label_array)} labels for "
                              f"{len(next(iter(arrays.values())))} samples; give one per sample")
    data = Dataset(arrays, label_array, "")
    data = replace(data, source=f"{len(data)} samples from {path}")
    return data.head(limit)


def from_iterable(items: Iterable, model: onnx.ModelProto, labels=None,
                  source: str = "Python iterable") -> Dataset:
    """A Dataset from arrays (single-input models; a batch, or one sample without the batch
    axis) or ``{input name: array}`` dicts, already preprocessed; ``labels`` optional."""
    from axonnx.data.calibration import fit_to_input
    from axonnx.model import model_inputs

    specs = {s.name: s for s in model_inputs(model)}
    parts: dict[str, list[np.ndarray]] = {n: [] for n in specs}
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            item = {single_input(model).name: item}
        if set(item) != set(specs):
            raise AxonnxError(f"input {k} feeds {sorted(item)}; the model's inputs are "
                              f"{sorted(specs)}")
        for name, array in item.items():
            parts[name].append(fit_to_input(array, specs[name], f"input {k} ({name})"))
    if not parts or not all(parts.values()):
        raise AxonnxError("the iterable holds no samples")
    arrays = {n: np.concatenate(p) for n, p in parts.items()}
    label_array = None if labels is None else np.asarray(labels, np.int64)
    data = Dataset(arrays, label_array, source)
    return replace(data, source=f"{len(data)} samples ({source})")


def as_dataset(data, model: onnx.ModelProto) -> Dataset:
    """A Dataset from a Dataset, a CIFAR Split or a Python iterable."""
    from axonnx.data.cifar10 import Split

    if isinstance(data, Dataset):
        return data
    if isinstance(data, Split):
        return cifar_dataset(data, model)
    if isinstance(data, (str, os.PathLike)):
        return read_data(Path(data), model)
    return from_iterable(data, model)


# ---- the splits of a study -------------------------------------------------------------------

VALIDATION_BATCH = "data_batch_5"  # CIFAR-10's validation split: searched, never reported
VALIDATION_IMAGES = 10_000  # data_batch_5 is the last 10,000 training images


def _training_set(options: DataOptions, model: onnx.ModelProto) -> Dataset | None:
    """The 50,000 CIFAR-10 training images for ``model``, None without the batches. Read
    once per folder: explore takes its search split and its calibration images from them."""
    from axonnx.data.cifar10 import find_batches

    try:
        train = _load_train(find_batches(options.path))  # keyed by the folder found
    except AxonnxError:
        return None
    return cifar_dataset(train, model, options.preprocess)


@functools.lru_cache(maxsize=1)
def _load_train(directory: Path):
    from axonnx.data.cifar10 import load_split

    return load_split("train", directory, progress=None)


def search_and_report(options: DataOptions, model: onnx.ModelProto, *, subset: int | None,
                      seed: int = 0, search_data: Path | None = None,
                      eval_data: Path | None = None) -> tuple[Dataset, Dataset]:
    """Explore's two disjoint splits: the search split (``subset`` samples, scored for every
    candidate) and the report split (the Pareto plans are re-scored on it).

    * CIFAR-10: the search split is class-balanced from a validation split of the training
      batches (``data_batch_5``), the report split the official test set; with ``--sample``
      (no training batches), the packaged sample is split in two with ``seed``.
    * Your own data: ``search_data`` and ``eval_data``, or one ``--data`` split with ``seed``
      (``subset`` samples to the search, at most half by default).
    """
    if search_data is not None or eval_data is not None:
        if search_data is None or eval_data is None:
            raise AxonnxError("give both --search-data and --eval-data, or neither (one --data "
                              "is then split in two)")
        search = read_data(search_data, model, labels=options.labels, preprocess=options.preprocess,
                           what="--search-data")
        report = read_data(eval_data, model, labels=options.labels, preprocess=options.preprocess,
                           what="--eval-data").head(options.limit)
        if search.same_samples(report):
            raise AxonnxError("--search-data and --eval-data hold the same samples; give two "
                              "disjoint sets so the front is not tuned on the data it reports")
        return search.balanced(subset), report
    if options.cifar and not options.sample:
        report = load_data(options, model)
        train = _training_set(options, model)
        if train is not None:
            first = len(train) - VALIDATION_IMAGES
            validation = train.subset(np.arange(first, len(train)),
                                      f"CIFAR-10 validation split ({VALIDATION_BATCH})")
            return validation.balanced(subset), replace(report, source=f"{report.source}, report split")
        data = report  # no training batches: split the test set itself
    else:
        data = load_data(replace(options, limit=None), model)
    n = subset if subset is not None and subset < len(data) else len(data) // 2
    search, report = data.split(n, seed)
    return search, report.head(options.limit)


def calibration_data(options: DataOptions, model: onnx.ModelProto, n: int, *,
                     calib_data: Path | None = None, fallback: Dataset | None = None) -> Dataset:
    """``n`` samples for the recovery statistics: ``calib_data`` when given; else the first
    ``n`` of your own ``--data``; for CIFAR-10, a seeded draw from the training batches other
    than the validation split; else the first ``n`` of ``fallback`` (named as such)."""
    if n < 1:
        raise AxonnxError(f"--calib must be at least 1 sample, not {n}")
    if calib_data is not None:
        return read_data(Path(calib_data), model, preprocess=options.preprocess, limit=n,
                         what="calibration data")
    if not options.cifar:
        return read_data(options.path, model, labels=options.labels,
                         preprocess=options.preprocess, limit=n)
    train = None if options.sample else _training_set(options, model)
    if train is not None:
        pool = len(train) - VALIDATION_IMAGES  # not the validation split
        idx = np.sort(np.random.default_rng(0).permutation(pool)[:n])
        return train.subset(idx, f"{len(idx)} CIFAR-10 training images (seed 0)")
    if fallback is None:
        raise AxonnxError("recovery needs calibration data and the CIFAR-10 training batches "
                          "are not there: give --calib-data")
    return replace(fallback.head(n), source=f"first {min(n, len(fallback))} samples of "
                                            f"{fallback.source} (no training data)")


# ---- checks ----------------------------------------------------------------------------------

def input_quantizer_range(model: onnx.ModelProto) -> dict[str, tuple[float, float]]:
    """Per graph input, the float range its first QuantizeLinear covers (what quantize_static
    calibrated it on)."""
    from onnx import numpy_helper

    from axonnx.model import model_inputs

    constants = {t.name: t for t in model.graph.initializer}
    names = {s.name for s in model_inputs(model)}
    out = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] not in names:
            continue
        scale, zero = (numpy_helper.to_array(constants[n]) if n in constants else None
                       for n in (node.input[1], node.input[2] if len(node.input) > 2 else ""))
        if scale is None or np.asarray(scale).size != 1:
            continue
        zp = 0 if zero is None else int(np.asarray(zero).reshape(-1)[0])
        lo, hi = (-128, 127) if zero is not None and np.asarray(zero).dtype == np.int8 else (0, 255)
        s = float(np.asarray(scale).reshape(-1)[0])
        out[node.input[0]] = ((lo - zp) * s, (hi - zp) * s)
    return out


def input_range_note(data: Dataset, model: onnx.ModelProto, what: str = "the data") -> str | None:
    """A warning when the first samples fall mostly outside the range the model's input
    quantizer covers: data not preprocessed as the model expects (raw 0..255 pixels fed to
    a model that wants normalised ones, or the reverse)."""
    ranges = input_quantizer_range(model)
    if not ranges or len(data) == 0:
        return None
    feeds = data.feeds(0, min(len(data), 16))
    for name, (lo, hi) in ranges.items():
        x = np.asarray(feeds.get(name), np.float64)
        if x.size == 0:
            continue
        span = hi - lo
        outside = float(np.mean((x < lo - 0.25 * span) | (x > hi + 0.25 * span)))
        tiny = span > 0 and (x.max() - x.min()) < 0.02 * span
        if outside > 0.05 or tiny:
            fix = ("give --preprocess (e.g. range=0-1 mean=... std=...)"
                   if data.preprocess is not None else "preprocess the arrays as the model expects")
            return (f"{what} for input {name!r} spans [{x.min():.3g}, {x.max():.3g}] but the "
                    f"model's input quantizer covers [{lo:.3g}, {hi:.3g}]"
                    + (f" ({100 * outside:.0f}% of values outside)" if outside > 0.05 else
                       " (the data barely varies)")
                    + f": it is probably not preprocessed as the model expects; {fix}")
    return None
