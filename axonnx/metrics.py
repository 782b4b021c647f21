"""How a model's outputs are scored: against labels, or against the exact model's own
outputs (label-free fidelity), or by a function of the user's.

A metric follows torchmetrics' shape: :meth:`Metric.update` per batch, then
:meth:`Metric.compute`, which returns a dict whose entry ``metric.name`` is the primary
score (the one sensitivity and explore optimise); ``higher_is_better`` says its direction
and ``unit`` its units, in which floors and losses are given.

Built-in metrics, by the name ``--metric`` takes (``NAME:OUTPUT`` scores the output of
that name instead of the first one):

* ``top1``, ``top5`` (``topK``): share of samples whose label is among the K best scores
  (labels needed; the class axis is axis 1);
* ``agreement``: share of predictions (argmax) equal to the exact model's; the class axis
  is axis 1 for [N, C] and [N, C, H, W] outputs and the last axis for [N, T, C] sequences;
* ``snr``: output signal-to-noise ratio in dB, ``10 log10(sum ref^2 / sum (out - ref)^2)``
  over every element, capped at 120 dB (identical outputs);
* ``cosine``: mean cosine similarity per sample;
* ``iou`` (``iou@T``, default T = 0.5): intersection over union of the maps thresholded at
  T (``out > T``), over all pixels of all samples: for probability maps such as a text
  detector's;
* ``module:function`` or ``path/to/file.py:function``: ``function(exact, approx, labels)``
  receives the exact and the approximate outputs (lists of arrays, one per model output,
  all samples) and the labels (None without them), and returns a number or a dict whose
  first entry is the primary score. It may set ``function.higher_is_better = False``.
  In Python, pass the callable itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from axonnx.errors import AxonnxError

SNR_CAP_DB = 120.0


class Metric:
    """Base class: accumulate with update(), read with compute()."""

    name = "metric"
    higher_is_better = True
    needs_labels = False
    needs_reference = False
    unit = "fraction"  # or "dB", or "" for a user's

    def __init__(self, output: str | None = None):
        self.output = output  # None: the first output
        self.reset()

    def reset(self) -> None:
        pass

    def update(self, outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray] | None,
               labels: np.ndarray | None) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError

    def loss(self, baseline: float, score: float) -> float:
        """How much worse ``score`` is than ``baseline``, in the metric's units."""
        return baseline - score if self.higher_is_better else score - baseline

    def describe(self) -> dict:
        return {"name": self.name, "unit": self.unit, "higher_is_better": self.higher_is_better,
                "needs_labels": self.needs_labels, "needs_reference": self.needs_reference,
                "output": self.output}

    def _pick(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        if self.output is None:
            return next(iter(outputs.values()))
        if self.output not in outputs:
            raise AxonnxError(f"metric {self.name}: the model has no output {self.output!r} "
                              f"(it has {', '.join(outputs)})")
        return outputs[self.output]


def _class_axis(scores: np.ndarray) -> int:
    return -1 if scores.ndim == 3 else 1


class TopK(Metric):
    needs_labels = True

    def __init__(self, k: int = 1, output: str | None = None):
        self.k = k
        self.name = f"top{k}"
        super().__init__(output)

    def reset(self):
        self.hits = self.n = 0

    def update(self, outputs, reference, labels):
        scores = self._pick(outputs)
        scores = scores.reshape(len(scores), -1)
        if labels is None:
            raise AxonnxError(f"{self.name} needs labels; give a labelled data set or a "
                              "label-free metric (agreement, snr, cosine, iou)")
        if self.k == 1:
            hit = scores.argmax(axis=1) == labels
        else:
            best = np.argpartition(-scores, min(self.k, scores.shape[1]) - 1, axis=1)[:, :self.k]
            hit = (best == labels[:, None]).any(axis=1)
        self.hits += int(hit.sum())
        self.n += len(hit)

    def compute(self):
        return {self.name: self.hits / max(self.n, 1)}


class Agreement(Metric):
    name = "agreement"
    needs_reference = True

    def reset(self):
        self.same = self.n = 0

    def update(self, outputs, reference, labels):
        out, ref = self._pick(outputs), self._pick(reference)
        axis = _class_axis(out)
        same = out.argmax(axis=axis) == ref.argmax(axis=axis)
        self.same += int(same.sum())
        self.n += same.size

    def compute(self):
        return {self.name: self.same / max(self.n, 1)}


class OutputSNR(Metric):
    name = "snr"
    needs_reference = True
    unit = "dB"

    def reset(self):
        self.signal = self.noise = 0.0

    def update(self, outputs, reference, labels):
        out = self._pick(outputs).astype(np.float64)
        ref = self._pick(reference).astype(np.float64)
        self.signal += float(np.square(ref).sum())
        self.noise += float(np.square(out - ref).sum())

    def compute(self):
        if self.noise == 0.0:
            return {self.name: SNR_CAP_DB}
        if self.signal == 0.0:
            return {self.name: -SNR_CAP_DB}
        return {self.name: min(SNR_CAP_DB, 10.0 * math.log10(self.signal / self.noise))}


class Cosine(Metric):
    name = "cosine"
    needs_reference = True

    def reset(self):
        self.total = 0.0
        self.n = 0

    def update(self, outputs, reference, labels):
        out = self._pick(outputs).astype(np.float64).reshape(len(self._pick(outputs)), -1)
        ref = self._pick(reference).astype(np.float64).reshape(len(out), -1)
        dot = (out * ref).sum(axis=1)
        norms = np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1)
        both_zero = norms == 0
        cos = np.where(both_zero, np.where(np.abs(out - ref).sum(axis=1) == 0, 1.0, 0.0),
                       dot / np.where(both_zero, 1.0, norms))
        self.total += float(cos.sum())
        self.n += len(cos)

    def compute(self):
        return {self.name: self.total / max(self.n, 1)}


class MapIoU(Metric):
    needs_reference = True

    def __init__(self, threshold: float = 0.5, output: str | None = None):
        self.threshold = threshold
        self.name = "iou" if threshold == 0.5 else f"iou@{threshold:g}"
        super().__init__(output)

    def reset(self):
        self.inter = self.union = 0

    def update(self, outputs, reference, labels):
        out = self._pick(outputs) > self.threshold
        ref = self._pick(reference) > self.threshold
        self.inter += int((out & ref).sum())
        self.union += int((out | ref).sum())

    def compute(self):
        return {self.name: 1.0 if self.union == 0 else self.inter / self.union}


class UserMetric(Metric):
    """A function of the user's, called once on all outputs (see the module docstring)."""

    needs_reference = True
    unit = ""

    def __init__(self, function: Callable, name: str | None = None):
        self.function = function
        self.name = name or getattr(function, "__name__", "metric")
        self.higher_is_better = bool(getattr(function, "higher_is_better", True))
        super().__init__(None)

    def reset(self):
        self.exact: list[dict] = []
        self.approx: list[dict] = []
        self.labels: list[np.ndarray] = []

    def update(self, outputs, reference, labels):
        self.approx.append(outputs)
        self.exact.append(reference)
        if labels is not None:
            self.labels.append(labels)

    def compute(self):
        def joined(parts):
            return [np.concatenate([p[name] for p in parts]) for name in parts[0]]

        labels = np.concatenate(self.labels) if self.labels else None
        try:
            value = self.function(joined(self.exact), joined(self.approx), labels)
        except AxonnxError:
            raise
        except Exception as exc:
            raise AxonnxError(f"metric {self.name} raised {type(exc).__name__}: {exc}") from None
        if isinstance(value, dict):
            if not value:
                raise AxonnxError(f"metric {self.name} returned an empty dict")
            first = next(iter(value))
            result = {self.name: float(value[first]),
                      **{k: float(v) for k, v in value.items() if k != first}}
        else:
            try:
                result = {self.name: float(value)}
            except (TypeError, ValueError):
                raise AxonnxError(f"metric {self.name} returned {type(value).__name__}; return "
                                  "a number or a dict of numbers") from None
        if not math.isfinite(result[self.name]):
            raise AxonnxError(f"metric {self.name} returned {result[self.name]}; return a "
                              "finite number")
        return result


BUILT_IN = ("top1", "top5", "agreement", "snr", "cosine", "iou")


def _load_function(spec: str) -> Callable:
    module_name, _, attr = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise AxonnxError(f"--metric {spec!r}: {path} does not exist")
            loader = importlib.util.spec_from_file_location(f"axonnx_user_metric_{path.stem}", path)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except AxonnxError:
        raise
    except Exception as exc:
        raise AxonnxError(f"--metric {spec!r}: cannot import {module_name} "
                          f"({type(exc).__name__}: {exc})") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise AxonnxError(f"--metric {spec!r}: {module_name} has no function {attr!r}")
    return function


def make_metric(spec: "str | Callable | Metric") -> Metric:
    """A fresh metric from its name (see the module docstring), a callable or a Metric
    (returned as is)."""
    if isinstance(spec, Metric):
        return spec
    if callable(spec):
        return UserMetric(spec)
    text = str(spec).strip()
    name, _, output = text.partition(":")
    lowered = name.lower()
    builtin = (lowered in BUILT_IN or lowered.startswith("iou@")
               or (lowered.startswith("top") and lowered[3:].isdigit()))
    if not builtin:
        if ":" not in text:
            raise AxonnxError(f"unknown metric {text!r}; use {', '.join(BUILT_IN)}, iou@T, "
                              "topK, or module:function for your own")
        return UserMetric(_load_function(text), name=text.rpartition(":")[2])
    output = output or None
    if lowered.startswith("top"):
        k = int(lowered[3:])
        if k < 1:
            raise AxonnxError(f"metric {text!r}: K must be at least 1")
        return TopK(k, output)
    if lowered.startswith("iou"):
        threshold = 0.5
        if "@" in lowered:
            try:
                threshold = float(lowered.split("@", 1)[1])
            except ValueError:
                raise AxonnxError(f"metric {text!r}: give iou@T with a number T, e.g. "
                                  "iou@0.3") from None
        return MapIoU(threshold, output)
    return {"agreement": Agreement, "snr": OutputSNR, "cosine": Cosine}[lowered](output)


def default_metric(has_labels: bool, output_rank: int | None) -> str:
    """top1 with labels; otherwise agreement for class scores [N, C], snr for the rest."""
    if has_labels:
        return "top1"
    return "agreement" if output_rank == 2 else "snr"


def check_floor(metric: Metric, floor: float | None) -> float | None:
    """A floor in the metric's units; fractions also as percentages (> 1)."""
    if floor is None:
        return None
    if not math.isfinite(floor):
        raise AxonnxError(f"--floor must be a number, not {floor}")
    if metric.unit == "fraction":
        if floor > 1:
            floor /= 100.0
        if not 0.0 <= floor <= 1.0:
            raise AxonnxError(f"--floor is a {metric.name} in [0, 1] (or a percentage), "
                              f"not {floor}")
    return floor
