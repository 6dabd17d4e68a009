"""Parse and format quantities written with units ("4.2 GB/s", "27 us", "3 MiB", "2.1 TFLOPS").

Profiles, sweep specs and the CLI all accept human-written quantities; everything inside the
simulator is plain SI floats (bytes, seconds, bytes/s, FLOP/s).
"""

from __future__ import annotations

import math
import re

_NUM = r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|[-+]?\.\d+(?:[eE][-+]?\d+)?)"
_RE = re.compile(r"^\s*" + _NUM + r"\s*([A-Za-z/]*)\s*$")

SIZE_UNITS: dict[str, float] = {
    "": 1, "b": 1, "byte": 1, "bytes": 1,
    "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30,
}
TIME_UNITS: dict[str, float] = {
    "": 1, "s": 1, "sec": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "min": 60,
}
BANDWIDTH_UNITS: dict[str, float] = {
    "b/s": 1, "kb/s": 1e3, "mb/s": 1e6, "gb/s": 1e9, "tb/s": 1e12,
    "kib/s": 2**10, "mib/s": 2**20, "gib/s": 2**30,
}
RATE_UNITS: dict[str, float] = {
    "": 1, "flops": 1, "gflops": 1e9, "tflops": 1e12, "pflops": 1e15,
    "ops": 1, "gops": 1e9, "tops": 1e12,
}


class UnitError(ValueError):
    """A quantity could not be parsed; the message names the text and the accepted units."""


def _parse(text: object, table: dict[str, float], what: str, examples: str) -> float:
    if isinstance(text, bool):
        raise UnitError(f"expected {what} such as {examples}, found {text!r}")
    if isinstance(text, int | float):
        if table.get("") is None:
            raise UnitError(f"expected {what} with a unit such as {examples}, found bare number {text!r}")
        try:
            value = float(text)
        except OverflowError:
            raise UnitError(f"{what} {str(text)[:20]}... is too large") from None
        return _finite(value, text, table, what)
    if not isinstance(text, str):
        raise UnitError(f"expected {what} such as {examples}, found {text!r}")
    m = _RE.match(text)
    if not m:
        raise UnitError(f"expected {what} such as {examples}, found {text!r}")
    value, unit = float(m.group(1)), m.group(2).lower()
    if unit not in table:
        units = ", ".join(sorted({k for k in table if k}))
        raise UnitError(f"unknown unit {m.group(2)!r} in {text!r} for {what}; valid units: {units}")
    return _finite(value * table[unit], text, table, what)


def _finite(value: float, text: object, table: dict[str, float], what: str) -> float:
    """`value` if it is a finite number (and a size below 8 EiB), else a UnitError."""
    if not math.isfinite(value):
        raise UnitError(f"{what} {text!r} is not a finite number")
    if table is SIZE_UNITS and abs(value) >= 2**63:
        raise UnitError(f"{what} {text!r} is too large (more than 8 EiB)")
    return value


def parse_bytes(text: object) -> int:
    """Bytes from '512MiB', '3 MB', '4096' or an int (KB=1000, KiB=1024)."""
    return int(round(_parse(text, SIZE_UNITS, "a size", "'512 MiB', '3 GB', 4096")))


def parse_time(text: object) -> float:
    """Seconds from '27 us', '50ms', '1.5 s' or a number of seconds."""
    return _parse(text, TIME_UNITS, "a time", "'27 us', '50 ms', '1.5 s'")


def parse_bandwidth(text: object) -> float:
    """Bytes per second from '4.2 GB/s', '900 MiB/s'."""
    table = dict(BANDWIDTH_UNITS)
    return _parse(text, table, "a bandwidth", "'4.2 GB/s', '900 MiB/s'")


def parse_rate(text: object) -> float:
    """Operations per second from '2.77 TFLOPS', '500 GFLOPS', '20 TOPS'."""
    return _parse(text, RATE_UNITS, "a compute rate", "'2.77 TFLOPS', '500 GFLOPS'")


def format_bytes(n: float) -> str:
    """Human-readable binary size: 1536 -> '1.50 KiB'."""
    n = float(n)
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def format_time(t: float) -> str:
    """Human-readable time: 0.0123 -> '12.30 ms'."""
    if abs(t) >= 1:
        return f"{t:.3f} s"
    if abs(t) >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.1f} us"


def format_bandwidth(b: float) -> str:
    """Human-readable decimal bandwidth: 4.2e9 -> '4.20 GB/s'."""
    for unit, scale in (("TB/s", 1e12), ("GB/s", 1e9), ("MB/s", 1e6), ("KB/s", 1e3)):
        if abs(b) >= scale:
            return f"{b / scale:.2f} {unit}"
    return f"{b:.0f} B/s"


ENERGY_UNITS: dict[str, float] = {
    "j": 1, "mj": 1e-3, "uj": 1e-6, "nj": 1e-9, "pj": 1e-12, "fj": 1e-15,
}


def parse_energy(text: object) -> float:
    """Joules per unit from '0.4 nJ/B' or '1.5 pJ/FLOP' (the per-unit suffix is dropped)."""
    if isinstance(text, str) and "/" in text:
        text = text.split("/", 1)[0]
    return _parse(text, ENERGY_UNITS, "an energy per unit", "'0.4 nJ/B', '1.5 pJ/FLOP'")


def format_rate(r: float) -> str:
    """Human-readable compute rate: 5.5e12 -> '5.50 TFLOPS'."""
    for unit, scale in (("PFLOPS", 1e15), ("TFLOPS", 1e12), ("GFLOPS", 1e9), ("MFLOPS", 1e6)):
        if abs(r) >= scale:
            return f"{r / scale:.2f} {unit}"
    return f"{r:.0f} FLOPS"


def format_energy(e: float, per: str) -> str:
    """Human-readable energy per unit: (4e-10, 'B') -> '0.400 nJ/B'."""
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if abs(e) >= scale:
            return f"{e / scale:.3g} {unit}/{per}"
    return f"{e / 1e-15:.3g} fJ/{per}"
