"""The compiled custom-op library (``ROUPConv``, domain ``com.axonnx``) and a session helper.

onnxruntime loads the library itself (``SessionOptions.register_custom_ops_library``); Python
only needs to know where it is. It is installed inside the package, at
``axonnx/lib/libaxonnx_customops.so``.
"""

from __future__ import annotations

import os
from importlib import resources
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
    options.register_custom_ops_library(get_library_path())
    return options


def InferenceSession(  # noqa: N802  (mirrors onnxruntime.InferenceSession)
    model: str | os.PathLike | bytes | onnx.ModelProto,
    sess_options: ort.SessionOptions | None = None,
    providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
    **kwargs: Any,
) -> ort.InferenceSession:
    """``onnxruntime.InferenceSession`` that knows ROUPConv.

    ``model`` is a path, serialized bytes or an ``onnx.ModelProto``. ``sess_options`` is
    copied (see :func:`session_options`) and the library registered on the copy; providers
    default to the CPU. Everything else is passed to onnxruntime unchanged.
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
        sess_options=session_options(sess_options),
        providers=list(providers) if providers is not None else ["CPUExecutionProvider"],
        **kwargs,
    )
