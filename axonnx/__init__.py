"""axonnx: approximate arithmetic in quantized DNNs, on ONNX."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"
__all__ = ["InferenceSession", "disable", "enable", "get_library_path", "__version__"]


def _alias_source_passes() -> None:
    """The wheel installs the top-level ``passes/`` folder as ``axonnx.passes``. In a
    source checkout (PYTHONPATH=repo) it is still beside this package: load it under the
    same name, so that code and tests import ``axonnx.passes`` in both cases."""
    here = Path(__file__).resolve().parent
    source = here.parent / "passes" / "__init__.py"
    if (here / "passes").is_dir() or not source.exists() or "axonnx.passes" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "axonnx.passes", source, submodule_search_locations=[str(source.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["axonnx.passes"] = module
    spec.loader.exec_module(module)
    globals()["passes"] = module


def __getattr__(name: str):
    # Lazy, so that importing axonnx (e.g. for the multipliers) never needs onnxruntime.
    if name in ("InferenceSession", "get_library_path", "enable", "disable"):
        from axonnx import _library

        return getattr(_library, name)
    raise AttributeError(f"module 'axonnx' has no attribute {name!r}")


_alias_source_passes()
