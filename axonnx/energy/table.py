"""Energy tables: the built-in characterization, user tables (JSON/CSV) and their merge,
looked up by multiplier name and operand formats."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from axonnx.energy.entry import EXACT, HOW_TO_ADD, SKIP, EnergyEntry
from axonnx.energy.evoapprox import lut_entry
from axonnx.errors import AxonnxError
from axonnx.multipliers.names import split_top_level
from axonnx.multipliers.operands import DEFAULT_FORMATS, canonical_formats

DEFAULT_TABLE = Path(__file__).parents[1] / "multipliers" / "energy_table.json"
_UNITS = {"j": 1e12, "mj": 1e9, "uj": 1e6, "nj": 1e3, "pj": 1.0, "fj": 1e-3, "aj": 1e-6}


@dataclass
class _Row:
    pj: float | None
    relative: float | None  # None: to be derived from pj and the table's exact energy
    source: str


def canonical_roup(name: str) -> str | None:
    """Canonical name of a ROUP name or alias (None if it is not one)."""
    from axonnx.multipliers.names import NAMED_STRENGTHS, parse

    text = NAMED_STRENGTHS.get(name.strip(), name.strip())
    if not text.startswith("ROUP"):
        return None
    try:
        return parse(text).name
    except AxonnxError:
        return None


def _canonical(name: str) -> str:
    roup = canonical_roup(name)
    if roup is not None:
        return roup
    text = name.strip()
    if text.upper() == "SKIP":
        return "SKIP"
    if text.startswith("LUT(") and text.endswith(")"):
        return f"LUT({text[4:-1].strip()})"
    return text


class EnergyTable:
    """Multiplier name -> energy per multiplication. Build with :meth:`load_default`,
    :meth:`from_file` or :meth:`from_dict`; combine with :meth:`merged`."""

    def __init__(self, rows: dict[str, _Row], *, exact_pj: float | None, origin: str,
                 digests: dict[str, str] | None = None, info: dict | None = None,
                 formats: str = DEFAULT_FORMATS, by_format: dict[str, "EnergyTable"] | None = None,
                 generic: "EnergyTable | None" = None,
                 restricted: dict[str, frozenset[str]] | None = None):
        self._rows = rows
        self.exact_pj = exact_pj
        self.origin = origin
        self._digests = digests or {}  # product-table sha256 -> name (functional matches)
        self.info = info or {}
        self.formats = formats  # the operand formats of these rows
        self._by_format = by_format or {}  # the rows of other formats: one table each
        # Rows without a 'formats' value: they hold for every operand format.
        self._generic = generic
        # Merged user rows given for some formats only: multiplier -> those formats. Looking
        # such a multiplier up on other formats is an error, not a silent built-in figure.
        self._restricted = restricted or {}
        self._explicit: dict[str, frozenset[str]] = {}  # from_dict: rows with formats only
        self._derived: dict[str, EnergyTable] = {}  # generic rows labelled with a format
        self._cache: dict[tuple[str, str], EnergyEntry] = {}

    # -- construction --------------------------------------------------------------------
    @classmethod
    def load_default(cls) -> "EnergyTable":
        """The committed table (``axonnx/multipliers/energy_table.json``)."""
        return _default_table()

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "EnergyTable":
        """Read a JSON or CSV table; any problem is a one-line AxonnxError."""
        p = Path(path)
        if not p.is_file():
            raise AxonnxError(f"energy table {path} does not exist")
        text = p.read_text(encoding="utf-8", errors="replace")
        if p.suffix.lower() == ".csv" or (not text.lstrip().startswith(("{", "["))):
            return cls.from_csv(text, origin=str(p))
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AxonnxError(f"energy table {path} is not valid JSON (line {exc.lineno}: "
                              f"{exc.msg})") from None
        return cls.from_dict(data, origin=str(p))

    @classmethod
    def from_csv(cls, text: str, origin: str = "CSV table") -> "EnergyTable":
        """CSV with a header (``name`` and ``energy`` + ``unit``, or ``energy_pj``, or
        ``relative``; optional ``source``). Names such as ROUP(1,4) need no quotes: commas
        inside parentheses do not separate fields."""
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if not lines:
            raise AxonnxError(f"energy table {origin} is empty")
        header = [f.strip().lower() for f in split_top_level(lines[0])]
        if "name" not in header:
            raise AxonnxError(f"energy table {origin}: the CSV needs a header with a 'name' "
                              "column and an 'energy' (with 'unit') or 'relative' column")
        rows = []
        for k, line in enumerate(lines[1:], start=2):
            fields = split_top_level(line)
            if len(fields) != len(header):
                raise AxonnxError(f"energy table {origin}: line {k} has {len(fields)} fields, "
                                  f"the header {len(header)}")
            rows.append(dict(zip(header, (f.strip() for f in fields))))
        return cls.from_dict({"rows": rows}, origin=origin)

    @classmethod
    def from_dict(cls, data, origin: str = "table") -> "EnergyTable":
        """Accepted shapes: ``{"rows": [{name, energy, unit, source}, ...], "unit", "source",
        "exact"}`` (the built-in format too), a list of such rows, or a mapping
        ``{name: energy}`` / ``{name: {energy, unit, source}}`` under ``"energies"``."""
        default_unit, default_source, exact_name = "pJ", origin, EXACT
        if isinstance(data, dict):
            default_unit = str(data.get("unit", default_unit))
            default_source = str(data.get("source", default_source))
            exact_name = str(data.get("exact", exact_name))
            if "rows" in data:
                items = data["rows"]
            elif "energies" in data:
                items = _mapping_rows(data["energies"], origin)
            else:
                items = _mapping_rows({k: v for k, v in data.items()
                                       if k not in ("unit", "source", "exact", "format")}, origin)
        elif isinstance(data, list):
            items = data
        else:
            raise AxonnxError(f"energy table {origin}: expected a JSON object or list of rows")
        if not isinstance(items, list) or not items:
            raise AxonnxError(f"energy table {origin} holds no rows")
        # Rows without 'formats' (None) hold for every format; a format's own rows win.
        groups: dict[str | None, list] = {}
        for k, item in enumerate(items, start=1):
            formats = str(item.get("formats") or "").strip() if isinstance(item, dict) else ""
            try:
                formats = canonical_formats(formats) if formats else None
            except AxonnxError as exc:
                raise AxonnxError(f"energy table {origin}: row {k}: {exc}") from None
            groups.setdefault(formats, []).append(item)
        info = {k: data[k] for k in data if isinstance(data, dict) and (
            k in ("provenance", "selection") or k.startswith("suggested_strengths"))}
        generic_items = groups.pop(None, [])

        def build(f: str, rows: list) -> "EnergyTable":
            return cls._from_rows(rows, origin, default_unit, default_source, exact_name, info, f)

        generic = build(DEFAULT_FORMATS, generic_items) if generic_items else None
        tables = {f: build(f, generic_items + group) for f, group in groups.items()}
        explicit: dict[str, set[str]] = {}
        for f, table in tables.items():
            for name in table.names():
                if generic is None or name not in generic._rows:
                    explicit.setdefault(name, set()).add(f)
        main = tables.pop(DEFAULT_FORMATS, None) or generic or cls(
            {}, exact_pj=None, origin=origin, info=info)
        if main is generic:
            generic = build(DEFAULT_FORMATS, generic_items)  # its own copy, kept unmerged
        main._by_format = tables
        main._generic = generic
        main._explicit = {n: frozenset(f) for n, f in explicit.items()}
        return main

    @classmethod
    def _from_rows(cls, items: list, origin: str, default_unit: str, default_source: str,
                   exact_name: str, info: dict, formats: str) -> "EnergyTable":
        rows: dict[str, _Row] = {}
        digests: dict[str, str] = {}
        for k, item in enumerate(items, start=1):
            if not isinstance(item, dict) or not str(item.get("name", "")).strip():
                raise AxonnxError(f"energy table {origin}: row {k} has no multiplier name")
            name = _canonical(str(item["name"]))
            if canonical_roup(name) is None and name != "SKIP" and not name.startswith("LUT("):
                # a row no look-up can ever match would be ignored in silence
                if name.upper().startswith("ROUP"):
                    from axonnx.multipliers.names import parse  # says what is wrong with it

                    try:
                        parse(name)
                    except AxonnxError as exc:
                        raise AxonnxError(f"energy table {origin}: row {k}: {exc}") from None
                raise AxonnxError(f"energy table {origin}: row {k}: {item['name']!r} is not a "
                                  "multiplier name; write ROUP(P,R), ROUP_L/M/H, SKIP or LUT(name)")
            pj, relative = _row_energy(item, default_unit, origin, name)
            source = str(item.get("source") or default_source)
            row = _Row(pj, relative, source)
            rows[name] = row
            for alias in item.get("aliases") or []:
                rows.setdefault(_canonical(str(alias)), row)
            if item.get("product_sha256"):
                digests[str(item["product_sha256"])] = name
        exact_key = _canonical(exact_name)
        exact_pj = rows[exact_key].pj if exact_key in rows else None
        if exact_pj == 0:  # every other energy is relative to it
            raise AxonnxError(f"energy table {origin}: the exact {exact_name} has energy 0; give "
                              "it its measured, positive energy")
        if exact_key in rows:
            rows[exact_key].relative = 1.0  # the exact multiplier is the reference
        return cls(rows, exact_pj=exact_pj, origin=origin, digests=digests, info=info,
                   formats=formats)

    def merged(self, user: "EnergyTable") -> "EnergyTable":
        """This table overridden and extended by ``user``. User rows with absolute energies
        are made relative to the user's own exact row, else to this table's exact energy."""
        rows = dict(self._rows)
        for name, row in user._rows.items():
            if row.relative is None:
                ref = user.exact_pj if user.exact_pj is not None else self.exact_pj
                if ref is None:
                    raise AxonnxError(f"energy table {user.origin}: {name} has an absolute energy "
                                      f"but neither table has a {EXACT} row to relate it to")
                note = "" if user.exact_pj is not None else f"; relative to {self.origin}'s {EXACT}"
                row = _Row(row.pj, row.pj / ref, row.source + note)
            rows[name] = row
        exact_pj = user.exact_pj if user.exact_pj is not None else self.exact_pj
        digests = {d: n for d, n in self._digests.items() if n not in user._rows}
        digests.update(user._digests)
        by_format = dict(self._by_format)
        for f in list(by_format) + [f for f in user._by_format if f not in by_format]:
            # per operand format the same way: the user's rows of f, else its generic rows
            theirs = user._by_format.get(f) or (user._generic.relabelled(f) if user._generic else None)
            if theirs is None:
                continue
            ours = by_format.get(f) or EnergyTable({}, exact_pj=None, origin=self.origin, formats=f)
            by_format[f] = ours.merged(theirs)
        generic = self._generic.merged(user._generic) if self._generic and user._generic else (
            user._generic or self._generic)
        restricted = {**self._restricted, **getattr(user, "_explicit", {})}
        return EnergyTable(rows, exact_pj=exact_pj, origin=f"{self.origin} + {user.origin}",
                           digests=digests, info=self.info, formats=self.formats,
                           by_format=by_format, generic=generic, restricted=restricted)

    def relabelled(self, formats: str) -> "EnergyTable":
        """These rows as the figures of another operand format (a generic table's)."""
        return EnergyTable(self._rows, exact_pj=self.exact_pj, origin=self.origin,
                           info=self.info, formats=formats)

    # -- look-up -------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._rows)

    def operand_formats(self) -> list[str]:
        """The operand formats this table has rows for (s8xs8 first)."""
        return ([DEFAULT_FORMATS] if self._rows else []) + list(self._by_format)

    def for_formats(self, formats: str = DEFAULT_FORMATS) -> "EnergyTable":
        """The rows of one operand format pair (this table itself for s8xs8); a table
        without them answers with its s8xs8 rows (see :meth:`lookup`)."""
        key = canonical_formats(formats)
        if key == self.formats:
            return self
        if key in self._by_format:
            return self._by_format[key]
        if self._generic is not None:
            if key not in self._derived:
                self._derived[key] = self._generic.relabelled(key)
            return self._derived[key]
        return self

    def exact_pj_for(self, formats: str = DEFAULT_FORMATS) -> float | None:
        """pJ of the exact ROUP(0,0) for those operand formats (s8xs8's when absent)."""
        return self.for_formats(formats).exact_pj

    def lookup(self, name: str, formats: str = DEFAULT_FORMATS) -> EnergyEntry:
        """The energy of one multiplication with ``name`` (canonical name, alias such as
        ROUP_L, SKIP, or LUT(...)) on operands of ``formats`` (``rounded x encoded``); an
        unknown multiplier is an AxonnxError naming it. ROUP figures come from the rows of
        those formats, or, when the table has none, from its s8xs8 rows with a note in the
        source (``entry.formats`` says which was used)."""
        hit = self._cache.get((name, formats))
        if hit is None:
            roup = canonical_roup(name)
            given = self._restricted.get(roup) if roup is not None else None
            if given is not None and canonical_formats(formats) not in given:
                raise AxonnxError(
                    f"energy table {self.origin}: its {roup} rows are for {', '.join(sorted(given))} "
                    f"operands, a layer's are {canonical_formats(formats)}: add a row with formats "
                    f"{canonical_formats(formats)}, or leave 'formats' empty so that it holds for "
                    "every format")
            table = self.for_formats(formats)
            if table is self or canonical_roup(name) is None:  # LUT/SKIP: stored codes
                hit = self._resolve(name)
            else:
                hit = table._resolve(name)
            if canonical_roup(name) is not None and hit.formats != canonical_formats(formats):
                hit = replace(hit, source=f"{hit.source} [no {canonical_formats(formats)} figure in "
                                          f"{self.origin}: the {hit.formats} one]")
            self._cache[(name, formats)] = hit
        return hit

    def get(self, name: str, formats: str = DEFAULT_FORMATS) -> EnergyEntry | None:
        try:
            return self.lookup(name, formats)
        except AxonnxError:
            return None

    def _entry(self, name: str, row: _Row) -> EnergyEntry:
        relative = row.relative
        if relative is None:
            if not self.exact_pj:
                raise AxonnxError(f"energy table {self.origin}: {name} has an absolute energy but "
                                  f"the table has no {EXACT} row to relate it to; add one")
            relative = row.pj / self.exact_pj
        return EnergyEntry(name, row.pj, float(relative), row.source, self.formats)

    def _resolve(self, name: str) -> EnergyEntry:
        key = _canonical(name)
        if key == "SKIP":
            return SKIP
        if key in self._rows:
            return self._entry(key, self._rows[key])
        roup = canonical_roup(name)
        if roup is not None:
            from axonnx.multipliers.names import parse

            m = parse(roup)
            if m.is_exact:  # any exact ROUP: relative 1.0 (pJ only for the table's width)
                source = self._rows[EXACT].source if EXACT in self._rows else "exact multiplier"
                return EnergyEntry(roup, self.exact_pj if m.bits == 8 else None, 1.0, source,
                                   self.formats)
            if self._digests and m.bits <= 8:
                twin = self._digests.get(product_digest(m, self.formats))
                if twin in self._rows:
                    entry = self._entry(twin, self._rows[twin])
                    return EnergyEntry(roup, entry.pj, entry.relative,
                                       f"{entry.source} (functionally identical to {twin})",
                                       self.formats)
        if key.startswith("LUT("):
            entry = lut_entry(key[4:-1])
            if entry is not None:
                return entry
        raise AxonnxError(f"no energy figure for multiplier {name!r} in {self.origin}: {HOW_TO_ADD}")


def product_digest(m, formats: str = DEFAULT_FORMATS) -> str:
    """SHA-256 of a multiplier's product table (int32 little endian): equal digests mean
    functionally identical multipliers. Other operand formats than s8xs8 hash the ROUP
    products over that format's operand pairs (twins differ between formats: ROUP(0,8)
    equals ROUP(1,8) on s8 operands, not on u8)."""
    import hashlib

    if formats == DEFAULT_FORMATS:
        table = m.product_table()
    else:
        from axonnx.multipliers.operands import format_grid

        table = m.multiply(*format_grid(formats))
    return hashlib.sha256(table.astype("<i4").tobytes()).hexdigest()


def _mapping_rows(mapping, origin: str) -> list[dict]:
    if not isinstance(mapping, dict):
        raise AxonnxError(f"energy table {origin}: 'energies' must map names to energies")
    rows = []
    for name, value in mapping.items():
        if isinstance(value, dict):
            rows.append({"name": name, **value})
        else:
            rows.append({"name": name, "energy": value})
    return rows


def _number(value, what: str, origin: str, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AxonnxError(f"energy table {origin}: {name}: {what} {value!r} is not a number") from None
    if not np.isfinite(number) or number < 0:
        raise AxonnxError(f"energy table {origin}: {name}: {what} {value!r} must be finite and >= 0")
    return number


def _row_energy(item: dict, default_unit: str, origin: str, name: str
                ) -> tuple[float | None, float | None]:
    relative = item.get("relative_energy", item.get("relative"))
    relative = None if relative in (None, "") else _number(relative, "relative energy", origin, name)
    for key in ("energy_pj", "pj"):
        if item.get(key) not in (None, ""):
            return _number(item[key], "energy", origin, name), relative
    if item.get("energy") not in (None, ""):
        unit = str(item.get("unit") or default_unit).strip()
        if unit.lower() in ("relative", "rel", "x", "1"):
            return None, _number(item["energy"], "relative energy", origin, name)
        scale = _UNITS.get(unit.lower())
        if scale is None:
            raise AxonnxError(f"energy table {origin}: {name}: unknown energy unit {unit!r}; "
                              f"use one of pJ, fJ, nJ, aJ, J or relative")
        return _number(item["energy"], "energy", origin, name) * scale, relative
    if relative is not None:
        return None, relative
    raise AxonnxError(f"energy table {origin}: {name} has no energy (columns energy+unit, "
                      "energy_pj or relative)")


@lru_cache(maxsize=1)
def _default_table() -> EnergyTable:
    if not DEFAULT_TABLE.is_file():
        return EnergyTable({}, exact_pj=None, origin="no built-in table")
    return EnergyTable.from_file(DEFAULT_TABLE)


def default_energy_lookup() -> Callable[[str], EnergyEntry | None]:
    """``name -> EnergyEntry`` from the built-in table, None for a name it does not know."""
    return EnergyTable.load_default().get
