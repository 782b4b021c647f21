"""Loading and saving models safely, and measuring their conv layers' output sizes."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
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


def model_files(path: str | os.PathLike) -> list[Path]:
    """A model file and the external-data files its tensors name: what writing over would
    destroy."""
    path = Path(path)
    files = [path]
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not loadable: load_model says why, elsewhere
        return files
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = {e.key: e.value for e in tensor.external_data}.get("location")
            if location:
                files.append(path.parent / location)
    return list(dict.fromkeys(files))


def protected_folders() -> list[Path]:
    """Folders no output may land in: the installed axonnx package (its code, sample data,
    energy table and zoo) and the zoo of a source checkout."""
    import axonnx

    folders = [Path(axonnx.__file__).resolve().parent]
    try:
        from axonnx.zoo import zoo_root

        folders.append(zoo_root().resolve())
    except AxonnxError:  # no zoo: nothing more to protect
        pass
    return list(dict.fromkeys(folders))


def refuse_installed_path(out: str | os.PathLike) -> None:
    """An output (file or folder) resolving into axonnx's installed files is an error."""
    out = Path(out)
    resolved = out.resolve()
    for folder in protected_folders():
        if resolved == folder or folder in resolved.parents:
            raise AxonnxError(f"the output {out} lies inside axonnx's installed files ({folder}); "
                              "choose a path outside them (axonnx never overwrites itself)")


def check_outputs(outputs: list, inputs: list = ()) -> None:
    """The one output-path guard, before anything is written: no output resolves (symlinks
    followed) into axonnx's installed files or onto an input, no two outputs are the same
    file, and every output's folder exists and is writable."""
    seen: dict[Path, Path] = {}
    protected = {Path(p).resolve() for p in inputs if p is not None}
    for out in outputs:
        if out is None:
            continue
        out = Path(out)
        resolved = out.resolve()
        refuse_installed_path(out)
        if resolved in protected:
            raise AxonnxError(f"the output {out} would overwrite an input; choose another path "
                              "(axonnx never overwrites its input)")
        if resolved in seen:
            raise AxonnxError(f"{seen[resolved]} and {out} are the same file; give each output "
                              "its own path")
        seen[resolved] = out
        folder = out.parent if str(out.parent) else Path(".")
        if not folder.is_dir():
            raise AxonnxError(f"cannot write {out}: folder {folder} does not exist; create it "
                              "or choose another path")
        _check_writable(out, folder)


def _check_writable(out: Path, folder: Path) -> None:
    """A nameless probe file (root passes os.access everywhere, so only a real write tells),
    so that a later output's failure never leaves an earlier one written."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise AxonnxError(f"cannot write {out}: folder {folder} is not writable "
                          f"({exc.strerror}); choose another path") from None
    if out.is_dir():
        raise AxonnxError(f"cannot write {out}: it is a folder; give a file path")


def results_folder(path: str | os.PathLike) -> Path:
    """A command's ``--out`` folder, created with its parents; a file in the way, a folder
    inside axonnx's installed files, or one that cannot be made, is a one-line error."""
    path = Path(path)
    refuse_installed_path(path)
    if path.exists() and not path.is_dir():
        raise AxonnxError(f"--out {path} is a file; give a folder for the results (it is "
                          "created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AxonnxError(f"cannot create the results folder {path}: {exc.strerror}") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_model_valid(model: onnx.ModelProto, what: str = "the rewritten model", *,
                      loads: bool = True) -> None:
    """onnx's full check (tensor sizes, IR version, dangling names, shapes), then, with
    ``loads``, an onnxruntime load with the ROUPConv library: a model that fails either is
    an error, never a file written with exit status 0."""
    from axonnx import InferenceSession

    checkable, full = _with_io_shapes(model)
    try:
        onnx.checker.check_model(checkable, full_check=full)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise AxonnxError(f"{what} is not a valid ONNX model ({_one_line(exc)}); fix the input "
                          "model (onnx.checker.check_model(model, full_check=True) names the "
                          "problem)") from None
    if not loads:
        return
    try:
        InferenceSession(model.SerializeToString())
    except Exception as exc:  # onnxruntime's Fail, InvalidGraph, InvalidArgument, ...
        raise AxonnxError(f"{what} does not load in onnxruntime ({_one_line(exc)}); fix the "
                          "input model so that onnxruntime loads it") from None


def _with_io_shapes(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """onnx.checker demands a shape on every graph input and output, while the IR allows
    none (unknown rank) and onnxruntime loads such models: a copy gets the shapes inference
    finds, else an empty one, so that the check judges everything else. With an input of
    unknown rank the strict shape inference of the full check would judge that empty shape,
    so the check is then the structural one. Returns the model to check and whether the
    full check applies."""
    def shapeless(values):
        return [v for v in values
                if v.type.HasField("tensor_type") and not v.type.tensor_type.HasField("shape")]

    if not shapeless(list(model.graph.input) + list(model.graph.output)):
        return model, True
    try:
        copy = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - the check itself then says what is wrong
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
    full = not shapeless(copy.graph.input)
    for value in shapeless(list(copy.graph.input) + list(copy.graph.output)):
        value.type.tensor_type.shape.SetInParent()
    return copy, full


def _one_line(exc: Exception) -> str:
    """The message on one line (onnxruntime's span several, after a C++ signature)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else "..." + text[-300:]


def save_model_atomic(model: onnx.ModelProto, path: str | os.PathLike,
                      *, protect: list[Path] = ()) -> Path:
    """Write ``model`` to ``path`` through a temporary file in the same folder and a rename,
    so a reader never sees half a model. Refuses to overwrite any path in ``protect``."""
    path = Path(path)
    check_outputs([path], protect)
    check_model_valid(model)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise AxonnxError(f"cannot write {path}: {exc.strerror}; choose a writable -o path") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(model.SerializeToString())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an output honours the umask
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise AxonnxError(f"cannot write {path}: {exc.strerror}; choose a writable -o path") from None
    return path


@dataclass(frozen=True)
class ModelInput:
    """One graph input: its name, its dims (None where symbolic; ``dims`` is None when the
    model declares no shape) and its numpy element type."""

    name: str
    dims: tuple[int | None, ...] | None
    dtype: np.dtype

    @property
    def dynamic(self) -> bool:
        return self.dims is None or any(d is None for d in self.dims)

    def describe(self) -> str:
        shape = "of unknown shape" if self.dims is None else (
            "[" + ", ".join("?" if d is None else str(d) for d in self.dims) + "]")
        return f"{self.dtype} {shape}"


def model_inputs(model: onnx.ModelProto) -> list[ModelInput]:
    """The graph inputs a caller feeds (initializers excluded)."""
    initializers = {t.name for t in model.graph.initializer}
    out = []
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        ttype = inp.type.tensor_type
        dims = None
        if ttype.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                         for d in ttype.shape.dim)
        out.append(ModelInput(inp.name, dims, np.dtype(helper.tensor_dtype_to_np_dtype(ttype.elem_type))))
    return out


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``"1,3,224,224"`` (or ``1x3x224x224``) -> (1, 3, 224, 224)."""
    parts = [p.strip() for p in str(text).replace("x", ",").replace("X", ",").split(",")]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise AxonnxError(f"--input-shape {text!r} is not a shape; give positive sizes such as "
                          "1,3,224,224")
    return dims


def example_shape(inp: ModelInput) -> str:
    """An --input-shape for ``inp`` to suggest: its fixed dims, 1 for a dynamic batch, 224
    for the dynamic spatial dims of an image ([N, C, H, W]) and 128 for any other (a
    sequence)."""
    if inp.dims is None:
        return "1,3,224,224"
    image = len(inp.dims) == 4
    return ",".join(str(d) if d is not None else "1" if i == 0 else "224" if image else "128"
                    for i, d in enumerate(inp.dims))


def concrete_inputs(model: onnx.ModelProto, batch: int = 1,
                    input_shape: str | tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """Zero-filled inputs: a symbolic leading (batch) dim becomes ``batch``; any other
    symbolic dim must be given by ``input_shape`` (the full shape of a single-input model,
    e.g. ``"1,3,224,224"``), else it is an error that says so."""
    inputs = model_inputs(model)
    if input_shape is not None:
        inp, given = _given_shape(inputs, input_shape)
        return {inp.name: np.zeros(given, dtype=inp.dtype)}
    feeds = {}
    for inp in inputs:
        if inp.dims is None or any(d is None for d in inp.dims[1:]):
            raise AxonnxError(f"input {inp.name!r} has a dynamic shape ({inp.describe()}); "
                              "axonnx needs fixed sizes to count multiplications: pass "
                              f"--input-shape, e.g. --input-shape {example_shape(inp)} "
                              "(input_shape= in Python)")
        dims = [batch if d is None else d for d in inp.dims]
        feeds[inp.name] = np.zeros(dims, dtype=inp.dtype)
    return feeds


def _given_shape(inputs: list[ModelInput], input_shape) -> tuple[ModelInput, tuple[int, ...]]:
    """The single input ``input_shape`` sets, and the shape, checked against its fixed dims."""
    given = parse_input_shape(input_shape) if isinstance(input_shape, str) else tuple(input_shape)
    if len(inputs) != 1:
        raise AxonnxError(f"--input-shape sets the shape of a single-input model; this one "
                          f"has {len(inputs)} inputs ({', '.join(i.name for i in inputs)})")
    declared = inputs[0].dims
    if declared is not None and (len(declared) != len(given) or any(
            d is not None and d != g for d, g in zip(declared, given))):
        raise AxonnxError(f"--input-shape {','.join(map(str, given))} does not fit input "
                          f"{inputs[0].name!r} {inputs[0].describe()}; keep its fixed sizes")
    return inputs[0], given


def fix_input_shape(model: onnx.ModelProto, input_shape) -> None:
    """Fix the dims of a single-input model's input to ``input_shape``, in place, so that
    shape inference gives static shapes downstream (e.g. to attention's products). Stale
    value_info (symbolic dims) is dropped; shape inference recomputes it."""
    inp, given = _given_shape(model_inputs(model), input_shape)
    graph_input = next(i for i in model.graph.input if i.name == inp.name)
    shape = graph_input.type.tensor_type.shape
    del shape.dim[:]
    for d in given:
        shape.dim.add().dim_value = d
    del model.graph.value_info[:]


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also returns the intermediate tensors ``names``."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    for name in dict.fromkeys(names):
        if name not in present:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    return probe


def tensor_shapes(model: onnx.ModelProto, names: list[str],
                  input_shape: str | tuple[int, ...] | None = None) -> dict[str, tuple[int, ...]]:
    """Shapes of intermediate tensors, measured by running the model once on zeros
    (robust where ONNX shape inference stops, e.g. at com.microsoft ops); ``input_shape``
    as :func:`concrete_inputs` takes it."""
    from axonnx._library import open_session

    session, _ = open_session(with_outputs(model, names), optimize=False)
    feeds = concrete_inputs(model, input_shape=input_shape)
    try:
        values = session.run(names, feeds)
    except Exception as exc:  # onnxruntime's own error types: a shape the graph cannot take
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        shape = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
        raise AxonnxError(f"the model cannot run on input {shape}"
                          f"{' (--input-shape)' if input_shape is not None else ''}: {message[:200]}; "
                          "give a shape the model accepts (e.g. sizes divisible by its total "
                          "stride)") from None
    return {n: tuple(v.shape) for n, v in zip(names, values)}
