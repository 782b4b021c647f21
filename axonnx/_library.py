"""The compiled custom-op library (``ROUPConv``, domain ``com.axonnx``) and a session helper.

onnxruntime loads the library itself (``SessionOptions.register_custom_ops_library``); Python
only needs to know where it is. It is installed inside the package, at
``axonnx/lib/libaxonnx_customops.so``.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import onnx
import onnxruntime as ort

from axonnx.errors import AxonnxError

LIBRARY_NAME = "libaxonnx_customops.so"

# Every SessionOptions property that can be copied from one instance to another.
_COPIED_OPTIONS = tuple(
    name for name, attr in vars(ort.SessionOptions).items()
    if isinstance(attr, property) and attr.fset is not None
)


def get_library_path() -> str:
    """The path of the installed custom-op library, for
    ``SessionOptions.register_custom_ops_library``."""
    library = resources.files("axonnx").joinpath("lib", LIBRARY_NAME)
    if not library.is_file():
        package = Path(__file__).resolve().parent
        if (package.parent / "pyproject.toml").is_file() and (package.parent / "customops").is_dir():
            # Python put the current folder (a checkout) ahead of the installed package.
            raise AxonnxError(
                f"axonnx was imported from the source tree {package.parent}, which holds no "
                "compiled custom-op library: run Python with -P (python -P, .venv/bin/python -P) "
                "or from another folder so that the installed package is imported; install it "
                "first with make setup (or pip install .)")
        raise AxonnxError(
            "the axonnx custom-op library is not built: reinstall with pip install . "
            f"(looked for {library})"
        )
    return os.fspath(library)  # a regular install: a real file on disk


def session_options(sess_options: ort.SessionOptions | None = None) -> ort.SessionOptions:
    """A new SessionOptions with the custom-op library registered, copying every property
    of ``sess_options`` (thread counts, optimisation level, ...). The caller's object is not
    changed. Session config entries (``add_session_config_entry``) cannot be read back from
    onnxruntime, so they are not copied: set them on the returned object."""
    options = ort.SessionOptions()
    if sess_options is not None:
        for name in _COPIED_OPTIONS:
            setattr(options, name, getattr(sess_options, name))
    return _registered(options)


def InferenceSession(  # noqa: N802  (mirrors onnxruntime.InferenceSession)
    model: str | os.PathLike | bytes | onnx.ModelProto,
    sess_options: ort.SessionOptions | None = None,
    providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
    **kwargs: Any,
) -> ort.InferenceSession:
    """``onnxruntime.InferenceSession`` that knows ROUPConv.

    ``model`` is a path, serialized bytes or an ``onnx.ModelProto``. The library is
    registered on ``sess_options`` itself (once, however many sessions share it), as
    :func:`enable` does: a copy would drop its config entries (onnxruntime cannot list them),
    and a dropped ``session.intra_op.allow_spinning=0`` made interleaved sessions spin against
    each other (a BERT-base layer ran 2.4x slower). Providers default to the CPU; everything
    else is passed to onnxruntime unchanged.
    """
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    elif isinstance(model, os.PathLike):
        model = os.fspath(model)
    elif not isinstance(model, (str, bytes)):
        raise AxonnxError(
            f"InferenceSession takes a path, bytes or an onnx.ModelProto, got {type(model).__name__}"
        )
    return ort.InferenceSession(
        model,
        sess_options=_registered(sess_options if sess_options is not None else ort.SessionOptions()),
        providers=list(providers) if providers is not None else ["CPUExecutionProvider"],
        **kwargs,
    )


def open_session(model: str | os.PathLike | bytes | onnx.ModelProto, *,
                 threads: int | None = None, optimize: bool = True,
                 what: str = "the model") -> tuple[ort.InferenceSession, str]:
    """The one way axonnx opens a CPU session: with the custom-op library registered when it
    is built (else plain onnxruntime, enough for a model without ROUPConv), ``threads``
    intra-op threads (default: onnxruntime's), warnings silenced, and onnxruntime's load
    errors as one-line AxonnxErrors naming ``what``. Returns the session and which kind."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    missing_library = None
    try:
        get_library_path()
        make, kind = InferenceSession, "axonnx.InferenceSession"
    except AxonnxError as exc:
        missing_library = str(exc)
        make, kind = ort.InferenceSession, "onnxruntime.InferenceSession"
        if isinstance(model, onnx.ModelProto):
            model = model.SerializeToString()
    try:
        return make(model, sess_options=options, providers=["CPUExecutionProvider"]), kind
    except AxonnxError:
        raise
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = f" ({missing_library})" if missing_library and ("ROUPConv" in message or "ROUPMatMul" in message) else ""
        raise AxonnxError(f"onnxruntime cannot load {what}: {message}{hint}") from None


_ENABLED_FLAG = "__axonnx_enabled__"
# Marks SessionOptions that enable() registered the library on: onnxruntime refuses a second
# registration of the domain when an application reuses its options for another session.
_REGISTERED_KEY = "axonnx.custom_ops_library"


def _registered(options: ort.SessionOptions) -> ort.SessionOptions:
    """``options`` itself with the library registered (once)."""
    try:
        options.get_session_config_entry(_REGISTERED_KEY)
        return options
    except RuntimeError:  # onnxruntime: no such entry yet
        pass
    options.register_custom_ops_library(get_library_path())
    options.add_session_config_entry(_REGISTERED_KEY, "1")
    return options


def enable() -> None:
    """Register the custom-op library in every ``onnxruntime.InferenceSession`` created from
    now on in this process, for applications that build their own sessions and take no
    SessionOptions. Idempotent; :func:`disable` undoes it.

    It wraps ``InferenceSession.__init__`` (so references taken before the call work too).
    The library is registered on the application's own SessionOptions object (once, however
    many sessions share it), so the session keeps every setting: config entries such as
    ``session.intra_op.allow_spinning``, threads, optimization level, initializers...
    (onnxruntime cannot copy config entries; a copy would drop them). An application that
    registers the library itself does not need enable()."""
    cls = ort.InferenceSession
    if getattr(cls.__init__, _ENABLED_FLAG, False):
        return
    original = cls.__init__

    def __init__(self, path_or_bytes, sess_options=None, *args, **kwargs):  # noqa: N807
        options = sess_options if sess_options is not None else ort.SessionOptions()
        original(self, path_or_bytes, _registered(options), *args, **kwargs)

    __init__.__wrapped__ = original
    __init__.__doc__ = original.__doc__
    setattr(__init__, _ENABLED_FLAG, True)
    cls.__init__ = __init__


def disable() -> None:
    """Undo :func:`enable`: sessions created from now on are plain onnxruntime ones."""
    cls = ort.InferenceSession
    if getattr(cls.__init__, _ENABLED_FLAG, False):
        cls.__init__ = cls.__init__.__wrapped__
