"""What every multiplier is: a name, an operand domain and an exact-integer ``multiply``."""

from __future__ import annotations

import numpy as np

from axonnx.errors import AxonnxError


class Multiplier:
    """An N-bit approximate multiplier.

    ``a`` is the operand that a ROUP multiplier rounds, ``b`` the one it radix-4 encodes.
    ``multiply(a, b)`` takes integer arrays in the multiplier's operand domain and returns
    the exact int64 products the circuit would produce.

    Inside a quantized convolution (SPEC.md) a ``zero_point_free`` multiplier (ROUP, SKIP)
    sees ``a = x - zx`` and ``b = w - zw``, which span up to N+1 bits signed: it accepts
    operands in ``[-2^N, 2^N - 1]`` (the hardware's (N+1)-bit operand ports). A table multiplier (LUT) sees stored values in its
    N-bit domain, and the accumulator gets exact zero-point corrections.
    """

    bits: int = 8
    a_signed: bool = True
    b_signed: bool = True
    zero_point_free: bool = True

    @property
    def name(self) -> str:  # canonical name, parseable by axonnx.multipliers.parse
        raise NotImplementedError

    @property
    def is_exact(self) -> bool:
        return False

    def multiply(self, a, b) -> np.ndarray:
        raise NotImplementedError

    def operand_range(self, signed: bool) -> tuple[int, int]:
        if signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1

    def accepted_range(self, signed: bool) -> tuple[int, int]:
        """The operand values ``multiply`` takes: the N-bit domain, or for a
        ``zero_point_free`` multiplier the (N+1)-bit signed range, which holds every
        difference of two N-bit values."""
        if self.zero_point_free:
            return -(1 << self.bits), (1 << self.bits) - 1
        return self.operand_range(signed)

    def _check_operands(self, a, b) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        for label, values, signed in (("a", a, self.a_signed), ("b", b, self.b_signed)):
            lo, hi = self.accepted_range(signed)
            if values.size and (values.min() < lo or values.max() > hi):
                raise AxonnxError(
                    f"{self.name}: operand {label} outside its accepted "
                    f"range [{lo}, {hi}]"
                )
        return a, b

    def product_table(self) -> np.ndarray:
        """All products as a [2^N, 2^N] int64 table indexed by operand offset from the
        domain minimum (N <= 8 only)."""
        if self.bits > 8:
            raise AxonnxError(f"{self.name}: product tables are built for N <= 8 only")
        a_lo, a_hi = self.operand_range(self.a_signed)
        b_lo, b_hi = self.operand_range(self.b_signed)
        a, b = np.meshgrid(np.arange(a_lo, a_hi + 1), np.arange(b_lo, b_hi + 1), indexing="ij")
        return self.multiply(a, b)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def __eq__(self, other) -> bool:
        return isinstance(other, Multiplier) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class Skip(Multiplier):
    """A multiplication that is not performed: its product is 0."""

    def __init__(self, bits: int = 8):
        self.bits = bits

    @property
    def name(self) -> str:
        return "SKIP"

    def multiply(self, a, b) -> np.ndarray:
        a, b = self._check_operands(a, b)
        return np.zeros(np.broadcast_shapes(a.shape, b.shape), dtype=np.int64)
