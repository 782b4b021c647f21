"""Energy of ``LUT(name)`` multipliers from the ``params.csv`` published next to the
tables (EvoApprox: power relative to that library's exact ``mul8u_1JFF``)."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np

from axonnx.energy.entry import EXACT_LUT, HOW_TO_ADD, EnergyEntry
from axonnx.errors import AxonnxError


@lru_cache(maxsize=16)
def _params(directory: str, mtime: float) -> dict[str, dict[str, str]]:
    with open(Path(directory) / "params.csv", newline="") as fh:
        return {row["name"].strip(): row for row in csv.DictReader(fh) if row.get("name")}


def _power(row: dict[str, str] | None) -> float | None:
    if row is None:
        return None
    try:
        value = float(row.get("power_mW") or row.get("power") or "nan")
    except ValueError:
        return None
    return value if np.isfinite(value) and value > 0 else None


def lut_entry(lut_name: str) -> EnergyEntry | None:
    from axonnx.multipliers.lut import lut_search_dirs

    if lut_name == "exact":
        return EnergyEntry(f"LUT({lut_name})", None, 1.0, "exact product table")
    for directory in lut_search_dirs():
        if not any((directory / f"{lut_name}{s}").exists() for s in (".bin", ".npy")):
            continue
        params_file = directory / "params.csv"
        if params_file.is_file():
            params = _params(str(directory), params_file.stat().st_mtime)
            if lut_name in params:
                power, ref = _power(params[lut_name]), _power(params.get(EXACT_LUT))
                if power is None:
                    raise AxonnxError(f"LUT({lut_name}): {params_file} publishes no power for it; {HOW_TO_ADD}")
                if ref is None:
                    raise AxonnxError(f"LUT({lut_name}): {params_file} has no power for the exact "
                                      f"{EXACT_LUT} to relate it to; {HOW_TO_ADD}")
                return EnergyEntry(f"LUT({lut_name})", None, power / ref,
                                   f"{params_file}: {power} mW / {ref} mW of {EXACT_LUT}")
        from axonnx.multipliers.names import parse

        if parse(f"LUT({lut_name})").is_exact:
            return EnergyEntry(f"LUT({lut_name})", None, 1.0, "exact product table")
        return None
    return None
