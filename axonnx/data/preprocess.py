"""How images become a model's input: the ``axonnx.preprocess`` contract.

One :class:`Preprocess` describes it, from the model's metadata, from the command line
(``--preprocess``), or both (the command line wins key by key). Keys (docs/data.md is the
reference page):

* ``layout``: ``NCHW`` or ``NHWC``;
* ``dtype``: ``float32`` or ``uint8``;
* ``range``: ``0-255`` (raw pixel values) or ``0-1`` (divided by 255);
* ``normalisation``: ``in graph`` (nothing more to do) or ``{"mean": [...], "std": [...]}``
  (one value per channel, in the units of ``range``), applied as ``(x - mean) / std``;
  ``mean=``/``std=`` on the command line;
* ``channels``: ``RGB`` (default), ``BGR`` or ``L`` (gray);
* ``resize``: ``S`` (the shorter side to S, aspect kept) or ``HxW``;
* ``crop``: ``HxW`` (or ``S`` for a square), a centre crop after the resize.

Without ``resize``/``crop``, images are resized to the model's fixed input height and
width (a model with dynamic sizes then needs images of one size, or a ``resize``).

Evaluation, calibration and recovery all feed images through it, so it lives in the data
layer. Images are kept as uint8 [n, C, H, W] until a batch is fed, so a data set costs one
byte per pixel.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np
import onnx

from axonnx.errors import AxonnxError

PREPROCESS_KEY = "axonnx.preprocess"
STANDARD_PREPROCESS = {"layout": "NCHW", "dtype": "float32", "range": "0-255",
                       "normalisation": "in graph"}
_HOW_TO_FIX = (
    f"add metadata_props {PREPROCESS_KEY} = "
    '\'{"layout":"NCHW","dtype":"float32","range":"0-255","normalisation":"in graph"}\' '
    "(docs/data.md)"
)
_CHOICES = {"layout": ("NCHW", "NHWC"), "dtype": ("float32", "uint8"), "range": ("0-255", "0-1"),
            "channels": ("RGB", "BGR", "L")}


@dataclass(frozen=True)
class Preprocess:
    layout: str = "NCHW"
    dtype: str = "float32"
    range: str = "0-255"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channels: str = "RGB"
    resize: tuple[int, ...] | None = None  # (S,): shorter side; (H, W): exact
    crop: tuple[int, int] | None = None

    @property
    def channel_count(self) -> int:
        return 1 if self.channels == "L" else 3

    def apply(self, images: np.ndarray) -> np.ndarray:
        """uint8 NCHW images (RGB or gray, already at the model's size) -> the input tensor."""
        x = images
        if self.channels == "BGR":
            x = x[:, ::-1]
        if self.dtype == "uint8":
            out = x
        else:
            out = x.astype(np.float32)
            if self.range == "0-1":
                out /= np.float32(255.0)
            if self.mean is not None:
                if len(self.mean) != out.shape[1]:
                    raise AxonnxError(f"the preprocessing has {len(self.mean)} mean/std values "
                                      f"but the images have {out.shape[1]} channels; give one "
                                      "value per channel")
                mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
                std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
                out = (out - mean) / std
        if self.layout == "NHWC":
            out = out.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(out)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["normalisation"] = ("in graph" if self.mean is None
                              else {"mean": list(self.mean), "std": list(self.std)})
        for key in ("mean", "std"):
            d.pop(key)
        for key in ("resize", "crop"):
            if d[key] is not None:
                d[key] = "x".join(map(str, d[key]))
        return d


def _size(value, key: str, where: str, allow_short: bool) -> tuple[int, ...]:
    text = "x".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    try:
        dims = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        dims = ()
    if len(dims) == 1 and not allow_short:
        dims = dims * 2
    if len(dims) not in (1, 2) or any(d < 1 for d in dims):
        raise AxonnxError(f"{where}: {key}={text!r} is not a size; give S or HxW, e.g. 224x224")
    return dims


def _values(value, key: str, where: str) -> tuple[float, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).replace("/", ",").split(",")
    try:
        return tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise AxonnxError(f"{where}: {key}={value!r} is not a list of numbers; give e.g. "
                          f"{key}=0.485,0.456,0.406") from None


def _fields(spec: dict, where: str) -> dict:
    """Checked Preprocess fields from a metadata/CLI dict (only the keys it has)."""
    out: dict = {}
    for key, value in spec.items():
        key = {"normalization": "normalisation", "scale": "range"}.get(key, key)
        if key in _CHOICES:
            value = str(value).upper() if key != "range" else str(value)
            if key == "dtype":
                value = value.lower()
            if value not in _CHOICES[key]:
                raise AxonnxError(f"{where}: {key}={value!r} is not supported (use one of "
                                  f"{', '.join(_CHOICES[key])})")
            out[key] = value
        elif key == "normalisation":
            if isinstance(value, dict):
                try:
                    out["mean"] = _values(value["mean"], "mean", where)
                    out["std"] = _values(value["std"], "std", where)
                except KeyError:
                    raise AxonnxError(f'{where}: normalisation needs "mean" and "std"') from None
            elif value in ("in graph", "none"):
                out["mean"] = out["std"] = None
            else:
                raise AxonnxError(f"{where}: normalisation={value!r} is not supported (use "
                                  '"in graph" or {"mean": [...], "std": [...]})')
        elif key in ("mean", "std"):
            out[key] = _values(value, key, where)
        elif key == "resize":
            out[key] = _size(value, key, where, allow_short=True)
        elif key == "crop":
            out[key] = _size(value, key, where, allow_short=False)
        else:
            raise AxonnxError(f"{where}: unknown preprocessing key {key!r}; use layout, dtype, "
                              "range, mean, std, channels, resize or crop (docs/data.md)")
    return out


def _checked(prep: Preprocess, where: str) -> Preprocess:
    if (prep.mean is None) != (prep.std is None):
        raise AxonnxError(f"{where}: give both mean and std (one value per channel)")
    if prep.mean is not None:
        if len(prep.mean) != len(prep.std) or any(s == 0 for s in prep.std):
            raise AxonnxError(f"{where}: mean and std need one value each per channel, std "
                              "non-zero")
        if prep.dtype != "float32":
            raise AxonnxError(f"{where}: mean/std normalisation needs dtype float32")
    if prep.dtype == "uint8" and prep.range != "0-255":
        raise AxonnxError(f"{where}: dtype uint8 needs range 0-255")
    return prep


def parse_preprocess(text: str, where: str = "model", base: Preprocess | None = None) -> Preprocess:
    """Parse a JSON object or ``key=value`` pairs (separated by spaces or ``;``) over
    ``base`` (the defaults when None)."""
    text = str(text).strip()
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AxonnxError(f"{where}: {PREPROCESS_KEY} is not valid JSON ({exc}); "
                              f"{_HOW_TO_FIX}") from None
    elif "=" in text or not text:
        spec = {}
        for item in text.replace(";", " ").split():
            key, sep, value = item.partition("=")
            if not sep or not value:
                raise AxonnxError(f"{where}: {item!r} is not key=value (e.g. range=0-1)")
            spec[key.strip().lower()] = value.strip()
    else:
        raise AxonnxError(f"{where}: {text!r} is neither JSON nor key=value pairs; e.g. "
                          "'resize=256 crop=224 range=0-1 mean=0.485,0.456,0.406 "
                          "std=0.229,0.224,0.225'")
    if not isinstance(spec, dict):
        raise AxonnxError(f"{where}: {PREPROCESS_KEY} must be a JSON object; {_HOW_TO_FIX}")
    return _checked(replace(base or Preprocess(), **_fields(spec, where)), where)


def has_preprocess(model: onnx.ModelProto) -> bool:
    return any(p.key == PREPROCESS_KEY for p in model.metadata_props)


def model_preprocess(model: onnx.ModelProto, override: str | None = None) -> Preprocess:
    """The model's declared preprocessing (the standard one when it declares none), with
    the keys of ``override`` (``--preprocess``) replacing the model's."""
    meta = {p.key: p.value for p in model.metadata_props}
    prep = (parse_preprocess(meta[PREPROCESS_KEY], "model") if PREPROCESS_KEY in meta
            else Preprocess())
    if override:
        prep = parse_preprocess(override, "--preprocess", base=prep)
    return prep
