"""Graph passes that rewrite quantized 2-D convolutions (and, when asked, quantized
matrix products as 1x1 convolutions) into ``ROUPConv``.

Installed as ``axonnx.passes``. ``survey_convs`` finds the layers (QOperator, QDQ, or
already rewritten), ``rewrite_to_roupconv`` replaces them given per-layer assignments;
every other node is left alone.
"""

from .patterns import (
    ATTENTION, CONV, FULLY_CONNECTED_KIND, ConvLayer, GraphIndex, MatMulLowering, NoMatch,
    QDQConvRule, QDQGemmRule, QDQMatMulRule, QGemmRule, QLinearConvRule, QLinearMatMulRule,
    ROUPConvRule,
)
from .rewrite import ConvSurvey, name_unnamed_nodes, rewrite_to_roupconv, survey_convs

__all__ = [
    "ATTENTION", "CONV", "FULLY_CONNECTED_KIND", "MatMulLowering", "QDQGemmRule",
    "QDQMatMulRule", "QGemmRule", "QLinearMatMulRule", "ConvLayer", "ConvSurvey", "GraphIndex", "NoMatch", "QDQConvRule", "QLinearConvRule",
    "ROUPConvRule", "name_unnamed_nodes", "rewrite_to_roupconv", "survey_convs",
]
