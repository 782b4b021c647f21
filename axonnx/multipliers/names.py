"""Canonical multiplier names: parsing and the project's named strengths.

Grammar (SPEC.md):
    ROUP(P,R)            8-bit, asymmetric rounding r_j = max(0, R - 2j)
    ROUP(P,R;N=16)       other widths
    ROUP(P;r=4/2/0)      explicit rounding vector r_P .. r_{N/2-1} (may add ;N=..)
    SKIP                 the multiplication is not performed
    LUT(name)            a 256x256 table found on the LUT search path
    ROUP_L, ROUP_M, ROUP_H   aliases of the named strengths below
"""

from __future__ import annotations

import re
from functools import lru_cache

from axonnx.errors import AxonnxError
from axonnx.multipliers.base import Multiplier, Skip
from axonnx.multipliers.lut import LUT
from axonnx.multipliers.roup import ROUP

# The project's low / medium / high approximation strengths, chosen from the energy and
# error characterization in axonnx/multipliers/energy_table.json (Nangate45 typical, Yosys,
# uniform random operands; energy relative to the exact radix-4 ROUP(0,0)). Each is the
# configuration on the energy-vs-MRED Pareto front whose energy saving is nearest its target
# (`axonnx hw characterize` prints this suggestion): the paper's L and M save ~10% and ~20%
# with negligible accuracy loss, H is a strong approximation.
#   ROUP_L = ROUP(0,4): saves  9.1% energy (10.7% area); MRED 1.07%, NMED 0.039%, WCE 28
#   ROUP_M = ROUP(0,5): saves 18.1% energy (21.3% area); MRED 2.44%, NMED 0.10%,  WCE 82
#   ROUP_H = ROUP(2,6): saves 59.2% energy (59.8% area); MRED 15.5%, NMED 1.57%,  WCE 1072
# L and M only round (no perforation), so their errors stay small and unbiased (the mean error
# is -0.25 for every configuration, set by the uniform stream's mean, not by the rounding);
# ROUP(1,4), the previous M, is dominated: ROUP(1,0) is both cheaper and more accurate.
NAMED_STRENGTHS = {
    "ROUP_L": "ROUP(0,4)",
    "ROUP_M": "ROUP(0,5)",
    "ROUP_H": "ROUP(2,6)",
}

_ROUP_RE = re.compile(
    r"^ROUP\(\s*(?P<p>\d+)\s*(?:,\s*(?P<r>\d+)|;\s*r\s*=\s*(?P<vec>\d+(?:\s*/\s*\d+)*))"
    r"\s*(?:;\s*N\s*=\s*(?P<n>\d+))?\s*\)$"
)
_LUT_RE = re.compile(r"^LUT\(\s*(?P<name>[^(),;\s]+)\s*\)$")


def parse(name: str, luts: dict[str, LUT] | None = None) -> Multiplier:
    """Build the multiplier a canonical name (or alias) denotes.

    ``luts`` maps LUT names to already-loaded tables; other LUTs are looked up on disk.
    """
    text = name.strip()
    text = NAMED_STRENGTHS.get(text, text)
    if text.upper() == "SKIP":
        return Skip()
    if match := _ROUP_RE.match(text):
        bits = int(match["n"]) if match["n"] else 8
        p = int(match["p"])
        if match["vec"] is not None:
            widths = tuple(int(v) for v in match["vec"].split("/"))
            return ROUP(p, None, widths=widths, bits=bits)
        return ROUP(p, int(match["r"]), bits=bits)
    if match := _LUT_RE.match(text):
        lut_name = match["name"]
        if luts and lut_name in luts:
            return luts[lut_name]
        return _find_lut(lut_name)
    raise AxonnxError(
        f"unknown multiplier {name!r}: use ROUP(P,R), ROUP(P;r=a/b/..), SKIP, LUT(name) "
        f"or one of {', '.join(NAMED_STRENGTHS)}"
    )


@lru_cache(maxsize=64)
def _find_lut(name: str) -> LUT:
    return LUT.find(name)


def split_top_level(text: str) -> list[str]:
    """Split on the commas outside parentheses and double quotes (the quotes are dropped):
    multiplier names such as ROUP(1,4) hold commas of their own."""
    fields, current, depth, quoted = [], "", 0, False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            continue
        if not quoted:
            depth += (ch == "(") - (ch == ")")
            if ch == "," and depth <= 0:
                fields.append(current)
                current = ""
                continue
        current += ch
    fields.append(current)
    return fields


def split_names(text: str) -> list[str]:
    """Split a comma-separated list of names, keeping the commas inside parentheses."""
    names = [item.strip() for item in split_top_level(text)]
    if any(not n for n in names):
        raise AxonnxError(f"empty multiplier name in {text!r}")
    return names


def parse_list(text: str) -> list[Multiplier]:
    """Parse a comma-separated list of multiplier names (see :func:`split_names`)."""
    names = split_names(text)
    return [parse(n) for n in names]
