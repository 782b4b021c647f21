"""Scoring a model on a data set, with onnxruntime: against labels (top-1/top-5), against the
exact model's own outputs (agreement, SNR, cosine, IoU of maps), or by a metric of the
user's (:mod:`axonnx.metrics`).

The data is any :class:`~axonnx.data.source.Dataset` (:mod:`axonnx.data.load`), a CIFAR-10
:class:`~axonnx.data.cifar10.Split` or a Python iterable of model-ready inputs. Images go
through the preprocessing the model declares (``metadata_props["axonnx.preprocess"]``,
docs/data.md) or ``--preprocess``; it is never guessed, except for the standard axonnx
input (float32 [N, 3, 32, 32], raw 0..255 pixels, normalisation in the graph), which
:attr:`EvalResult.preprocess_source` then reports as assumed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx

from axonnx.data.preprocess import (  # noqa: F401  (re-exported: the contract's old home)
    _HOW_TO_FIX, PREPROCESS_KEY, STANDARD_PREPROCESS, Preprocess, parse_preprocess,
)
from axonnx.errors import AxonnxError
from axonnx.metrics import Metric, default_metric, make_metric
from axonnx.progress import Progress

Outputs = dict[str, np.ndarray]


@dataclass
class EvalResult:
    model: str
    path: str
    data: str
    n: int
    scores: dict[str, float]  # every metric's entries; scores[metric["name"]] is the primary
    metric: dict[str, Any]  # the primary metric: name, unit, higher_is_better, ...
    images_per_s: float
    seconds: float
    batch: int
    threads: int | None
    preprocess: dict[str, Any] | None
    preprocess_source: str
    session: str
    # With labels and [N, C] class scores: top-1 details.
    correct: int | None = None
    top1: float | None = None
    per_class: dict[str, float | None] | None = None  # None for a class absent from the data
    predictions: np.ndarray | None = field(default=None, repr=False)
    labels: np.ndarray | None = field(default=None, repr=False)

    @property
    def score(self) -> float:
        return self.scores[self.metric["name"]]

    def as_dict(self) -> dict[str, Any]:
        """Everything but the per-sample arrays, JSON-ready."""
        return {
            "model": self.model, "path": self.path, "data": self.data, "n": self.n,
            "metric": self.metric, "score": self.score, "scores": self.scores,
            "correct": self.correct, "top1": self.top1, "per_class": self.per_class,
            "images_per_s": self.images_per_s, "seconds": self.seconds, "batch": self.batch,
            "threads": self.threads, "preprocess": self.preprocess,
            "preprocess_source": self.preprocess_source, "session": self.session,
        }


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)


class Runner:
    """One onnxruntime session over a model, fed a Dataset batch by batch (a model with a
    fixed batch size gets padded batches)."""

    def __init__(self, model: onnx.ModelProto, threads: int | None = None, what: str = "the model",
                 outputs: list[str] | None = None):
        from axonnx._library import open_session
        from axonnx.ops.roupconv import check_required_inputs

        check_required_inputs(model)  # an absent input would crash the kernel's first run
        self.what = what
        self.session, self.kind = open_session(model, threads=threads, what=what)
        inputs = self.session.get_inputs()
        self.fixed_batch = next((i.shape[0] for i in inputs if isinstance(i.shape[0], int)), None)
        self.output_names = outputs or [o.name for o in self.session.get_outputs()]
        self.seconds = 0.0

    def batch_size(self, wanted: int) -> int:
        return self.fixed_batch or wanted

    def run(self, feeds: dict[str, np.ndarray]) -> Outputs:
        count = len(next(iter(feeds.values())))
        if self.fixed_batch is not None and count < self.fixed_batch:
            feeds = {k: np.concatenate([v, np.zeros((self.fixed_batch - count, *v.shape[1:]), v.dtype)])
                     for k, v in feeds.items()}
        t0 = time.perf_counter()
        try:
            values = self.session.run(self.output_names, feeds)
        except Exception as exc:  # onnxruntime's own error types
            raise AxonnxError(f"onnxruntime failed running {self.what}: {_first_line(exc)}") from None
        self.seconds += time.perf_counter() - t0
        return {name: v[:count] for name, v in zip(self.output_names, values)}

    def outputs(self, data, batch: int = 250) -> Outputs:
        """Every output over the whole data set (for reference outputs)."""
        parts = [self.run(b.feeds) for b in data.batches(self.batch_size(batch))]
        return {name: np.concatenate([p[name] for p in parts]) for name in self.output_names}


def resolve_metric(spec, data, model: onnx.ModelProto):
    """``spec`` as given, or the default when None: top1 with labels, else agreement for
    [N, C] class scores and snr for any other first output (its declared rank)."""
    if spec is not None:
        return spec
    out = model.graph.output[0].type.tensor_type
    rank = len(out.shape.dim) if out.HasField("shape") else None
    return default_metric(data.has_labels, rank)


def _metrics(specs, data, model: onnx.ModelProto) -> list[Metric]:
    if specs is None or specs == []:
        specs = [resolve_metric(None, data, model)]
    elif isinstance(specs, (str, Metric)) or callable(specs):
        specs = [specs]
    return [make_metric(s) for s in specs]


def _class_scores_check(data, runner: Runner, what: str) -> None:
    """Labelled data with named classes (CIFAR-10): the first output must be [N, classes]."""
    out = runner.session.get_outputs()[0]
    if data.classes is None:
        return
    k = len(data.classes)
    if len(out.shape) != 2 or (isinstance(out.shape[1], int) and out.shape[1] != k):
        raise AxonnxError(f"{what}: the first output {out.name} has shape {out.shape}; expected "
                          f"[N, {k}] class scores")


def evaluate(
    model: str | os.PathLike | onnx.ModelProto,
    data,
    metrics: str | Metric | Sequence | None = None,
    *,
    reference: str | os.PathLike | onnx.ModelProto | Outputs | None = None,
    batch: int = 250,
    threads: int | None = None,
    progress: Progress = None,
) -> EvalResult:
    """Score ``model`` (a path, a zoo name or a loaded model) on ``data``.

    ``metrics``: metric names, callables or :class:`~axonnx.metrics.Metric` objects (the
    first is the primary); default top1 with labels, else agreement or snr.
    ``reference``: the exact model (path or loaded) or its precomputed outputs, for the
    metrics that compare against it."""
    from axonnx.data.load import as_dataset
    from axonnx.model import load_model, resolve_model_path

    if batch < 1:
        raise AxonnxError(f"batch must be at least 1, not {batch}")
    if isinstance(model, onnx.ModelProto):
        loaded, path, what = model, "", model.graph.name or "the model"
    else:
        path = str(resolve_model_path(model))
        loaded, what = load_model(path), path
    data = as_dataset(data, loaded)
    if len(data) == 0:
        raise AxonnxError("nothing to evaluate: the data set is empty")
    runner = Runner(loaded, threads, what)
    metric_objects = _metrics(metrics, data, loaded)
    needs_labels = [m.name for m in metric_objects if m.needs_labels]
    if needs_labels and not data.has_labels:
        raise AxonnxError(f"metric {needs_labels[0]} needs labels but {data.source} has none; "
                          "give labels (an ImageFolder layout or --labels) or a label-free "
                          "metric (agreement, snr, cosine, iou)")
    if data.has_labels:
        _class_scores_check(data, runner, what)
    ref_runner, ref_outputs = None, None
    if any(m.needs_reference for m in metric_objects):
        if reference is None:
            names = [m.name for m in metric_objects if m.needs_reference]
            raise AxonnxError(f"metric {names[0]} compares against the exact model's outputs: "
                              "give the reference model (--reference)")
        if isinstance(reference, dict):
            ref_outputs = reference
        else:
            ref_runner = Runner(load_model(reference), threads, "the reference model")
    size = runner.batch_size(batch)
    if ref_runner is not None and ref_runner.fixed_batch not in (None, size):
        raise AxonnxError("the model and the reference model have different fixed batch sizes")

    label = f"eval {Path(path).name if path else what}"
    if progress:
        progress(label, 0, len(data))
    predictions = [] if data.has_labels else None
    start = 0
    for b in data.batches(size):
        outputs = runner.run(b.feeds)
        count = len(next(iter(outputs.values())))
        if ref_outputs is not None:
            ref = {k: v[start:start + count] for k, v in ref_outputs.items()}
        else:
            ref = ref_runner.run(b.feeds) if ref_runner is not None else None
        for m in metric_objects:
            m.update(outputs, ref, b.labels)
        if predictions is not None and next(iter(outputs.values())).ndim == 2:
            predictions.append(next(iter(outputs.values())).argmax(axis=1))
        start += count
        if progress:
            progress(label, count, None)
    scores: dict[str, float] = {}
    for m in metric_objects:
        scores.update(m.compute())
    result = EvalResult(
        model=os.fspath(model) if not isinstance(model, onnx.ModelProto) else what,
        path=path, data=data.source, n=len(data), scores=scores,
        metric=metric_objects[0].describe(),
        images_per_s=len(data) / runner.seconds if runner.seconds > 0 else float("inf"),
        seconds=runner.seconds, batch=size, threads=threads,
        preprocess=None if data.preprocess is None else data.preprocess.as_dict(),
        preprocess_source=data.preprocess_source,
        session=runner.kind,
    )
    if predictions:
        _top1_details(result, np.concatenate(predictions), data)
    return result


def _top1_details(result: EvalResult, predictions: np.ndarray, data) -> None:
    labels = np.asarray(data.labels, np.int64)
    hits = predictions == labels
    result.predictions, result.labels = predictions, labels
    result.correct, result.top1 = int(hits.sum()), float(hits.mean())
    names = data.classes or tuple(str(c) for c in range(int(labels.max()) + 1))
    result.per_class = {name: float(hits[labels == c].mean()) if (labels == c).any() else None
                        for c, name in enumerate(names)}
    result.scores.setdefault("top1", result.top1)


__all__ = ["EvalResult", "Runner", "evaluate", "resolve_metric"]
