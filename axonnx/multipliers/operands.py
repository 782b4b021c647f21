"""Operand formats: the value ranges a ROUP multiplier sees inside a quantized convolution.

The multiplier sees zero-point-free operands ``a = x_q - zx`` (rounded) and ``b = w_q - zw``
(radix-4 encoded) (SPEC.md, "Operands inside a quantized convolution"). Their range depends
on the stored dtype and the zero points, so the hardware, and its energy, depend on it too:

* ``s8`` = [-128, 127]: int8 with zero point 0 (symmetric weights), or uint8 with zp 128;
* ``u8`` = [0, 255]: uint8 with zero point 0 (activations after ReLU), or int8 with zp -128;
* ``s9`` = [-256, 255]: anything else (e.g. uint8 with an asymmetric zero point).

A layer's pair is written ``rounded x encoded``, e.g. ``u8xs8``; ``s8xs8`` is the 8-bit
multiplier of the original characterization and the default everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from axonnx.errors import AxonnxError


@dataclass(frozen=True)
class OperandFormat:
    name: str
    lo: int
    hi: int

    @property
    def signed(self) -> bool:
        return self.lo < 0

    @property
    def bits(self) -> int:
        """Port width: the unsigned formats need no sign bit."""
        return int(self.hi).bit_length() + self.signed

    @property
    def booth_digits(self) -> int:
        """Radix-4 digits an encoded operand of this format needs: its two's-complement
        width (one more bit when unsigned) rounded up to even, halved."""
        return (self.bits + (not self.signed) + 1) // 2

    def values(self) -> np.ndarray:
        return np.arange(self.lo, self.hi + 1, dtype=np.int64)

    def describe(self) -> str:
        return f"{self.name} [{self.lo}, {self.hi}]"


# Smallest first: operand_format picks the first that covers the range.
FORMATS = {f.name: f for f in (OperandFormat("s8", -128, 127), OperandFormat("u8", 0, 255),
                               OperandFormat("s9", -256, 255))}
DEFAULT_FORMATS = "s8xs8"
_DTYPES = {"int8": (-128, 127), "uint8": (0, 255)}


def operand_format(dtype, zero_points) -> str:
    """The smallest format covering ``stored - zp`` over the dtype's range, for every
    (per-channel) zero point."""
    key = np.dtype(dtype).name
    if key not in _DTYPES:
        raise AxonnxError(f"operand dtype {key} is not a quantized 8-bit type (int8 or uint8)")
    zps = np.asarray(zero_points, dtype=np.int64).ravel()
    if zps.size == 0:
        zps = np.zeros(1, np.int64)
    lo, hi = _DTYPES[key]
    lo, hi = lo - int(zps.max()), hi - int(zps.min())
    for fmt in FORMATS.values():
        if fmt.lo <= lo and hi <= fmt.hi:
            return fmt.name
    raise AxonnxError(f"operand range [{lo}, {hi}] of {key} fits no operand format")  # unreachable for 8-bit


def formats_key(rounded: str, encoded: str) -> str:
    """The pair's name, rounded operand first: ``u8xs8``."""
    for f in (rounded, encoded):
        if f not in FORMATS:
            raise AxonnxError(f"unknown operand format {f!r}; use one of {', '.join(FORMATS)}")
    return f"{rounded}x{encoded}"


def format_pair(key: str) -> tuple[OperandFormat, OperandFormat]:
    """``"u8xs8"`` -> (rounded format, encoded format); a bad name is a one-line error."""
    parts = str(key).strip().lower().split("x")
    if len(parts) != 2 or not all(p in FORMATS for p in parts):
        valid = ", ".join(f"{a}x{b}" for a in FORMATS for b in FORMATS)
        raise AxonnxError(f"unknown operand formats {key!r}: write rounded x encoded, one of {valid}")
    return FORMATS[parts[0]], FORMATS[parts[1]]


def canonical_formats(key: str) -> str:
    """The canonical ``rounded x encoded`` key of a pair (checked): ``" U8xS8"`` -> ``u8xs8``."""
    fa, fb = format_pair(key)
    return f"{fa.name}x{fb.name}"


def parse_formats_list(text: str) -> list[str]:
    """``"s8xs8,u8xs8"`` -> canonical keys, each checked."""
    keys = [canonical_formats(k) for k in str(text).split(",") if k.strip()]
    if not keys:
        raise AxonnxError("no operand formats given (e.g. s8xs8,u8xs8)")
    return list(dict.fromkeys(keys))


def format_grid(key: str) -> tuple[np.ndarray, np.ndarray]:
    """Every (a, b) pair of a format pair, a-major (a product table's order)."""
    fa, fb = format_pair(key)
    a, b = np.meshgrid(fa.values(), fb.values(), indexing="ij")
    return a.ravel(), b.ravel()


def layer_operand_formats(x_dtype, x_zero_point, w_dtype, w_zero_point,
                          encoded_operand: str = "weight") -> str:
    """A conv layer's ``rounded x encoded`` pair: by default the activation is rounded and
    the weight encoded; ``encoded_operand="activation"`` swaps them."""
    x = operand_format(x_dtype, x_zero_point)
    w = operand_format(w_dtype, w_zero_point)
    return formats_key(w, x) if encoded_operand == "activation" else formats_key(x, w)

