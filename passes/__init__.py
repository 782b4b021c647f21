"""Graph passes that rewrite quantized 2-D convolutions into ``ROUPConv`` (and, when asked,
quantized matrix products into ``ROUPMatMul``).

Installed as ``axonnx.passes``. ``survey_convs`` finds the layers (QOperator, QDQ, or
already rewritten), ``rewrite_to_roupconv`` replaces them given per-layer assignments;
every other node is left alone.

One rule per file, each with its ``_test.py`` beside it (STYLE.md): a rule's ``match``
returns a :class:`ConvLayer` or a :class:`NoMatch` with the reason it refused.
"""

from ._layer import (
    ATTENTION, CONV, FULLY_CONNECTED_KIND, REWRITTEN_FORMS, TRANSPOSED_CONV, ConvLayer, GraphIndex,
    MatMulOperands, NoMatch,
)
from .canonicalize import Canonicalized, canonicalize, fold_constants, quantize_linear
from .constants import ConstantEdit, edit_constants
from .qdq_conv import QDQConvRule, QDQConvTransposeRule
from .qdq_matmul import QDQGemmRule, QDQMatMulRule
from .qgemm import QGemmRule
from .qlinear_matmul import QLinearMatMulRule
from .qlinearconv import QLinearConvRule
from .rewrite import ConvSurvey, PassResult, name_unnamed_nodes, rewrite_to_roupconv, survey_convs
from .roupconv import ROUPConvRule, ROUPConvTransposeRule
from .roupmatmul import ROUPMatMulRule
from .uint8_activations import shift_int8_activations

__all__ = [
    "ATTENTION", "CONV", "TRANSPOSED_CONV", "QDQConvTransposeRule", "ROUPConvTransposeRule", "Canonicalized", "canonicalize", "fold_constants", "quantize_linear", "FULLY_CONNECTED_KIND", "ConstantEdit", "ConvLayer", "ConvSurvey",
    "GraphIndex", "MatMulOperands", "NoMatch", "REWRITTEN_FORMS", "PassResult", "QDQConvRule", "QDQGemmRule",
    "QDQMatMulRule", "QGemmRule", "QLinearConvRule", "QLinearMatMulRule", "ROUPConvRule",
    "ROUPMatMulRule",
    "edit_constants", "name_unnamed_nodes", "rewrite_to_roupconv", "shift_int8_activations",
    "survey_convs",
]
