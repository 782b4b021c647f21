"""Graph passes that rewrite quantized 2-D convolutions into ``ROUPConv``.

Installed as ``axonnx.passes``. ``survey_convs`` finds the convolutions (QOperator, QDQ,
or already rewritten), ``rewrite_to_roupconv`` replaces them given per-layer
assignments; every other node is left alone.
"""

from .patterns import ConvLayer, GraphIndex, NoMatch, QDQConvRule, QLinearConvRule, ROUPConvRule
from .rewrite import ConvSurvey, name_unnamed_nodes, rewrite_to_roupconv, survey_convs

__all__ = [
    "ConvLayer", "ConvSurvey", "GraphIndex", "NoMatch", "QDQConvRule", "QLinearConvRule",
    "ROUPConvRule", "name_unnamed_nodes", "rewrite_to_roupconv", "survey_convs",
]
