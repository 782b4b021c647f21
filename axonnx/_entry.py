"""The ``axonnx`` console script (and ``python -m axonnx``): what belongs to the process.

- Importing the command line takes a second or more (typer, rich, onnx): Ctrl-C in that
  time exits 130 with one line, as it does once a command runs, never with a
  KeyboardInterrupt traceback.
- SIGTERM unwinds like an exception (exit 143), so that temporary files and worker pools are
  cleaned up; its default action kills the process where it stands.
"""

from __future__ import annotations

import signal
import sys


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        from axonnx.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    cli_main()
