"""The ``axonnx`` console script. Importing the command line takes a second or more (typer,
rich, onnx): Ctrl-C in that time exits 130 with one line, as it does once a command runs,
never with a KeyboardInterrupt traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from axonnx.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    cli_main()
