"""The installed package: the custom-op library sits inside it, exports one symbol and does not
link to onnxruntime; the package data and axonnx.passes come with it."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from axonnx import get_library_path


def tool_output(*command: str) -> str:
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed")
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def test_library_is_inside_the_package():
    path = Path(get_library_path())
    assert path.is_file()
    assert path.parent.name == "lib" and path.parent.parent == Path(str(resources.files("axonnx")))


def test_library_exports_register_custom_ops_only():
    lines = tool_output("nm", "-D", "--defined-only", get_library_path()).splitlines()
    assert [line.split()[-1] for line in lines if line.strip()] == ["RegisterCustomOps"]


def test_library_does_not_link_onnxruntime():
    """onnxruntime hands the API to RegisterCustomOps: no libonnxruntime dependency."""
    dynamic = tool_output("readelf", "-d", get_library_path())
    needed = [line for line in dynamic.splitlines() if "(NEEDED)" in line]
    assert needed and not any("onnxruntime" in line for line in needed)


DATA_SUFFIXES = {".json", ".onnx", ".npz", ".md", ".csv"}


def test_package_data_is_installed():
    """Every data file git knows under axonnx/ and passes/ is in the installed package."""
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        pytest.skip("needs the git checkout the package was built from")
    listed = tool_output("git", "-C", str(repo), "ls-files", "--cached", "--others",
                         "--exclude-standard", "axonnx", "passes").splitlines()
    data = [Path(f) for f in listed if Path(f).suffix in DATA_SUFFIXES]
    package = Path(str(resources.files("axonnx")))
    missing = [str(f) for f in data
               if not (package / (f.relative_to("axonnx") if f.parts[0] == "axonnx" else f)).is_file()]
    assert not missing
    import axonnx.passes  # noqa: F401  (the top-level passes/ folder, shipped inside axonnx)
