"""Multiplier energy of plans on one model: multiplications per layer and multiplier (each
weight position is used H_out x W_out times per image, H_in x W_in in a transposed conv, M
times in an [M, K] x [K, N] product; SKIP costs nothing), priced by
``axonnx.energy``, relative to the all-exact model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from axonnx.plan import Plan


def output_pixels(work, layers) -> dict[str, int]:
    """How often each weight position is used per image (H_out x W_out of a conv, H_in x
    W_in of a transposed conv, M rows of a matrix product), measured by running the model
    once on zeros."""
    from axonnx.model import tensor_shapes

    shapes = tensor_shapes(work, list(dict.fromkeys(t for layer in layers
                                                    for t in layer.shape_tensors())))
    return {layer.name: layer.pixels(shapes) for layer in layers}


@dataclass
class PlanCost:
    """Prices plans on one model."""

    layers: list
    pixels: dict[str, int]
    table: object  # axonnx.energy.EnergyTable
    # per encoded operand ("weight", "activation"), per layer, the operand formats
    formats: dict[str, dict[str, str]] | None = None

    @classmethod
    def for_model(cls, model, table=None, matmul: bool = False, input_shape=None) -> "PlanCost":
        """``input_shape`` fixes a dynamic input's dims (e.g. batch and sequence), at which
        the multiplications are counted."""
        from axonnx.model import load_model
        from axonnx.passes import GraphIndex
        from axonnx.transform import operand_formats, prepared

        work, layers, _ = prepared(load_model(model), matmul, input_shape)
        index = GraphIndex(work.graph)
        formats = {encoded: {layer.name: operand_formats(layer, index, encoded) for layer in layers}
                   for encoded in ("weight", "activation")}
        return cls(layers, output_pixels(work, layers),
                   table if table is not None else default_table(), formats)

    def multiplications(self, plan: Plan) -> dict[str, dict[str, int]]:
        """Per layer, multiplications per multiplier name, per image."""
        from axonnx.transform import assign_plan

        _, assignments = assign_plan(plan, self.layers)
        out = {}
        for layer in self.layers:
            a = assignments[layer.name]
            counts = np.bincount(a.index.ravel(), minlength=len(a.multipliers))
            px = self.pixels[layer.name]
            out[layer.name] = {m.name: int(c) * px for m, c in zip(a.multipliers, counts) if c}
        return out

    def report(self, plan: Plan):
        """``axonnx.energy.energy_report`` of the plan's multiplications."""
        from axonnx.energy import energy_report

        formats = self.formats.get(plan.encoded_operand) if self.formats else None
        return energy_report(self.multiplications(plan), self.table, formats)

    def substitutes(self, library: tuple[str, ...], encoded_operand: str = "weight"
                    ) -> tuple[tuple[tuple[int, ...], ...], list[str]]:
        """Per layer, what each library entry stands for in a search
        (:func:`axonnx.analysis.space.substitutes`, on that layer's operand formats: energy
        from the table, error over the formats' operand pairs), and a note per format where
        an entry is replaced (e.g. ROUP_L costs more than exact on u8xs8 operands)."""
        from axonnx.analysis.space import error_rank, substitutes

        per_format: dict[str, tuple[int, ...]] = {}
        notes = []
        formats = (self.formats or {}).get(encoded_operand, {})
        for fmt in dict.fromkeys(formats.get(layer.name, "s8xs8") for layer in self.layers):
            energy = [self.table.lookup(name, fmt).relative for name in library]
            error = [error_rank(name, fmt) for name in library]
            per_format[fmt] = sub = substitutes(library, energy, error)
            swaps = [f"{library[i]} by {library[j]}" for i, j in enumerate(sub) if i != j]
            if swaps:
                notes.append(f"on {fmt} operands dominated (no cheaper or no more accurate), "
                             f"replaced: {', '.join(swaps)}")
        return tuple(per_format[formats.get(layer.name, "s8xs8")] for layer in self.layers), notes

    def relative(self, plan: Plan) -> float:
        """The plan's multiplier energy over the all-exact model's (1 = no gain)."""
        return 1.0 - self.report(plan).gain


def default_table():
    from axonnx.energy import EnergyTable

    return EnergyTable.load_default()


def load_table(path=None):
    """The built-in table, overridden and extended by a user table (JSON/CSV) if given."""
    from axonnx.energy import EnergyTable

    table = EnergyTable.load_default()
    if path is not None:
        table = table.merged(EnergyTable.from_file(path))
    return table
