"""What the reproduction study is: its settings (:class:`StudyConfig`, full and quick) and
the multipliers each experiment uses. ``axonnx.analysis.reproduce`` runs it and
``axonnx.analysis.report`` renders it; both read these definitions."""

from __future__ import annotations

from dataclasses import asdict, dataclass

EVO_MULTIPLIERS = ("mul8u_2AC", "mul8u_2HH", "mul8u_NGR", "mul8u_ZFB", "mul8u_7C1")
SENSITIVITY_MULTIPLIERS = ("ROUP_L", "ROUP_M", "ROUP_H")
RECOVERY_VARIANTS = ("tune", "bias", "tune+bias")
ENCODING_RECOVERIES = ("none", "bias", "tune+bias")


@dataclass
class StudyConfig:
    name: str
    eval_images: int | None  # None: the full official test set
    sensitivity_images: int | None
    subset: int  # search subset
    pop: int
    gens: int
    library: tuple[str, ...]
    approaches: tuple[tuple[str, int], ...]  # (approach, classes)
    # (encoded operand, recovery) of the explorations; the first is the primary setting,
    # also used for Fig. 3.
    variants: tuple[tuple[str, str], ...] = (("weight", "none"), ("weight", "tune+bias"))
    reeval: int = 12
    reeval_max_loss: float = 0.06  # re-score the front where it matters (<= 6 pp on the subset)
    evo_images: int | None = None  # None: the evaluation images
    recovery_plans: int = 4  # Pareto plans per run scored with each recovery variant
    calib: int = 512
    seed: int = 1
    floor_drop: float = 0.10  # explorations keep accuracy within this of the baseline

    @classmethod
    def full(cls) -> "StudyConfig":
        # Sized for about an hour and a half on 2 cores: every accuracy in the report is on
        # the 10,000 test images; the search scores a 1,000-image class-balanced subset.
        return cls(name="full", eval_images=None, sensitivity_images=None, subset=1000, pop=20,
                   gens=30, library=DEFAULT_LIBRARY,
                   approaches=(("llam", 1), ("flam", 3), ("klam-chan", 3), ("klam-row", 3),
                               ("klam-col", 3), ("klms", 1)),
                   variants=(("weight", "none"), ("weight", "tune+bias")),
                   reeval=16, recovery_plans=3)

    @classmethod
    def quick(cls) -> "StudyConfig":
        return cls(name="quick", eval_images=1000, sensitivity_images=500, subset=200, pop=12,
                   gens=4, library=DEFAULT_LIBRARY,
                   approaches=(("llam", 1), ("flam", 3), ("klam-chan", 3), ("klam-row", 3),
                               ("klam-col", 3), ("klms", 1)),
                   reeval=4, recovery_plans=1, calib=256, evo_images=200)

    def estimated_plans(self, layers: int) -> int:
        """Plans the study scores on a model with ``layers`` conv layers (roughly: the
        sensitivity curves and the searches)."""
        sens = 2 * len(SENSITIVITY_MULTIPLIERS) * layers + 2
        search = len(self.approaches) * len(self.variants) * self.pop * self.gens
        return sens + search

    def identity(self) -> dict:
        d = asdict(self)
        d["library"] = list(self.library)
        d["approaches"] = [list(a) for a in self.approaches]
        d["variants"] = [list(v) for v in self.variants]
        return d


# ROUP(0,0) first, then ROUPs on the error/energy front of the energy table (each saves
# more energy than the one before), and SKIP.
DEFAULT_LIBRARY = ("ROUP(0,0)", "ROUP_L", "ROUP_M", "ROUP(1,6)", "ROUP_H", "ROUP(2,7)",
                   "ROUP(2,8)", "ROUP(3,8)", "SKIP")
