"""The rule sets: which rules the survey tries at which anchor op types, and the
conv-like ops that are always refused, with their reasons."""

from __future__ import annotations

from .matmul_integer import MatMulIntegerRule
from .qdq_conv import QDQConvRule
from .qdq_matmul import QDQGemmRule, QDQMatMulRule
from .qgemm import QGemmRule
from .qlinear_matmul import QLinearMatMulRule
from .qlinearconv import QLinearConvRule
from .roupconv import ROUPConvRule
from .roupmatmul import ROUPMatMulRule

RULES = (QLinearConvRule(), QDQConvRule(), ROUPConvRule(), ROUPMatMulRule())
MATMUL_RULES = (QLinearMatMulRule(), QDQMatMulRule(), QGemmRule(), QDQGemmRule(),
                MatMulIntegerRule())
UNSUPPORTED_CONVS = {
    op: f"{op} is not supported: ROUPConv computes a forward convolution, and a transposed "
        "one (each input pixel scattered over the output) has no ROUPConv form; it stays exact"
    for op in ("ConvTranspose", "QLinearConvTranspose")}
UNSUPPORTED_CONVS["ConvInteger"] = (
    "ConvInteger gives int32 accumulators (dynamic quantization); ROUPConv requantizes to "
    "8 bits, so it stays exact")
