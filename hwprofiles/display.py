"""Human-readable views of a HardwareProfile: each field's value in units plus its source.

Shared by `weightstream profiles show`, notebooks and reports so a number is always printed
the same way and always next to where it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hwprofiles import units
from hwprofiles.runtime import FORMAT_KEYS, RUNTIME_FIELDS, RuntimeProfile, runtime_value
from hwprofiles.schema import FIELDS, HardwareProfile, get_path


@dataclass(frozen=True)
class FieldRow:
    """One field of a profile as shown to a person."""

    path: str
    value: str  # in human units, '-' where an optional field is absent
    source: str  # citation or estimate note, '' for text fields
    estimate: bool


def format_value(path: str, value: Any, fields: Mapping[str, str] = FIELDS) -> str:
    """A field's SI value in the unit family the schema gives that field."""
    if value is None:
        return "-"
    kind = fields[path].rstrip("?")
    if kind.startswith("list:"):
        return ", ".join(value) if value else "none"
    if kind == "bandwidth":
        return units.format_bandwidth(value)
    if kind == "time":
        return units.format_time(value)
    if kind == "bytes":
        return units.format_bytes(value)
    if kind == "rate":
        return units.format_rate(value)
    if kind == "energy":
        return units.format_energy(value, "FLOP" if path.endswith("_per_flop") else "B")
    if kind == "bool":
        return "yes" if value else "no"
    if kind == "count":
        return f"{value:,}"
    if kind == "number":
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"
    if kind == "fraction":
        return f"{value:.2f}"
    if kind in ("factor", "ratio"):
        return f"x{value:.3g}"
    return str(value)


def field_rows(profile: HardwareProfile) -> list[FieldRow]:
    """Every schema field of `profile` in display order, with value and source."""
    rows = []
    for path in FIELDS:
        value = get_path(profile, path)
        src = profile.sources.get(path)
        if src is None and FIELDS[path] != "text":
            # an optional field the profile leaves out: show the schema default, if any
            shown = "-" if not value else format_value(path, value)
            rows.append(FieldRow(path, shown, "not set (optional field)", False))
            continue
        rows.append(FieldRow(path, format_value(path, value), src.text if src else "",
                             bool(src and src.estimate)))
    return rows


def runtime_rows(rt: RuntimeProfile) -> list[FieldRow]:
    """Every field of a runtime profile in display order; fields left out say they are neutral."""
    rows = []
    for path in RUNTIME_FIELDS:
        src = rt.sources.get(path)
        value = runtime_value(rt, path)
        if src is None and path.rsplit(".", 1)[-1] in FORMAT_KEYS:
            continue  # per-format-family figures: listed only where a runtime states them
        if src is None:
            rows.append(FieldRow(path, "-" if value in (None, (), 0.0) else
                                 format_value(path, value, RUNTIME_FIELDS),
                                 "not set (neutral: the hardware profile alone)", False))
            continue
        rows.append(FieldRow(path, format_value(path, value, RUNTIME_FIELDS), src.text,
                             src.estimate))
    return rows
