"""The rule sets: which rules the survey tries at which anchor op types, and the
conv-like ops that are always refused, with their reasons."""

from __future__ import annotations

from .matmul_integer import MatMulIntegerRule
from .qdq_conv import QDQConvRule, QDQConvTransposeRule
from .qdq_matmul import QDQGemmRule, QDQMatMulRule
from .qgemm import QGemmRule
from .qlinear_matmul import QLinearMatMulRule
from .qlinearconv import QLinearConvRule
from .roupconv import ROUPConvRule, ROUPConvTransposeRule
from .roupmatmul import ROUPMatMulRule

RULES = (QLinearConvRule(), QDQConvRule(), ROUPConvRule(), QDQConvTransposeRule(),
         ROUPConvTransposeRule(), ROUPMatMulRule())
MATMUL_RULES = (QLinearMatMulRule(), QDQMatMulRule(), QGemmRule(), QDQGemmRule(),
                MatMulIntegerRule())
UNSUPPORTED_CONVS = {
    "QLinearConvTranspose": "QLinearConvTranspose (com.microsoft) is not rewritten: "
                            "onnxruntime's quantizer and CPU graph optimizer do not write it (a "
                            "QDQ ConvTranspose, which axonnx approximates, stays as it is); it "
                            "stays exact"}
UNSUPPORTED_CONVS["ConvInteger"] = (
    "ConvInteger gives int32 accumulators (dynamic quantization); ROUPConv requantizes to "
    "8 bits, so it stays exact")
