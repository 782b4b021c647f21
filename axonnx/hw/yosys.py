"""Driving Yosys: read Verilog, ``synth``, map with ``abc -liberty``, write a JSON netlist.

Yosys is an external program (Debian/Ubuntu: ``apt-get install -y yosys``); set
``AXONNX_YOSYS`` to use another binary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from axonnx.errors import AxonnxError
from axonnx.hw.liberty import plain_liberty

INSTALL_HINT = "install Yosys (Debian/Ubuntu: apt-get install -y yosys) or set AXONNX_YOSYS"


def find_yosys() -> str | None:
    candidate = os.environ.get("AXONNX_YOSYS") or shutil.which("yosys")
    return candidate if candidate and os.access(candidate, os.X_OK) else None


def require_yosys() -> str:
    exe = find_yosys()
    if exe is None:
        raise AxonnxError(f"Yosys is not installed: {INSTALL_HINT}")
    return exe


@lru_cache(maxsize=4)
def _version(exe: str) -> str:
    out = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or out.stderr.strip()


def yosys_version() -> str:
    return _version(require_yosys())


@dataclass
class Synthesis:
    top: str
    module: dict  # the top module of Yosys's JSON netlist
    stat: str  # Yosys's `stat` report
    version: str
    script: str

    @property
    def yosys_area(self) -> float | None:
        match = re.search(r"Chip area for (?:top )?module '\\?[^']*':\s*([0-9.eE+-]+)", self.stat)
        return float(match[1]) if match else None


def synthesize(verilog: str | os.PathLike, *, liberty: str | os.PathLike | None,
               top: str | None = None, text: bool = False, timeout: float = 600) -> Synthesis:
    """Synthesize Verilog (a file path, or source when ``text=True``) and map it onto the
    Liberty library (``liberty=None`` keeps Yosys's generic gates, for simulation only)."""
    exe = require_yosys()
    if isinstance(verilog, str) and "\n" in verilog and "module" in verilog:
        text = True  # source, not a path
    with tempfile.TemporaryDirectory(prefix="axonnx-yosys-") as tmp:
        if text:
            src = Path(tmp) / "design.v"
            src.write_text(str(verilog))
        else:
            src = Path(verilog)
            if not src.is_file():
                raise AxonnxError(f"Verilog file {verilog} does not exist")
        if top is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
            raise AxonnxError(f"{top!r} is not a Verilog module name")
        hierarchy = f"hierarchy -check -top {top}" if top else "hierarchy -check -auto-top"
        steps = [f"read_verilog -sv {src}", hierarchy, "synth -flatten"]
        if liberty is not None:
            lib = plain_liberty(liberty, tmp)
            steps += [f"dfflibmap -liberty {lib}", f"abc -liberty {lib}", "opt_clean -purge",
                      f"tee -q -o {tmp}/stat.txt stat -liberty {lib}"]
        else:
            steps += ["opt_clean -purge", f"tee -q -o {tmp}/stat.txt stat"]
        steps.append(f"write_json {tmp}/netlist.json")
        script = "; ".join(steps)
        try:
            run = subprocess.run([exe, "-q", "-p", script], capture_output=True, text=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AxonnxError(f"Yosys did not finish within {timeout:.0f} s") from None
        if run.returncode != 0:
            errors = [ln for ln in (run.stderr + run.stdout).splitlines() if "ERROR" in ln]
            detail = errors[0] if errors else (run.stderr or run.stdout).strip()[-300:]
            if "ABC output file" in detail:
                detail += (" (ABC could not map onto the library; a mappable library needs at "
                           "least an inverter, a buffer and a NAND or NOR gate)")
            raise AxonnxError(f"Yosys failed on {src.name}: {detail.strip()}")
        netlist = json.loads((Path(tmp) / "netlist.json").read_text())
        stat = (Path(tmp) / "stat.txt").read_text()
    modules = netlist.get("modules", {})
    tops = [name for name, m in modules.items() if int(m.get("attributes", {}).get("top", 0) or 0)]
    name = top or (tops[0] if tops else next(iter(modules), None))
    if name not in modules:
        raise AxonnxError(f"Yosys produced no module {name!r}; pick the top module with --top")
    version = _version(exe)
    return Synthesis(top=name, module=modules[name], stat=stat, version=version,
                     script=script.replace(str(tmp), "$TMP"))
