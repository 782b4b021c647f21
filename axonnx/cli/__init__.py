"""The ``axonnx`` command line. One module per command group; each command parses its
arguments, calls one library function and renders the result."""

from axonnx.cli._app import app, main
# Importing a command module registers its commands on the app.
from axonnx.cli import demo as _demo  # noqa: F401
from axonnx.cli import energy as _energy  # noqa: F401
from axonnx.cli import eval as _eval  # noqa: F401
from axonnx.cli import hw as _hw  # noqa: F401
from axonnx.cli import inspect as _inspect  # noqa: F401
from axonnx.cli import library as _library  # noqa: F401
from axonnx.cli import multipliers as _multipliers  # noqa: F401
from axonnx.cli import plan as _plan  # noqa: F401
from axonnx.cli import transform as _transform  # noqa: F401
from axonnx.cli import zoo as _zoo  # noqa: F401
from axonnx.cli import analysis as _analysis  # noqa: F401

__all__ = ["app", "main"]
