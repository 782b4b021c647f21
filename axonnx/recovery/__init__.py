"""Accuracy recovery without retraining: weight tuning and bias correction.

Both work from the distribution of the stored activations each conv layer's multipliers
see, measured once on calibration images (:func:`measure_activations`: the model runs
with the conv input tensors as extra outputs; every input channel and kernel tap gets a
256-bin histogram of the values it meets, padding holding the zero point included).

Let a weight position hold the stored weight ``w`` and, after tuning, ``w'``, and let its
multiplier be ``M``. The exact conv receives ``(x - zx)(w - zw)``. A ROUP or SKIP position
receives ``M(x - zx, w' - zw)``: its operands are zero-point-free (SPEC.md). A LUT position
receives ``M(x, w') - zw x - zx w' + zx zw`` with its operands in the table's domain. The
difference, this position's **product error**, is then::

    e(x; w, w') = M(x - zx, w' - zw) - (x - zx)(w - zw)          (ROUP, SKIP)
    e(x; w, w') = M(x, w') - x w - zx (w' - w)                    (LUT)

Both are ``D[x, w'] - u(x) v(w)`` with ``u = x - zx`` and the weight's value ``v``
(``w - zw`` for ROUP, the table-domain ``w`` for a LUT), which is how the tables store them.

* **Weight tuning** (ALWANN's idea): for every stored weight value ``w`` of a layer and
  every multiplier used there, choose the stored value ``w'`` that minimises
  ``E_x[e(x; w, w')^2]`` over the layer's measured activation distribution (per input
  channel, padding taps holding ``zx`` included); with bias correction on, which removes
  the mean error, it minimises ``Var_x[e]`` instead. ``w' = w`` is a candidate and wins
  ties, so tuning never increases its objective (:meth:`Recovery.layer_error`). The
  tuned weights are written as a new weight initializer; the plan's assignment is
  computed from the original weights.
* **Bias correction**: each output channel's expected accumulated error
  ``sum_k E[e(x_k; w_k, w'_k)]`` (per input channel and kernel tap; a tap that falls in the
  padding sees ``zx``) is subtracted, rounded, from the int32 bias.

Exact positions are left alone by both. A :class:`Recovery` caches its per-layer,
per-multiplier tables, so a search can transform thousands of plans with it.
"""

from axonnx.recovery.correction import Recovery
from axonnx.recovery.modes import RECOVERY_MODES, canonical_recovery, recovery_flags
from axonnx.recovery.statistics import (
    LEVELS, ActivationStats, LayerActivations, measure_activations, stored_min,
)

__all__ = ["LEVELS", "RECOVERY_MODES", "ActivationStats", "LayerActivations", "Recovery",
           "canonical_recovery", "measure_activations", "recovery_flags", "stored_min"]
