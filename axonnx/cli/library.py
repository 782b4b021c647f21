"""``axonnx library-path``: where the compiled custom-op library is, for other languages."""

from __future__ import annotations

from axonnx.cli._app import app, stdout


@app.command("library-path")
def library_path_command() -> None:
    """Print the path of the ROUPConv custom-op library (RegisterCustomOpsLibrary in C, C++, Java...)."""
    from axonnx import get_library_path

    stdout.print(get_library_path(), highlight=False, soft_wrap=True)
