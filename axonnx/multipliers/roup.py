"""The ROUP family: radix-4 Booth multipliers with perforation and asymmetric rounding.

Definitions (SPEC.md): B is Booth-encoded into digits ``d_j = -2 b[2j+1] + b[2j] + b[2j-1]``,
A is rounded half-up at bit r, ``round_r(A) = 2^r floor((A + 2^(r-1)) / 2^r)``, and
``ROUP(A, B) = sum_{j=P}^{N/2-1} round_{r_j}(A) d_j 4^j`` with ``r_j = max(0, R - 2j)``.

Inside a quantized convolution the operands are zero-point-free differences (SPEC.md), up
to N+1 bits signed. B then gets as many radix-4 digits as its range needs: one more, digit
N/2, whose rounding width is 0 (the asymmetric schedule's max(0, R - 2j) for every R <= N).
For B in the N-bit range that digit is 0, so the N-bit products are unchanged.
"""

from __future__ import annotations

import numpy as np

from axonnx.errors import AxonnxError
from axonnx.multipliers.base import Multiplier

MIN_BITS, MAX_BITS = 4, 16


def booth_digit(b: int, j: int) -> int:
    """Radix-4 digit j of the two's-complement integer b (golden, scalar)."""
    bit = lambda k: 0 if k < 0 else (b >> k) & 1  # noqa: E731  Python ints shift arithmetically
    return -2 * bit(2 * j + 1) + bit(2 * j) + bit(2 * j - 1)


def round_half_up(a: int, r: int) -> int:
    """round_r(a) of eq. (2), exact for negative a (golden, scalar)."""
    return a if r == 0 else ((a + (1 << (r - 1))) >> r) << r


def booth_digits(b: np.ndarray, bits: int) -> np.ndarray:
    """All radix-4 digits of b, shape ``b.shape + (bits // 2,)`` (vectorised)."""
    b = np.asarray(b, dtype=np.int64)
    j = np.arange(bits // 2)
    hi = (b[..., None] >> (2 * j + 1)) & 1
    mid = (b[..., None] >> (2 * j)) & 1
    lo = np.where(j > 0, (b[..., None] >> np.maximum(2 * j - 1, 0)) & 1, 0)
    return -2 * hi + mid + lo


def round_half_up_array(a: np.ndarray, r: int) -> np.ndarray:
    """round_r over an int array (vectorised; numpy's >> on int64 floors)."""
    a = np.asarray(a, dtype=np.int64)
    return a if r == 0 else ((a + (1 << (r - 1))) >> r) << r


def asymmetric_schedule(perforation: int, rounding: int, bits: int) -> tuple[int, ...]:
    """r_j = max(0, R - 2j) for the kept digits j = P .. N/2-1."""
    return tuple(max(0, rounding - 2 * j) for j in range(perforation, bits // 2))


class ROUP(Multiplier):
    """``ROUP(P,R)``, or ``ROUP(P; r_P/.../r_{N/2-1})`` with an explicit rounding vector."""

    def __init__(self, perforation: int = 0, rounding: int | None = 0, *,
                 widths: tuple[int, ...] | None = None, bits: int = 8):
        if not (MIN_BITS <= bits <= MAX_BITS) or bits % 2:
            raise AxonnxError(f"ROUP: N={bits} is not supported; use an even N from 4 to 16")
        if not 0 <= perforation < bits // 2:
            raise AxonnxError(
                f"ROUP: perforation P={perforation} must lie in [0, {bits // 2 - 1}] for N={bits}"
            )
        if widths is None:
            if rounding is None or rounding < 0:
                raise AxonnxError(f"ROUP: rounding R={rounding} must be >= 0")
            widths = asymmetric_schedule(perforation, rounding, bits)
        widths = tuple(int(r) for r in widths)
        if len(widths) != bits // 2 - perforation:
            raise AxonnxError(
                f"ROUP: the rounding vector needs {bits // 2 - perforation} widths "
                f"(r_{perforation}..r_{bits // 2 - 1}), got {len(widths)}"
            )
        if any(r < 0 or r > bits for r in widths):
            raise AxonnxError(f"ROUP: rounding widths must lie in [0, {bits}], got {widths}")
        self.bits = bits
        self.perforation = perforation
        self.widths = widths

    @property
    def rounding(self) -> int | None:
        """The R whose asymmetric schedule gives these widths, if any (smallest such R)."""
        if all(r == 0 for r in self.widths):
            return 0
        candidate = self.widths[0] + 2 * self.perforation
        if asymmetric_schedule(self.perforation, candidate, self.bits) == self.widths:
            return candidate
        return None

    @property
    def name(self) -> str:
        suffix = "" if self.bits == 8 else f";N={self.bits}"
        if self.rounding is not None:
            return f"ROUP({self.perforation},{self.rounding}{suffix})"
        vector = "/".join(str(r) for r in self.widths)
        return f"ROUP({self.perforation};r={vector}{suffix})"

    @property
    def is_exact(self) -> bool:
        return self.perforation == 0 and all(r == 0 for r in self.widths)

    def width_of_digit(self, j: int) -> int | None:
        """Rounding width used for partial product j, or None if it is perforated."""
        return None if j < self.perforation else self.widths[j - self.perforation]

    @property
    def kept_digits(self) -> tuple[tuple[int, int], ...]:
        """(j, r_j) of every kept partial product, the extra digit N/2 of an (N+1)-bit
        zero-point-free operand included (exact: r = 0)."""
        return tuple(enumerate(self.widths + (0,), start=self.perforation))

    def multiply_scalar(self, a: int, b: int) -> int:
        """The golden model: eq. (1) term by term on Python integers."""
        self._check_operands(a, b)
        return sum(round_half_up(int(a), r) * booth_digit(int(b), j) * 4**j
                   for j, r in self.kept_digits)

    def multiply(self, a, b) -> np.ndarray:
        a, b = self._check_operands(a, b)
        digits = booth_digits(b, self.bits + 2)
        out = np.zeros(np.broadcast_shapes(a.shape, b.shape), dtype=np.int64)
        for j, r in self.kept_digits:
            out += round_half_up_array(a, r) * digits[..., j] * (1 << (2 * j))
        return out


def roup_family(bits: int = 8, max_rounding: int | None = None) -> list[ROUP]:
    """Every distinct ROUP(P,R) for P in [0, N/2) and R in [0, N] (by canonical name)."""
    max_rounding = bits if max_rounding is None else max_rounding
    ROUP(0, 0, bits=bits)  # checks N: an empty family is no answer to --bits 0
    seen: dict[str, ROUP] = {}
    for p in range(bits // 2):
        for r in range(max_rounding + 1):
            m = ROUP(p, r, bits=bits)
            seen.setdefault(m.name, m)
    return list(seen.values())
