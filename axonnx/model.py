"""Loading and saving models safely, and measuring their conv layers' output sizes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper

from axonnx.errors import AxonnxError


def resolve_model_path(spec: str | os.PathLike) -> Path:
    """A path, or a zoo name such as ``zoo:resnet8``."""
    if str(spec).startswith("zoo:"):
        from axonnx.zoo import resolve_model

        return Path(resolve_model(str(spec)))
    path = Path(spec)
    if not path.exists():
        raise AxonnxError(f"model {path} does not exist")
    if path.is_dir():
        raise AxonnxError(f"model {path} is a directory; give an .onnx file")
    return path


def load_model(spec: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(spec, onnx.ModelProto):
        return spec
    path = resolve_model_path(spec)
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise AxonnxError(f"{path} is not an ONNX model ({type(exc).__name__}); "
                          "give a .onnx file written by onnx or onnxruntime") from None
    if not model.graph.node:
        raise AxonnxError(f"{path} is not an ONNX model (its graph is empty)")
    return model


def save_model_atomic(model: onnx.ModelProto, path: str | os.PathLike,
                      *, protect: list[Path] = ()) -> Path:
    """Write ``model`` to ``path`` through a temporary file in the same folder and a rename,
    so a reader never sees half a model. Refuses to overwrite any path in ``protect``."""
    path = Path(path)
    for p in protect:
        if p is not None and path.resolve() == Path(p).resolve():
            raise AxonnxError(f"the output {path} is the input model; choose another -o path "
                              "(axonnx never overwrites its input)")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise AxonnxError(f"cannot write {path}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise AxonnxError(f"cannot write {path}: {exc.strerror}; choose a writable -o path") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(model.SerializeToString())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise AxonnxError(f"cannot write {path}: {exc.strerror}; choose a writable -o path") from None
    return path


def concrete_inputs(model: onnx.ModelProto, batch: int = 1) -> dict[str, np.ndarray]:
    """Zero-filled inputs: a symbolic leading (batch) dim becomes ``batch``; any other
    symbolic dim is an error."""
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        ttype = inp.type.tensor_type
        dims = []
        for axis, d in enumerate(ttype.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(d.dim_value)
            elif axis == 0:
                dims.append(batch)
            else:
                raise AxonnxError(f"input {inp.name!r} has a symbolic dimension {axis}; "
                                  "axonnx needs fixed spatial sizes to count multiplications")
        dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type)
        feeds[inp.name] = np.zeros(dims, dtype=dtype)
    return feeds


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also returns the intermediate tensors ``names``."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    for name in dict.fromkeys(names):
        if name not in present:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    return probe


def tensor_shapes(model: onnx.ModelProto, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Shapes of intermediate tensors, measured by running the model once on zeros
    (robust where ONNX shape inference stops, e.g. at com.microsoft ops)."""
    from axonnx._library import InferenceSession

    probe = with_outputs(model, names)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = InferenceSession(probe.SerializeToString(), sess_options=options)
    values = session.run(names, concrete_inputs(model))
    return {n: tuple(v.shape) for n, v in zip(names, values)}
