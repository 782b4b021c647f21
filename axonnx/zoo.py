"""The model zoo: named, committed ONNX models (``zoo:resnet8`` and friends).

The files live in the repository's top-level ``zoo/`` folder, which the wheel ships as the
package folder ``axonnx/_zoo``. :func:`zoo_root` finds the installed copy through
``importlib.resources`` and falls back to the source checkout's ``zoo/``.

Each model folder has a ``card.json`` with the figures ``axonnx zoo`` shows (top-1 on the
full CIFAR-10 test set and on the packaged 1,000-image sample, checksums, ...), and a
``MODEL_CARD.md`` for people.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from axonnx.errors import AxonnxError

PREFIX = "zoo:"


@dataclass(frozen=True)
class ZooModel:
    name: str  # e.g. "zoo:resnet8"
    folder: str  # folder under zoo/
    file: str  # .onnx file in that folder
    format: str  # e.g. "int8 QOperator"
    description: str


MODELS: tuple[ZooModel, ...] = (
    ZooModel("zoo:resnet8", "resnet8", "resnet8_int8.onnx", "int8 QOperator",
             "ResNet-8 (MLPerf Tiny), CIFAR-10; QLinearConv, per-channel int8 weights, "
             "int8 activations"),
    ZooModel("zoo:resnet8-qdq", "resnet8", "resnet8_int8_qdq.onnx", "int8 QDQ",
             "ResNet-8 (MLPerf Tiny), CIFAR-10; the same quantization as QuantizeLinear/"
             "DequantizeLinear around float ops"),
    ZooModel("zoo:resnet8-fp32", "resnet8", "resnet8_fp32.onnx", "float32",
             "ResNet-8 (MLPerf Tiny), CIFAR-10; the trained float model"),
)
_BY_NAME = {m.name: m for m in MODELS}


def names() -> list[str]:
    return [m.name for m in MODELS]


def zoo_root() -> Path:
    """The folder holding the zoo: ``axonnx/_zoo`` when installed, else the checkout's ``zoo/``."""
    package = resources.files("axonnx")
    installed = package / "_zoo"
    if installed.is_dir():
        return Path(str(installed))
    checkout = Path(str(package)).parent / "zoo"
    if checkout.is_dir():
        return checkout
    raise AxonnxError(
        f"the model zoo is missing: neither {installed} nor {checkout} exists; reinstall axonnx"
    )


def get(name: str) -> ZooModel:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise AxonnxError(
            f"unknown zoo model {name!r}: known models are {', '.join(names())}"
        ) from None


def model_path(name: str) -> Path:
    entry = get(name)
    path = zoo_root() / entry.folder / entry.file
    if not path.is_file():
        raise AxonnxError(
            f"zoo model {name} has no file ({path} is missing); known models are "
            f"{', '.join(names())}: reinstall axonnx or run zoo/{entry.folder}/quantize.py"
        )
    return path


def resolve_model(spec: str | os.PathLike) -> Path:
    """A model path, or a zoo name such as ``zoo:resnet8``, as the path of an .onnx file."""
    text = os.fspath(spec)
    if text.startswith(PREFIX):
        return model_path(text)
    path = Path(text)
    if path.is_file():
        return path
    hint = f" (did you mean {PREFIX}{text}?)" if PREFIX + text in _BY_NAME else ""
    raise AxonnxError(
        f"no model file {text}{hint}: give an .onnx path or a zoo name "
        f"({', '.join(names())})"
    )


def card(name: str) -> dict[str, Any]:
    """The ``card.json`` entry for one zoo model (empty if the folder has no card)."""
    entry = get(name)
    path = zoo_root() / entry.folder / "card.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AxonnxError(f"damaged model card {path}: {exc}") from None
    return dict(data.get("models", {}).get(name, {}))


def list_models() -> list[dict[str, Any]]:
    """Every zoo model with its card figures, for ``axonnx zoo``."""
    rows = []
    for m in MODELS:
        path = zoo_root() / m.folder / m.file
        info = card(m.name)
        rows.append({
            "name": m.name,
            "format": m.format,
            "description": m.description,
            "path": str(path),
            "present": path.is_file(),
            "size_bytes": path.stat().st_size if path.is_file() else None,
            **{k: v for k, v in info.items() if k not in ("format", "description")},
        })
    return rows


QUANTIZATIONS = ("defaults", "uint8", "sym-int8")


def quantize_float(fp32: str | os.PathLike, out: str | os.PathLike, calibration, *,
                   fmt: str = "qdq", activations: str = "defaults") -> Path:
    """A float model quantized as users do, with onnxruntime's ``quantize_static`` and
    per-tensor int8 weights (its defaults): the models the issues of real users come from.

    ``activations``: ``defaults`` (the installed onnxruntime's default type, asymmetric:
    QUInt8 up to 1.2x, QInt8 in 1.32), ``uint8`` (asymmetric QUInt8) or ``sym-int8``
    (QInt8, ``ActivationSymmetric``). ``fmt``: ``qdq`` (the default) or ``qoperator``.
    ``calibration``: float32 model inputs [N, ...], fed in batches of 100. The float model's
    axonnx metadata (preprocessing, classes) is kept and the IR version set to 10."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    if activations not in QUANTIZATIONS or fmt not in ("qdq", "qoperator"):
        raise AxonnxError(f"quantize_float: activations must be one of {QUANTIZATIONS} and "
                          f"fmt qdq or qoperator, got {activations!r}, {fmt!r}")
    source = onnx.load(os.fspath(fp32))
    name = source.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{name: calibration[i:i + 100]}
                                 for i in range(0, len(calibration), 100)])

        def get_next(self):
            return next(self.batches, None)

    options: dict[str, Any] = {} if fmt == "qdq" else {"quant_format": QuantFormat.QOperator}
    if activations == "uint8":
        options["activation_type"] = QuantType.QUInt8
    elif activations == "sym-int8":
        options.update(activation_type=QuantType.QInt8,
                       extra_options={"ActivationSymmetric": True})
    quantize_static(os.fspath(fp32), os.fspath(out), Reader(), **options)
    model = onnx.load(os.fspath(out))
    model.ir_version = 10  # onnxruntime 1.31 loads IR <= 13; onnx 1.23 writes 14
    copied = {prop.key for prop in model.metadata_props}  # quantize_static may copy them
    for prop in source.metadata_props:
        if prop.key not in copied:  # a duplicate key fails onnx.checker
            model.metadata_props.add(key=prop.key, value=prop.value)
    onnx.save(model, os.fspath(out))
    return Path(out)
