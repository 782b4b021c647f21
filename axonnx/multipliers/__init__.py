"""The multiplier catalogue: ROUP, SKIP and table (LUT) multipliers, their canonical
names and their error metrics."""

from axonnx.multipliers.base import Multiplier, Skip
from axonnx.multipliers.lut import LUT
from axonnx.multipliers.metrics import ErrorMetrics, error_metrics
from axonnx.multipliers.names import NAMED_STRENGTHS, parse, parse_list
from axonnx.multipliers.roup import ROUP, booth_digits, round_half_up_array, roup_family

EXACT = ROUP(0, 0)

__all__ = [
    "EXACT", "LUT", "Multiplier", "NAMED_STRENGTHS", "ROUP", "Skip", "ErrorMetrics",
    "booth_digits", "error_metrics", "parse", "parse_list", "round_half_up_array",
    "roup_family",
]
