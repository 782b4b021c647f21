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

    @property
    def channels(self) -> int:
        return int(self.taps.shape[0])

    def tap_distribution(self) -> np.ndarray:
        """[C, kH, kW, 256] probabilities, padding included."""
        p = self.taps.astype(np.float64)
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


def stored_min(dtype) -> int:
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
    idx = value.astype(np.int64) - stored_min(value.dtype)
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
