"""Table-driven 8x8 multipliers, e.g. the EvoApprox8b circuits used by ALWANN."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from axonnx.errors import AxonnxError
from axonnx.multipliers.base import Multiplier

TABLE_SIZE = 256


def lut_search_dirs() -> list[Path]:
    """Where ``LUT(name)`` looks for ``name.bin`` / ``name.npy``: ``$AXONNX_LUT_PATH``
    (colon-separated) then ``$AXONNX_DATA/evoapprox8u``."""
    dirs = [Path(p) for p in os.environ.get("AXONNX_LUT_PATH", "").split(os.pathsep) if p]
    if os.environ.get("AXONNX_DATA"):
        dirs.append(Path(os.environ["AXONNX_DATA"]) / "evoapprox8u")
    return dirs


class LUT(Multiplier):
    """A 256x256 product table. ``table[i, j]`` is the product of the i-th and j-th values
    of each operand's domain (for an unsigned operand value v, index v; for a signed one,
    index v + 128). It sees stored values, not zero-point-free ones (SPEC.md)."""

    zero_point_free = False

    def __init__(self, name: str, table: np.ndarray, *, a_signed: bool = False,
                 b_signed: bool = False, source: str = ""):
        table = np.asarray(table)
        if table.shape != (TABLE_SIZE, TABLE_SIZE):
            raise AxonnxError(
                f"LUT({name}): the table must be 256x256, got shape {table.shape}"
            )
        if not np.issubdtype(table.dtype, np.integer):
            raise AxonnxError(f"LUT({name}): the table must hold integers, got {table.dtype}")
        if not name or any(c in name for c in "(),;"):
            raise AxonnxError(f"LUT name {name!r} is empty or holds one of ( ) , ;")
        table = table.astype(np.int64)
        if np.abs(table).max() >= 2**31:
            raise AxonnxError(f"LUT({name}): products must fit int32")
        self.lut_name = name
        self.table = table
        self.a_signed = a_signed
        self.b_signed = b_signed
        self.source = source

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, name: str | None = None,
                  a_signed: bool = False, b_signed: bool = False) -> "LUT":
        """Load ``.bin`` (65536 little-endian uint16, entry [a*256+b], EvoApprox format)
        or ``.npy`` (a 256x256 integer array)."""
        path = Path(path)
        name = name or path.stem
        if not path.exists():
            raise AxonnxError(f"LUT file {path} does not exist")
        if path.suffix == ".npy":
            try:
                table = np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise AxonnxError(f"LUT file {path} is not a valid .npy array ({exc})") from None
        else:
            raw = path.read_bytes()
            if len(raw) != 2 * TABLE_SIZE * TABLE_SIZE:
                raise AxonnxError(
                    f"LUT file {path} has {len(raw)} bytes; an EvoApprox .bin table has "
                    f"{2 * TABLE_SIZE * TABLE_SIZE} (65536 little-endian uint16)"
                )
            table = np.frombuffer(raw, dtype="<u2").reshape(TABLE_SIZE, TABLE_SIZE)
        return cls(name, table, a_signed=a_signed, b_signed=b_signed, source=str(path))

    @classmethod
    def find(cls, name: str) -> "LUT":
        if Path(name).name != name or name in (".", ".."):  # LUT(../x) must not leave the path
            raise AxonnxError(f"LUT name {name!r} is a path; give the table's file name "
                              "without folders and put its folder in AXONNX_LUT_PATH")
        for directory in lut_search_dirs():
            for suffix in (".bin", ".npy"):
                candidate = directory / f"{name}{suffix}"
                if candidate.exists():
                    return cls.from_file(candidate, name=name)
        where = ", ".join(str(d) for d in lut_search_dirs()) or "nowhere yet"
        raise AxonnxError(
            f"unknown LUT multiplier {name!r}: no {name}.bin or {name}.npy in {where}; "
            "set AXONNX_DATA or AXONNX_LUT_PATH to the folder holding it"
        )

    @property
    def name(self) -> str:
        return f"LUT({self.lut_name})"

    @property
    def is_exact(self) -> bool:
        a_lo, _ = self.operand_range(self.a_signed)
        b_lo, _ = self.operand_range(self.b_signed)
        a = np.arange(TABLE_SIZE)[:, None] + a_lo
        b = np.arange(TABLE_SIZE)[None, :] + b_lo
        return bool(np.array_equal(self.table, a * b))

    def multiply(self, a, b) -> np.ndarray:
        a, b = self._check_operands(a, b)
        a_lo, _ = self.operand_range(self.a_signed)
        b_lo, _ = self.operand_range(self.b_signed)
        return self.table[a - a_lo, b - b_lo]

    @classmethod
    def exact(cls, *, a_signed: bool = False, b_signed: bool = False) -> "LUT":
        """The exact product as a table (handy for tests and as a LUT baseline)."""
        a = np.arange(TABLE_SIZE)[:, None] - (128 if a_signed else 0)
        b = np.arange(TABLE_SIZE)[None, :] - (128 if b_signed else 0)
        return cls("exact", a * b, a_signed=a_signed, b_signed=b_signed, source="a*b")
