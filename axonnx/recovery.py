"""Accuracy recovery without retraining: weight tuning and bias correction.

Both work from the distribution of the stored activations each conv layer's multipliers
see, measured once on calibration images (:func:`measure_activations`: the model runs
with the conv input tensors as extra outputs; every input channel and kernel tap gets a
256-bin histogram of the values it meets, padding holding the zero point included).

Let a weight position hold the stored weight ``w`` and, after tuning, ``w'``, and let its
multiplier be ``M``. The exact conv receives ``(x - zx)(w - zw)``. A ROUP or SKIP position
receives ``M(x - zx, w' - zw)``: its operands are zero-point-free (SPEC.md). A LUT position
receives ``M(x, w') - zw x - zx w' + zx zw`` with its operands in the table's domain. The
difference, this position's **product error**, is then::

    e(x; w, w') = M(x - zx, w' - zw) - (x - zx)(w - zw)          (ROUP, SKIP)
    e(x; w, w') = M(x, w') - x w - zx (w' - w)                    (LUT)

Both are ``D[x, w'] - u(x) v(w)`` with ``u = x - zx`` and the weight's value ``v``
(``w - zw`` for ROUP, the table-domain ``w`` for a LUT), which is how the tables store them.

* **Weight tuning** (ALWANN's idea): for every stored weight value ``w`` of a layer and
  every multiplier used there, choose the stored value ``w'`` that minimises
  ``E_x[e(x; w, w')^2]`` over the layer's measured activation distribution (per input
  channel, padding taps holding ``zx`` included); with bias correction on, which removes
  the mean error, it minimises ``Var_x[e]`` instead. ``w' = w`` is a candidate and wins
  ties, so tuning never increases its objective (:meth:`Recovery.layer_error`). The
  tuned weights are written as a new weight initializer; the plan's assignment is
  computed from the original weights.
* **Bias correction**: each output channel's expected accumulated error
  ``sum_k E[e(x_k; w_k, w'_k)]`` (per input channel and kernel tap; a tap that falls in the
  padding sees ``zx``) is subtracted, rounded, from the int32 bias.

Exact positions are left alone by both. A :class:`Recovery` caches its per-layer,
per-multiplier tables, so a search can transform thousands of plans with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from axonnx.data.preprocess import model_preprocess
from axonnx.errors import AxonnxError

LEVELS = 256  # 8-bit operands


RECOVERY_MODES = ("none", "tune", "bias", "tune+bias")


def canonical_recovery(mode: str) -> str:
    """The recovery mode's canonical name (``both`` and ``tune,bias`` mean ``tune+bias``)."""
    name = mode.strip().lower().replace(",", "+")
    if name in ("both", "bias+tune"):
        name = "tune+bias"
    if name not in RECOVERY_MODES:
        raise AxonnxError(f"unknown recovery {mode!r}; use one of {', '.join(RECOVERY_MODES)}")
    return name


def recovery_flags(mode: str) -> tuple[bool, bool]:
    """(tune_weights, correct_bias) of a recovery mode name."""
    mode = canonical_recovery(mode)
    return "tune" in mode, "bias" in mode


# ---- activation statistics ---------------------------------------------------------------

@dataclass
class LayerActivations:
    """What one conv layer's multipliers see: per input channel and kernel tap, a histogram
    of the stored activation values the tap meets inside the image; the rest of the tap's
    ``windows`` fall into the padding, which holds ``zero_point``."""

    taps: np.ndarray  # int64 [C, kH, kW, 256]; bin = stored value - dtype minimum
    windows: int  # output pixels x images: how often each tap is used per channel
    dtype: str  # "int8" or "uint8"
    input_hw: tuple[int, int]
    zero_point: int  # the stored activation zero point

    @property
    def channels(self) -> int:
        return int(self.taps.shape[0])

    def tap_distribution(self) -> np.ndarray:
        """[C, kH, kW, 256] probabilities, padding included."""
        p = self.taps.astype(np.float64)
        padding = self.windows - p.sum(axis=-1)
        p[..., self.zero_point - _stored_min(self.dtype)] += padding
        return p / max(self.windows, 1)


@dataclass
class ActivationStats:
    layers: dict[str, LayerActivations]
    images: int
    source: str = ""

    def save(self, path: str | Path) -> None:
        arrays = {f"taps_{i}": la.taps for i, la in enumerate(self.layers.values())}
        meta = {"format": 2, "images": self.images, "source": self.source,
                "layers": [{"name": n, "dtype": la.dtype, "input_hw": list(la.input_hw),
                            "windows": la.windows, "zero_point": la.zero_point}
                           for n, la in self.layers.items()]}
        # Through a temporary file: an interrupted save must not leave a file that a resumed
        # study would trust.
        path = Path(path)
        part = path.with_name(path.name + ".part")
        with open(part, "wb") as fh:
            np.savez_compressed(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                                **arrays)
        part.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> "ActivationStats":
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                if meta.get("format") != 2:
                    raise ValueError("an older format")
                layers = {entry["name"]: LayerActivations(
                    data[f"taps_{i}"].astype(np.int64), int(entry["windows"]), entry["dtype"],
                    tuple(entry["input_hw"]), int(entry["zero_point"]))
                    for i, entry in enumerate(meta["layers"])}
        except Exception as exc:  # a damaged zip raises BadZipFile, an empty one EOFError
            raise AxonnxError(f"cannot read activation statistics {path}: {exc}; delete it "
                              "to measure them again") from None
        return cls(layers, int(meta["images"]), meta.get("source", ""))


def _stored_min(dtype) -> int:
    return -128 if np.dtype(dtype) == np.int8 else 0


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _session(model: onnx.ModelProto, threads: int | None = None):
    from axonnx._library import open_session

    return open_session(model, threads=threads)[0]


def _input_feeds(model: onnx.ModelProto, inputs, batch: int):
    """(feed dict, samples) per chunk of ``inputs``, each checked against the model's inputs
    before onnxruntime sees it."""
    from axonnx.data.calibration import fit_to_input, single_input
    from axonnx.model import model_inputs

    specs = {spec.name: spec for spec in model_inputs(model)}
    for k, item in enumerate(inputs):
        if not isinstance(item, dict):
            item = {single_input(model).name: item}
        if set(item) != set(specs):
            raise AxonnxError(f"calibration input {k} feeds {sorted(item)}; the model's inputs "
                              f"are {sorted(specs)}")
        feed = {name: fit_to_input(a, specs[name], f"calibration input {k} ({name})")
                for name, a in item.items()}
        n = len(next(iter(feed.values())))
        fixed = [spec.dims[0] for spec in specs.values() if spec.dims and spec.dims[0] is not None]
        step = max(fixed[0], batch // fixed[0] * fixed[0]) if fixed else batch
        for s in range(0, n, step):
            chunk = {name: a[s:s + step] for name, a in feed.items()}
            yield chunk, len(next(iter(chunk.values())))


def measure_activations(model, images: np.ndarray | None = None, *, inputs=None,
                        batch: int = 250, threads: int | None = None,
                        source: str = "") -> ActivationStats:
    """Histograms of every quantized conv layer's stored input values over ``images``
    (uint8 NCHW [n, 3, H, W], preprocessed as the model declares) or over ``inputs``: an
    iterable of ready model inputs (no preprocessing), each an array for a single-input
    model (a batch, or one sample without the batch axis) or a dict {input name: array},
    checked against the model's inputs (:func:`axonnx.data.calibration.fit_to_input`) and
    run ``batch`` samples at a time."""
    from axonnx.model import load_model, with_outputs
    from axonnx.passes import GraphIndex
    from axonnx.transform import prepared

    if (images is None) == (inputs is None):
        raise AxonnxError("give calibration images or inputs= (one of them)")
    model = load_model(model)
    work, layers, _ = prepared(model)
    if images is not None and len(images) == 0:
        raise AxonnxError("activation statistics need at least one calibration image")
    names = list(dict.fromkeys(layer.inputs[0] for layer in layers))
    session = _session(with_outputs(work, names), threads)
    if images is not None:
        prep = model_preprocess(model)
        feed = session.get_inputs()[0].name
        feeds = (({feed: prep.apply(images[s:s + batch])}, len(images[s:s + batch]))
                 for s in range(0, len(images), batch))
    else:
        feeds = _input_feeds(model, inputs, batch)
    index = GraphIndex(work.graph)
    taps: dict[str, np.ndarray] = {}
    info: dict[str, tuple] = {}
    seen = 0
    for x, n in feeds:
        try:
            values = dict(zip(names, session.run(names, x)))
        except Exception as exc:  # onnxruntime's own error types
            raise AxonnxError("onnxruntime cannot run the model on the calibration data: "
                              f"{_first_line(exc)}") from None
        seen += n
        for layer in layers:
            value = values[layer.inputs[0]]
            if value.dtype not in (np.int8, np.uint8) or value.ndim != 4:
                raise AxonnxError(f"conv input {layer.inputs[0]!r} is {value.dtype} of rank "
                                  f"{value.ndim}; expected a quantized NCHW tensor")
            counts, windows = _tap_histograms(layer, value)
            taps[layer.name] = taps.get(layer.name, 0) + counts
            hw = (int(value.shape[2]), int(value.shape[3]))
            prev = info.get(layer.name, (str(value.dtype), hw, 0))[2]
            info[layer.name] = (str(value.dtype), hw, prev + windows)
    if seen == 0:
        raise AxonnxError("activation statistics need at least one calibration sample")

    def zero_point(layer) -> int:
        if not layer.inputs[2]:
            return 0
        value = index.constant(layer.inputs[2])
        if value is None:
            raise AxonnxError(f"layer {layer.name!r}: the activation zero point is not constant")
        return int(np.asarray(value).reshape(-1)[0])

    return ActivationStats(
        {layer.name: LayerActivations(taps[layer.name], info[layer.name][2], info[layer.name][0],
                                      info[layer.name][1], zero_point(layer))
         for layer in layers}, seen, source)


def _geometry(layer, input_hw):
    from axonnx.ops.roupconv import resolve_geometry

    a = layer.attributes
    return resolve_geometry(layer.weight.shape, input_hw, auto_pad=a.get("auto_pad", "NOTSET"),
                            dilations=a.get("dilations"), group=a.get("group", 1),
                            kernel_shape=a.get("kernel_shape"), pads=a.get("pads"),
                            strides=a.get("strides"))


def _tap_histograms(layer, value: np.ndarray) -> tuple[np.ndarray, int]:
    """[C, kH, kW, 256] counts of the in-image values each kernel tap meets, and the number
    of windows (images x output pixels)."""
    n, c, h, w = value.shape
    geom = _geometry(layer, (h, w))
    ho, wo = geom.output_size(h, w)
    idx = value.astype(np.int64) - _stored_min(value.dtype)
    idx += (np.arange(c) * LEVELS)[None, :, None, None]
    kh, kw = geom.kernel
    out = np.zeros((c, kh, kw, LEVELS), np.int64)
    for i in range(kh):
        rows = np.arange(ho) * geom.strides[0] - geom.pads[0] + i * geom.dilations[0]
        rows = rows[(rows >= 0) & (rows < h)]
        for j in range(kw):
            cols = np.arange(wo) * geom.strides[1] - geom.pads[1] + j * geom.dilations[1]
            cols = cols[(cols >= 0) & (cols < w)]
            seen = idx[:, :, rows][:, :, :, cols]
            out[:, i, j] = np.bincount(seen.ravel(), minlength=c * LEVELS).reshape(c, LEVELS)
    return out, n * ho * wo


# ---- per-layer error tables ----------------------------------------------------------------

@dataclass
class _Tables:
    """For one (layer, multiplier, weight zero point): the product error's moments per input
    channel c and candidate stored-weight index j. ``D[x, j]`` is what the accumulator
    receives from activation index x and weight index j, ``u[x] = x - zx`` and ``wv[i]``
    the weight's value, so that the error is ``e = D(x, j) - u(x) wv[i]``."""

    d: np.ndarray  # [256 x, 256 j]
    u: np.ndarray  # [256 x]
    wv: np.ndarray  # [256]            weight value of index i / j
    p: np.ndarray  # [C, 256 x]        what channel c's multipliers see (taps, padding)
    tap_d: np.ndarray  # [C, kH, kW, j] E_tap[D]
    tap_u: np.ndarray  # [C, kH, kW]    E_tap[u]
    best: np.ndarray | None = None  # [C, 256 i] -> tuned index j

    def squared_error(self, c: np.ndarray, i: np.ndarray, j: np.ndarray, *,
                      centred: bool = False, chunk: int = 4096) -> np.ndarray:
        """E[e^2] (or, ``centred``, Var[e]) under the padded distribution, for index
        arrays c, i, j, formed term by term: a sum of non-negative numbers."""
        p = self.p
        out = np.empty(len(c), np.float64)
        for s in range(0, len(c), chunk):
            cc, ii, jj = c[s:s + chunk], i[s:s + chunk], j[s:s + chunk]
            e = self.d.T[jj] - self.u[None, :] * self.wv[ii][:, None]
            pc = p[cc]
            if centred:
                e = e - np.einsum("nx,nx->n", pc, e)[:, None]
            out[s:s + chunk] = np.einsum("nx,nx->n", pc, e * e)
        return out


class Recovery:
    """Weight tuning and/or bias correction, given activation statistics."""

    def __init__(self, stats: ActivationStats, *, tune_weights: bool = False,
                 correct_bias: bool = False):
        if not (tune_weights or correct_bias):
            raise AxonnxError("a Recovery needs weight tuning, bias correction or both")
        self.stats = stats
        self.tune_weights = tune_weights
        self.correct_bias = correct_bias
        self._cache: dict[tuple, _Tables] = {}
        self._products: dict[tuple, np.ndarray] = {}

    @property
    def label(self) -> str:
        return "+".join(n for n, on in (("tune", self.tune_weights), ("bias", self.correct_bias)) if on)

    def describe(self) -> dict[str, Any]:
        return {"weight_tuning": self.tune_weights, "bias_correction": self.correct_bias,
                "calibration_images": self.stats.images, "calibration_source": self.stats.source}

    # -- tables --
    def _layer_stats(self, layer) -> LayerActivations:
        la = self.stats.layers.get(layer.name)
        if la is None:
            raise AxonnxError(f"no activation statistics for layer {layer.name!r}; measure them "
                              "on this model (axonnx.recovery.measure_activations)")
        if (la.channels != layer.weight.shape[1] * int(layer.attributes.get("group", 1))
                or la.taps.shape[1:3] != layer.weight.shape[2:]):
            raise AxonnxError(f"activation statistics of {layer.name!r} have {la.channels} "
                              "channels, the layer does not: they belong to another model")
        return la

    def _product_table(self, mult, encoded: str, x_values: np.ndarray,
                       w_values: np.ndarray) -> np.ndarray:
        """M as [x index, w index] for these operand values (the rounded operand first)."""
        # Each operand's 256 values are consecutive, so the first one identifies them.
        key = (mult.name, encoded, int(x_values[0]), int(w_values[0]))
        if key not in self._products:
            x, w = np.meshgrid(x_values, w_values, indexing="ij")
            table = mult.multiply(x, w) if encoded == "weight" else mult.multiply(w, x)
            self._products[key] = table.astype(np.float64)
        return self._products[key]

    def tables(self, layer, mult, encoded: str = "weight", w_zero_point: int = 0) -> _Tables:
        """The error tables of ``mult`` in ``layer`` for output channels whose stored weight
        zero point is ``w_zero_point``."""
        key = (layer.name, mult.name, encoded, w_zero_point if mult.zero_point_free else None)
        if key in self._cache:
            return self._cache[key]
        la = self._layer_stats(layer)
        levels = np.arange(LEVELS, dtype=np.int64)
        if mult.zero_point_free:
            # Operand values relative to the zero points: the stored values, shifted.
            zx = la.zero_point - _stored_min(la.dtype)
            u = (levels - zx).astype(np.float64)
            wv = levels + _stored_min(layer.weight.dtype) - w_zero_point
            d = self._product_table(mult, encoded, levels - zx, wv)
        else:
            # Stored values in the table's domains; the zero-point terms cancel but zx's.
            x_signed, w_signed = ((mult.a_signed, mult.b_signed) if encoded == "weight"
                                  else (mult.b_signed, mult.a_signed))
            xv = levels + (-128 if x_signed else 0)
            wv = levels + (-128 if w_signed else 0)
            zx = la.zero_point - _stored_min(la.dtype) + (-128 if x_signed else 0)
            u = (xv - zx).astype(np.float64)
            d = self._product_table(mult, encoded, xv, wv) - zx * wv[None, :]
        wv = wv.astype(np.float64)
        p_tap = la.tap_distribution()
        t = _Tables(d=d, u=u, wv=wv, p=p_tap.mean(axis=(1, 2)), tap_d=p_tap @ d, tap_u=p_tap @ u)
        if self.tune_weights and not mult.is_exact:
            t.best = self._best(t, centred=self.tuning_objective == "variance")
        self._cache[key] = t
        return t

    @staticmethod
    def _positions(layer, assignment):
        """(multiplier, weight zero point, mask): the weight positions one set of tables
        covers. A LUT's tables do not depend on the weight zero point."""
        zw = np.broadcast_to(np.asarray(layer.w_zero_point).astype(np.int64).reshape(-1),
                             (layer.weight.shape[0],))
        for mi, mult in enumerate(assignment.multipliers):
            used = assignment.index == mi
            points = np.unique(zw) if mult.zero_point_free else zw[:1]
            for point in points:
                mask = used & (zw == point)[:, None, None, None] if mult.zero_point_free else used
                if mask.any():
                    yield mult, int(point), mask

    @property
    def tuning_objective(self) -> str:
        """What weight tuning minimises per product: the mean squared error, or, when bias
        correction follows (it removes each channel's mean error), the error variance."""
        return "variance" if self.correct_bias else "mse"

    @staticmethod
    def _best(t: _Tables, centred: bool) -> np.ndarray:
        """argmin_j E[e(x; i, j)^2] (``centred``: Var[e]) per channel c and original index i.
        The expanded form picks a candidate, the term-by-term form confirms it; i itself is
        kept on ties."""
        p = t.p
        sq_d = p @ (t.d * t.d)
        cross = (p * t.u[None, :]) @ t.d
        sq_u = p @ (t.u * t.u)
        wv = t.wv
        cost = (sq_d[:, None, :] - 2.0 * wv[None, :, None] * cross[:, None, :]
                + (wv[None, :, None] ** 2) * sq_u[:, None, None])  # [C, i, j]
        if centred:
            mean = (p @ t.d)[:, None, :] - (p @ t.u)[:, None, None] * wv[None, :, None]
            cost = cost - mean * mean
        j = np.argmin(cost, axis=2)
        channels = cost.shape[0]
        c = np.repeat(np.arange(channels), LEVELS)
        i = np.tile(np.arange(LEVELS), channels)
        new = t.squared_error(c, i, j.ravel(), centred=centred)
        old = t.squared_error(c, i, i, centred=centred)
        better = new < old - 1e-9 * (1.0 + old)
        return np.where(better, j.ravel(), i).reshape(channels, LEVELS)

    # -- per layer --
    def layer_weights(self, layer, assignment, encoded: str) -> np.ndarray:
        """The stored weights the rewritten layer uses (tuned where tuning is on)."""
        w = layer.weight
        if not self.tune_weights:
            return w
        idx = w.astype(np.int64) - _stored_min(w.dtype)
        out = idx.copy()
        cin = self._input_channel(layer)
        for mult, zw, mask in self._positions(layer, assignment):
            if not mult.is_exact:
                best = self.tables(layer, mult, encoded, zw).best
                out[mask] = best[cin[mask], idx[mask]]
        return (out + _stored_min(w.dtype)).astype(w.dtype)

    @staticmethod
    def _input_channel(layer) -> np.ndarray:
        """Weight-shaped: the input channel each weight position reads."""
        m, cpg, kh, kw = layer.weight.shape
        group = int(layer.attributes.get("group", 1))
        grp = np.arange(m) // (m // group)
        cin = grp[:, None] * cpg + np.arange(cpg)[None, :]
        return np.broadcast_to(cin[:, :, None, None], layer.weight.shape)

    def _terms(self, layer, assignment, weights: np.ndarray, encoded: str, *,
               skip_unchanged_exact: bool = True):
        """(tables, mask, input channel, original index, used index) per set of tables,
        the index arrays taken at the mask's positions; exact positions whose weight is
        unchanged err by nothing and are skipped unless asked for."""
        i = layer.weight.astype(np.int64) - _stored_min(layer.weight.dtype)
        j = weights.astype(np.int64) - _stored_min(weights.dtype)
        cin = self._input_channel(layer)
        for mult, zw, mask in self._positions(layer, assignment):
            if skip_unchanged_exact and mult.is_exact and np.array_equal(i[mask], j[mask]):
                continue
            yield self.tables(layer, mult, encoded, zw), mask, cin[mask], i[mask], j[mask]

    def expected_channel_error(self, layer, assignment, weights: np.ndarray,
                               encoded: str) -> np.ndarray:
        """[M]: each output channel's expected accumulated error with these stored weights."""
        err = np.zeros(layer.weight.shape, np.float64)
        for t, mask, c, i, j in self._terms(layer, assignment, weights, encoded):
            kh, kw = np.nonzero(mask)[2:]
            err[mask] = t.tap_d[c, kh, kw, j] - t.tap_u[c, kh, kw] * t.wv[i]
        return err.reshape(err.shape[0], -1).sum(axis=1)

    def channel_error_variance(self, layer, assignment, weights: np.ndarray,
                               encoded: str) -> np.ndarray:
        """[M]: each output channel's accumulated error variance with these stored weights,
        taking the products of a window as independent."""
        var = np.zeros(layer.weight.shape, np.float64)
        for t, mask, c, i, j in self._terms(layer, assignment, weights, encoded):
            var[mask] = t.squared_error(c, i, j, centred=True)
        return var.reshape(var.shape[0], -1).sum(axis=1)

    def layer_error(self, layer, assignment, weights: np.ndarray, encoded: str = "weight", *,
                    centred: bool | None = None) -> float:
        """Mean over the layer's weight positions of the expected squared product error
        (``centred``: its variance; default: what this Recovery's tuning minimises), under
        the same distribution as the tuning, padding taps included."""
        if centred is None:
            centred = self.tuning_objective == "variance"
        total = sum(float(t.squared_error(c, i, j, centred=centred).sum())
                    for t, _, c, i, j in self._terms(layer, assignment, weights, encoded,
                                                     skip_unchanged_exact=False))
        return total / layer.weight.size

    # -- the graph edit --
    def apply(self, model: onnx.ModelProto, layers, assignments: dict,
              encoded: str = "weight") -> dict[str, dict[str, Any]]:
        """Rewrite the ROUPConv nodes' weight and bias inputs in ``model`` (in place).
        Returns, per layer, what changed."""
        nodes = {n.name: n for n in model.graph.node}
        inits = {t.name: t for t in model.graph.initializer}
        report: dict[str, dict[str, Any]] = {}
        for layer in layers:
            assignment = assignments[layer.name]
            if all(m.is_exact for m in assignment.multipliers):
                continue
            node = nodes[layer.name]
            weights = self.layer_weights(layer, assignment, encoded)
            changed: dict[str, Any] = {}
            if not np.array_equal(weights, layer.weight):
                name = _fresh_name(inits, f"{layer.name}_tuned_weight")
                tensor = numpy_helper.from_array(weights, name)
                model.graph.initializer.append(tensor)
                inits[name] = tensor
                node.input[3] = name
                changed["weights_changed"] = int((weights != layer.weight).sum())
            if self.correct_bias:
                delta = np.rint(self.expected_channel_error(layer, assignment, weights, encoded))
                if np.any(delta):
                    old = (_constant(model, inits, node.input[8], layer.name).astype(np.int64)
                           if len(node.input) > 8 and node.input[8]
                           else np.zeros(layer.weight.shape[0], np.int64))
                    new = old - delta.astype(np.int64)
                    if np.abs(new).max() >= 2**31:
                        raise AxonnxError(f"layer {layer.name!r}: the corrected bias overflows int32")
                    name = _fresh_name(inits, f"{layer.name}_corrected_bias")
                    tensor = numpy_helper.from_array(new.astype(np.int32), name)
                    model.graph.initializer.append(tensor)
                    inits[name] = tensor
                    while len(node.input) < 9:
                        node.input.append("")
                    node.input[8] = name
                    changed["bias_shift_mean_abs"] = float(np.abs(delta).mean())
            if changed:
                report[layer.name] = changed
        _drop_unused_initializers(model)
        return report


def _constant(model, inits, name: str, layer: str) -> np.ndarray:
    if name in inits:
        return numpy_helper.to_array(inits[name])
    for node in model.graph.node:
        if node.op_type == "Constant" and name in node.output:
            return numpy_helper.to_array(node.attribute[0].t)
    raise AxonnxError(f"layer {layer!r}: input {name!r} is not a constant")


def _fresh_name(taken, base: str) -> str:
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    graph = model.graph
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)
