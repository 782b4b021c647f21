"""What each conv layer's multipliers see, measured once on calibration data: per input
channel and kernel tap, a 256-bin histogram of the stored activation values it meets
(padding, which holds the zero point, included)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from axonnx.data.preprocess import model_preprocess
from axonnx.errors import AxonnxError
from axonnx.passes import TRANSPOSED_CONV

LEVELS = 256  # 8-bit operands


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
    # What a tap's other windows meet: the padding, which holds the zero point (a conv), or
    # no multiplication at all (a transposed conv: an output pixel gets a tap's product only
    # from the input pixels that land on it).
    padding: bool = True

    @property
    def channels(self) -> int:
        return int(self.taps.shape[0])

    def tap_distribution(self) -> np.ndarray:
        """[C, kH, kW, 256] probabilities per window, padding included; without padding
        (a transposed conv) a tap's row sums to the share of windows it reaches."""
        p = self.taps.astype(np.float64)
        if self.padding:
            padding = self.windows - p.sum(axis=-1)
            p[..., self.zero_point - stored_min(self.dtype)] += padding
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
                            "windows": la.windows, "zero_point": la.zero_point,
                            "padding": la.padding}
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
                    tuple(entry["input_hw"]), int(entry["zero_point"]),
                    bool(entry.get("padding", True)))
                    for i, entry in enumerate(meta["layers"])}
        except Exception as exc:  # a damaged zip raises BadZipFile, an empty one EOFError
            raise AxonnxError(f"cannot read activation statistics {path}: {exc}; delete it "
                              "to measure them again") from None
        return cls(layers, int(meta["images"]), meta.get("source", ""))


def stored_min(dtype) -> int:
    return -128 if np.dtype(dtype) == np.int8 else 0


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def measure_activations(model, images: np.ndarray | None = None, *, inputs=None, data=None,
                        matmul: bool = False, batch: int = 64, threads: int | None = None,
                        source: str = "") -> ActivationStats:
    """Histograms of every quantized conv layer's stored input values (and, with
    ``matmul``, of every fully connected layer's) over the calibration data, in one pass of
    the data through the model with those tensors as extra outputs.

    The data is one of: ``data``, a :class:`~axonnx.data.source.Dataset` (or anything
    :func:`axonnx.data.load.as_dataset` takes); ``images``, uint8 NCHW [n, 3, H, W] fed
    through the model's declared preprocessing; ``inputs``, an iterable of ready model
    inputs (arrays for a single-input model, or ``{input name: array}`` dicts), checked
    against the model's inputs before onnxruntime sees them. Activation x activation
    products (attention) have no constant weight to tune or bias to correct: they get no
    statistics."""
    from axonnx.data.load import as_dataset, from_iterable
    from axonnx.evaluate import Runner
    from axonnx.model import load_model, with_outputs
    from axonnx.passes import GraphIndex
    from axonnx.plan import Plan
    from axonnx.transform import prepared, transform_model

    if sum(x is not None for x in (images, inputs, data)) != 1:
        raise AxonnxError("give the calibration data as one of data=, images= or inputs=")
    model = load_model(model)
    work, layers, _ = prepared(model, matmul)
    layers = [layer for layer in layers if layer.weight is not None]
    if images is not None:
        from axonnx.data.load import single_input
        from axonnx.data.source import Dataset

        if len(images) == 0:
            raise AxonnxError("activation statistics need at least one calibration image")
        dataset = Dataset({single_input(model).name: np.asarray(images)}, None,
                          source or "calibration images", model_preprocess(model))
    elif inputs is not None:
        dataset = from_iterable(inputs, model, source=source or "calibration inputs")
    else:
        dataset = as_dataset(data, model)
    source = source or dataset.source
    names = list(dict.fromkeys(layer.inputs[0] for layer in layers))
    # The exact-plan model, instrumented: its ROUPConv nodes read the quantized layer inputs
    # directly, so exposing them blocks no fusion (the QDQ model with them as outputs runs
    # its convs in float, 2-4x slower), and these are the values the approximated layers see.
    exact = transform_model(model, Plan(matmul=matmul), exact_layers="roup")
    runner = Runner(with_outputs(exact, names), threads, "the model on the calibration data",
                    outputs=names)
    index = GraphIndex(work.graph)
    taps: dict[str, np.ndarray] = {}
    info: dict[str, list] = {}
    for b in dataset.batches(runner.batch_size(batch)):
        try:
            values = runner.run(b.feeds)
        except AxonnxError as exc:
            raise AxonnxError(str(exc).replace("onnxruntime failed running the model on the "
                                               "calibration data",
                                               "onnxruntime cannot run the model on the "
                                               "calibration data")) from None
        for layer in layers:
            value = values[layer.inputs[0]]
            if value.dtype not in (np.int8, np.uint8):
                raise AxonnxError(f"layer input {layer.inputs[0]!r} is {value.dtype}; expected a "
                                  "quantized tensor")
            if layer.matmul is not None:
                counts, windows, hw = _column_histograms(value), value.size // value.shape[-1], (0, 0)
            else:
                if value.ndim != 4:
                    raise AxonnxError(f"conv input {layer.inputs[0]!r} has rank {value.ndim}; "
                                      "expected a quantized NCHW tensor")
                histograms = (_transposed_tap_histograms if layer.kind == TRANSPOSED_CONV
                              else _tap_histograms)
                counts, windows = histograms(layer, value)
                hw = (int(value.shape[2]), int(value.shape[3]))
            taps[layer.name] = taps.get(layer.name, 0) + counts
            prev = info.get(layer.name, [str(value.dtype), hw, 0])
            info[layer.name] = [str(value.dtype), hw, prev[2] + windows]
    if not taps and layers:
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
                                      tuple(info[layer.name][1]), zero_point(layer),
                                      padding=layer.kind != TRANSPOSED_CONV)
         for layer in layers}, len(dataset), source)


def _column_histograms(value: np.ndarray) -> np.ndarray:
    """[K, 1, 1, 256] counts of the values in each column of a product's A [..., M, K]."""
    k = value.shape[-1]
    idx = value.reshape(-1, k).astype(np.int64) - stored_min(value.dtype)
    idx += (np.arange(k) * LEVELS)[None, :]
    return np.bincount(idx.ravel(), minlength=k * LEVELS).reshape(k, 1, 1, LEVELS)


def _geometry(layer, input_hw):
    from axonnx.ops.roupconv import resolve_geometry

    a = layer.attributes
    return resolve_geometry(layer.weight.shape, input_hw, auto_pad=a.get("auto_pad", "NOTSET"),
                            dilations=a.get("dilations"), group=a.get("group", 1),
                            kernel_shape=a.get("kernel_shape"), pads=a.get("pads"),
                            strides=a.get("strides"))


def _transposed_tap_histograms(layer, value: np.ndarray) -> tuple[np.ndarray, int]:
    """[C, kH, kW, 256] counts of the input values each tap of a transposed conv multiplies
    (those that land inside the output: padding crops it), and the windows (images x output
    pixels). The weight is in conv layout: taps not flipped (``to_conv_layout``)."""
    from axonnx.ops.roupconvtranspose import resolve_transpose_geometry

    a = layer.attributes
    group = int(a.get("group", 1))
    n, c, h, w = value.shape
    m, c_g, kh, kw = layer.weight.shape  # conv layout; ConvTranspose's is [c_g * group, m / group, ...]
    geom = resolve_transpose_geometry(
        (c_g * group, m // group, kh, kw), (h, w), auto_pad=a.get("auto_pad", "NOTSET"),
        dilations=a.get("dilations"), group=group, kernel_shape=a.get("kernel_shape"),
        output_padding=a.get("output_padding"), output_shape=a.get("output_shape"),
        pads=a.get("pads"), strides=a.get("strides"))

    def landing(size: int, axis: int, tap: int) -> slice:
        """The input pixels i with 0 <= i * stride - pad + tap * dilation < out."""
        stride, shift = geom.strides[axis], tap * geom.dilations[axis] - geom.pad_begin[axis]
        first = max(0, -(shift // stride))  # ceil(-shift / stride)
        stop = min(size, (geom.out[axis] - 1 - shift) // stride + 1)
        return slice(first, max(first, stop))

    kh, kw = geom.kernel
    counts = np.zeros((c, kh, kw, LEVELS), np.int64)
    for i in range(kh):
        for j in range(kw):
            block = value[:, :, landing(h, 0, i), landing(w, 1, j)]
            counts[:, i, j] = _channel_histograms(np.ascontiguousarray(block), c, value.dtype)
    return counts, n * geom.out[0] * geom.out[1]


def _channel_histograms(block: np.ndarray, channels: int, dtype) -> np.ndarray:
    """[C, 256] counts of the values of ``block`` ([n, C, h, w]) per channel, bin = stored
    value - dtype minimum."""
    out = np.zeros((channels, LEVELS), np.int64)
    if block.size == 0:
        return out
    raw = block.view(np.uint8)  # bincount is fastest on bytes, one channel at a time
    for ch in range(channels):
        out[ch] = np.bincount(raw[:, ch].ravel(), minlength=LEVELS)
    if np.dtype(dtype) == np.int8:  # byte u holds x = u - 256 for u >= 128: bin x + 128
        out = np.roll(out, -128, axis=1)
    return out


def _tap_histograms(layer, value: np.ndarray) -> tuple[np.ndarray, int]:
    """[C, kH, kW, 256] counts of the in-image values each kernel tap meets, and the number
    of windows (images x output pixels).

    A tap meets the pixels of one stride phase (rows r0, r0 + s, ...) inside a rectangle of
    that phase's grid. So each phase is counted once, and each tap's count is its phase's
    minus the thin border strips (the padding side) it misses: about one pass over the
    tensor per layer instead of one per tap."""
    n, c, h, w = value.shape
    geom = _geometry(layer, (h, w))
    ho, wo = geom.output_size(h, w)
    kh, kw = geom.kernel
    (sh, sw), (dh, dw) = geom.strides, geom.dilations

    def span(offset: int, step: int, count: int, size: int) -> tuple[int, int, int]:
        """(phase, first, stop) in the phase grid of positions offset + step*k inside [0, size)."""
        positions = offset + step * np.arange(count)
        inside = positions[(positions >= 0) & (positions < size)]
        if inside.size == 0:
            return offset % step, 0, 0
        phase = int(inside[0]) % step
        return phase, (int(inside[0]) - phase) // step, (int(inside[-1]) - phase) // step + 1

    phases: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    out = np.zeros((c, kh, kw, LEVELS), np.int64)
    for i in range(kh):
        pr, r0, r1 = span(i * dh - geom.pads[0], sh, ho, h)
        for j in range(kw):
            pc, c0, c1 = span(j * dw - geom.pads[1], sw, wo, w)
            if r1 <= r0 or c1 <= c0:
                continue
            if (pr, pc) not in phases:
                grid = value[:, :, pr::sh, pc::sw]
                phases[(pr, pc)] = (grid, _channel_histograms(grid, c, value.dtype))
            grid, total = phases[(pr, pc)]
            gh, gw = grid.shape[2:]
            counts = total.copy()
            for rows in (slice(0, r0), slice(r1, gh)):  # whole rows outside the tap's range
                counts -= _channel_histograms(grid[:, :, rows], c, value.dtype)
            for cols in (slice(0, c0), slice(c1, gw)):  # the rest of the columns outside it
                counts -= _channel_histograms(grid[:, :, r0:r1, cols], c, value.dtype)
            out[:, i, j] = counts
    return out, n * ho * wo
