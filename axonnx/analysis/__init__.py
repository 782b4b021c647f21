"""Studies on top of plans: layer sensitivity, NSGA-II exploration, Pareto fronts and the
paper's reproduction (``axonnx sensitivity``, ``axonnx explore``, ``axonnx reproduce``)."""

from axonnx.pareto import dominates, pareto_indices, pareto_mask
from axonnx.analysis.space import SEARCH_APPROACHES, SearchSpace, parse_library

__all__ = ["SEARCH_APPROACHES", "SearchSpace", "dominates", "pareto_indices", "pareto_mask",
           "parse_library"]
