"""What one multiplication costs with one multiplier: an :class:`EnergyEntry`."""

from __future__ import annotations

from dataclasses import dataclass

from axonnx.multipliers.operands import DEFAULT_FORMATS

EXACT = "ROUP(0,0)"
EXACT_LUT = "mul8u_1JFF"  # the exact circuit of the EvoApprox8b unsigned 8x8 library
# What a missing figure's error tells the user to do.
HOW_TO_ADD = ("characterize it (axonnx hw characterize --liberty LIB --verilog M.v --top NAME) "
              "or give a table with its energy (JSON/CSV: name, energy, unit, source)")


@dataclass(frozen=True)
class EnergyEntry:
    """Energy of one multiplication with a multiplier: absolute (pJ, when known) and relative
    to the exact multiplier of the same source."""

    name: str
    pj: float | None
    relative: float
    source: str
    formats: str = DEFAULT_FORMATS  # the operand formats this figure was measured for


SKIP = EnergyEntry("SKIP", 0.0, 0.0, "not performed: costs nothing")
