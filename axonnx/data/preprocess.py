"""A model's declared input preprocessing: the ``axonnx.preprocess`` metadata contract.

Evaluation, calibration and recovery all feed images through it, so it lives in the data
layer (see axonnx.evaluate for the contract's description).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import onnx

from axonnx.errors import AxonnxError

PREPROCESS_KEY = "axonnx.preprocess"
STANDARD_PREPROCESS = {"layout": "NCHW", "dtype": "float32", "range": "0-255",
                       "normalisation": "in graph"}
_HOW_TO_FIX = (
    f"add metadata_props {PREPROCESS_KEY} = "
    '\'{"layout":"NCHW","dtype":"float32","range":"0-255","normalisation":"in graph"}\' '
    "(see axonnx.evaluate)"
)


@dataclass(frozen=True)
class Preprocess:
    layout: str = "NCHW"
    dtype: str = "float32"
    range: str = "0-255"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def apply(self, images: np.ndarray) -> np.ndarray:
        """uint8 NCHW [n, 3, 32, 32] -> the model's input tensor."""
        x = images
        if self.dtype == "uint8":
            out = x
        else:
            out = x.astype(np.float32)
            if self.range == "0-1":
                out /= np.float32(255.0)
            if self.mean is not None:
                mean = np.asarray(self.mean, np.float32).reshape(1, 3, 1, 1)
                std = np.asarray(self.std, np.float32).reshape(1, 3, 1, 1)
                out = (out - mean) / std
        if self.layout == "NHWC":
            out = out.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(out)


def parse_preprocess(text: str, where: str = "model") -> Preprocess:
    """Check and parse an ``axonnx.preprocess`` JSON string."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AxonnxError(f"{where}: {PREPROCESS_KEY} is not valid JSON ({exc}); {_HOW_TO_FIX}") from None
    if not isinstance(spec, dict):
        raise AxonnxError(f"{where}: {PREPROCESS_KEY} must be a JSON object; {_HOW_TO_FIX}")

    def pick(key: str, allowed: tuple[str, ...]) -> str:
        value = spec.get(key, STANDARD_PREPROCESS[key])
        if value not in allowed:
            raise AxonnxError(
                f"{where}: {PREPROCESS_KEY} {key}={value!r} is not supported "
                f"(use one of {', '.join(allowed)})"
            )
        return value

    layout = pick("layout", ("NCHW", "NHWC"))
    dtype = pick("dtype", ("float32", "uint8"))
    value_range = pick("range", ("0-255", "0-1"))
    norm = spec.get("normalisation", spec.get("normalization", "in graph"))
    mean = std = None
    if isinstance(norm, dict):
        try:
            mean = tuple(float(v) for v in norm["mean"])
            std = tuple(float(v) for v in norm["std"])
        except (KeyError, TypeError, ValueError):
            mean = std = ()
        if len(mean) != 3 or len(std) != 3 or any(s == 0 for s in std):
            raise AxonnxError(
                f"{where}: {PREPROCESS_KEY} normalisation must be \"in graph\" or "
                '{"mean": [r, g, b], "std": [r, g, b]} with non-zero std'
            )
        if dtype != "float32":
            raise AxonnxError(f"{where}: {PREPROCESS_KEY} mean/std normalisation needs dtype float32")
    elif norm not in ("in graph", "none"):
        raise AxonnxError(
            f"{where}: {PREPROCESS_KEY} normalisation={norm!r} is not supported "
            '(use "in graph" or {"mean": [...], "std": [...]})'
        )
    if dtype == "uint8" and value_range != "0-255":
        raise AxonnxError(f"{where}: {PREPROCESS_KEY} dtype uint8 needs range 0-255")
    return Preprocess(layout, dtype, value_range, mean, std)


def model_preprocess(model: onnx.ModelProto) -> Preprocess:
    """The model's declared input preprocessing (the standard one when it declares none)."""
    meta = {p.key: p.value for p in model.metadata_props}
    if PREPROCESS_KEY in meta:
        return parse_preprocess(meta[PREPROCESS_KEY], "model")
    return Preprocess()
