"""Weight tuning and bias correction from activation statistics: the per-layer error
tables and what they give (see the package's docstring for the product error)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from axonnx.errors import AxonnxError
from axonnx.recovery.statistics import LEVELS, ActivationStats, LayerActivations, stored_min


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
            zx = la.zero_point - stored_min(la.dtype)
            u = (levels - zx).astype(np.float64)
            wv = levels + stored_min(layer.weight.dtype) - w_zero_point
            d = self._product_table(mult, encoded, levels - zx, wv)
        else:
            # Stored values in the table's domains; the zero-point terms cancel but zx's.
            x_signed, w_signed = ((mult.a_signed, mult.b_signed) if encoded == "weight"
                                  else (mult.b_signed, mult.a_signed))
            xv = levels + (-128 if x_signed else 0)
            wv = levels + (-128 if w_signed else 0)
            zx = la.zero_point - stored_min(la.dtype) + (-128 if x_signed else 0)
            u = (xv - zx).astype(np.float64)
            d = self._product_table(mult, encoded, xv, wv) - zx * wv[None, :]
        wv = wv.astype(np.float64)
        p_tap = la.tap_distribution()
        p = p_tap.mean(axis=(1, 2))
        if not la.padding:  # what a product sees: the taps' values, without the windows they miss
            p = p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-300)
        t = _Tables(d=d, u=u, wv=wv, p=p, tap_d=p_tap @ d, tap_u=p_tap @ u)
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
        idx = w.astype(np.int64) - stored_min(w.dtype)
        out = idx.copy()
        cin = self._input_channel(layer)
        for mult, zw, mask in self._positions(layer, assignment):
            if not mult.is_exact:
                best = self.tables(layer, mult, encoded, zw).best
                out[mask] = best[cin[mask], idx[mask]]
        return (out + stored_min(w.dtype)).astype(w.dtype)

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
        i = layer.weight.astype(np.int64) - stored_min(layer.weight.dtype)
        j = weights.astype(np.int64) - stored_min(weights.dtype)
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
        """Give the approximated layers' ROUPConv nodes in ``model`` their tuned weights and
        corrected biases (in place, through ``axonnx.passes.edit_constants``). Returns, per
        layer, what changed."""
        from axonnx.passes import ConstantEdit, edit_constants

        edits: dict[str, ConstantEdit] = {}
        report: dict[str, dict[str, Any]] = {}
        for layer in layers:
            assignment = assignments[layer.name]
            if assignment.is_exact:
                continue
            weights = self.layer_weights(layer, assignment, encoded)
            changed: dict[str, Any] = {}
            tuned = not np.array_equal(weights, layer.weight)
            if tuned:
                changed["weights_changed"] = int((weights != layer.weight).sum())
            delta = None
            if self.correct_bias:
                delta = np.rint(self.expected_channel_error(layer, assignment, weights, encoded))
                if np.any(delta):
                    changed["bias_shift_mean_abs"] = float(np.abs(delta).mean())
                else:
                    delta = None
            if changed:
                edits[layer.name] = ConstantEdit(weights if tuned else None,
                                                 None if delta is None else delta.astype(np.int64))
                report[layer.name] = changed
        edit_constants(model, edits)
        return report
