"""Top-1 accuracy of an ONNX classifier on a CIFAR-10 split, with onnxruntime.

The input preprocessing is read from the model, never guessed:

* A model says how it wants its pixels in ``metadata_props["axonnx.preprocess"]``, a JSON
  object with
    - ``layout``: ``"NCHW"`` or ``"NHWC"``;
    - ``dtype``: ``"float32"`` or ``"uint8"``;
    - ``range``: ``"0-255"`` (raw pixel values) or ``"0-1"`` (divided by 255);
    - ``normalisation``: ``"in graph"`` (nothing more to do) or
      ``{"mean": [r, g, b], "std": [r, g, b]}`` in the units of ``range``, applied as
      ``(x - mean) / std`` before the model sees it (float32 only).
  The zoo models carry ``{"layout": "NCHW", "dtype": "float32", "range": "0-255",
  "normalisation": "in graph"}``.
* A model **without** that entry is accepted only if it has the standard axonnx input: one
  float32 input of shape ``[N, 3, 32, 32]`` (N may be symbolic). It then gets the standard
  contract above (raw 0..255 pixels, NCHW, normalisation inside the graph), and
  :attr:`EvalResult.preprocess_source` says ``"assumed (no axonnx.preprocess metadata)"`` so
  callers can tell the user. Any other input without metadata is an error that says how to
  add the entry.

The first output must be ``[N, 10]`` scores (logits or probabilities); the prediction is
its argmax.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from axonnx.data.cifar10 import CLASSES, Split
from axonnx.data.preprocess import (  # noqa: F401  (re-exported: the contract's old home)
    _HOW_TO_FIX, PREPROCESS_KEY, STANDARD_PREPROCESS, Preprocess, parse_preprocess,
)
from axonnx.errors import AxonnxError
from axonnx.progress import Progress

@dataclass
class EvalResult:
    model: str
    path: str
    data: str
    n: int
    correct: int
    top1: float
    per_class: dict[str, float | None]  # None for a class absent from the split
    images_per_s: float
    seconds: float
    batch: int
    threads: int | None
    preprocess: dict[str, Any]
    preprocess_source: str
    session: str
    predictions: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Everything but the per-image arrays, JSON-ready."""
        return {
            "model": self.model, "path": self.path, "data": self.data, "n": self.n, "correct": self.correct,
            "top1": self.top1, "per_class": self.per_class,
            "images_per_s": self.images_per_s, "seconds": self.seconds, "batch": self.batch,
            "threads": self.threads, "preprocess": self.preprocess,
            "preprocess_source": self.preprocess_source, "session": self.session,
        }


def make_session(path: Path, threads: int | None = None):
    """An onnxruntime session for ``path`` and its kind (see axonnx._library.open_session)."""
    from axonnx._library import open_session

    return open_session(str(path), threads=threads, what=str(path))


def _input_preprocess(session, path: Path) -> tuple[Preprocess, str]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise AxonnxError(
            f"{path}: the model has {len(inputs)} inputs; evaluation needs exactly one image input"
        )
    meta = session.get_modelmeta().custom_metadata_map
    if PREPROCESS_KEY in meta:
        return parse_preprocess(meta[PREPROCESS_KEY], str(path)), "model metadata"
    shape = inputs[0].shape
    standard = (
        inputs[0].type == "tensor(float)" and len(shape) == 4
        and [d if isinstance(d, int) else None for d in shape[1:]] == [3, 32, 32]
    )
    if not standard:
        raise AxonnxError(
            f"{path}: no {PREPROCESS_KEY} metadata and the input ({inputs[0].type} {shape}) is "
            "not the standard float32 [N, 3, 32, 32]; the preprocessing is not guessed: "
            + _HOW_TO_FIX
        )
    return Preprocess(), "assumed (no axonnx.preprocess metadata)"


def evaluate(
    model: str | os.PathLike,
    split: Split,
    batch: int = 250,
    threads: int | None = None,
    progress: Progress = None,
) -> EvalResult:
    """Run ``model`` (a path or a zoo name) over ``split`` and score its top-1 accuracy."""
    from axonnx.zoo import resolve_model

    if batch < 1:
        raise AxonnxError(f"batch must be at least 1, not {batch}")
    if len(split) == 0:
        raise AxonnxError("nothing to evaluate: the split is empty")
    path = resolve_model(model)
    session, kind = make_session(path, threads)
    prep, prep_source = _input_preprocess(session, path)
    inp = session.get_inputs()[0]
    fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
    if fixed_batch is not None:
        batch = fixed_batch
    out = session.get_outputs()[0]
    out_shape = out.shape
    if len(out_shape) != 2 or (isinstance(out_shape[1], int) and out_shape[1] != len(CLASSES)):
        raise AxonnxError(
            f"{path}: the first output {out.name} has shape {out_shape}; expected "
            f"[N, {len(CLASSES)}] class scores"
        )

    n = len(split)
    predictions = np.empty(n, dtype=np.int64)
    run_seconds = 0.0
    kind = f"eval {path.name}"
    if progress:
        progress(kind, 0, n)
    for start in range(0, n, batch):
        images = split.images[start:start + batch]
        count = len(images)
        if fixed_batch is not None and count < fixed_batch:
            pad = np.zeros((fixed_batch - count, *images.shape[1:]), images.dtype)
            images = np.concatenate([images, pad])
        x = prep.apply(images)
        t0 = time.perf_counter()
        try:
            scores = session.run([out.name], {inp.name: x})[0]
        except Exception as exc:
            raise AxonnxError(f"onnxruntime failed running {path}: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}") from None
        run_seconds += time.perf_counter() - t0
        if scores.ndim != 2 or scores.shape[1] != len(CLASSES):
            raise AxonnxError(f"{path}: output of shape {scores.shape}; expected [N, {len(CLASSES)}]")
        predictions[start:start + count] = scores[:count].argmax(axis=1)
        if progress:
            progress(kind, count, None)

    labels = np.asarray(split.labels, dtype=np.int64)
    hits = predictions == labels
    per_class = {}
    for c, name in enumerate(CLASSES):
        mask = labels == c
        per_class[name] = float(hits[mask].mean()) if mask.any() else None
    prep_dict = {"layout": prep.layout, "dtype": prep.dtype, "range": prep.range,
                 "normalisation": "in graph" if prep.mean is None
                 else {"mean": list(prep.mean), "std": list(prep.std)}}
    return EvalResult(
        model=os.fspath(model), path=str(path), data=split.source, n=n, correct=int(hits.sum()),
        top1=float(hits.mean()), per_class=per_class,
        images_per_s=n / run_seconds if run_seconds > 0 else float("inf"),
        seconds=run_seconds, batch=batch, threads=threads, preprocess=prep_dict,
        preprocess_source=prep_source, session=kind, predictions=predictions, labels=labels,
    )
