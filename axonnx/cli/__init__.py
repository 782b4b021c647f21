"""The ``axonnx`` command line. One module per command group; each command parses its
arguments, calls one library function and renders the result."""

from axonnx.cli._app import app, main
from axonnx.cli import multipliers as _multipliers  # noqa: F401  (registers commands)

__all__ = ["app", "main"]
