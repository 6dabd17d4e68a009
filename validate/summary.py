"""Summarise several full runs (each a `validate compare` output folder): the end-to-end and
per-op errors of each, the machine figures each measured, and the spread between runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sim.trace import RESOURCES
from validate.errors import ValidateError


def _load(d: Path) -> dict:
    f = d / "results.json"
    try:
        data = json.loads(f.read_text())
    except OSError as exc:
        raise ValidateError(f"cannot read {f}: {exc.strerror} (give folders written by "
                            "`validate compare --out`)") from None
    except json.JSONDecodeError as exc:
        raise ValidateError(f"{f} is not valid JSON: {exc}") from None
    if "sets" not in data:
        raise ValidateError(f"{f} is not a results.json of `validate compare` (no 'sets')")
    return data


def _machine(data: dict) -> str:
    figs = data.get("machine", {}).get("figures", [])
    out = []
    for f in figs:
        if f["what"].endswith("32 MiB") or f["what"].endswith("16 MiB"):
            out.append(f"{f['what'].split(' ')[0]} {f['nbytes'] / f['measured_s'] / 1e9:.2f} GB/s")
        elif f["what"].endswith("64 KiB") and f["what"].startswith("storage"):
            out.append(f"64 KiB read {f['measured_s'] * 1e6:.0f} us")
    return ", ".join(out)


def _oracle(zoo: dict) -> str:
    """The replay oracle's figures of a set ('-' where the run had one replay per schedule)."""
    if zoo.get("oracle_mape") is None:
        return "-"
    op = zoo.get("oracle_op_mape", {})
    return f"{zoo['oracle_mape']:.1%}; " + " / ".join(
        f"{op[k]:.0%}" if k in op else "-" for k in RESOURCES)


def summarise(dirs: Sequence[Path]) -> str:
    """Markdown: one row per run, then min / median / max over the runs."""
    runs = [(d, _load(d)) for d in dirs]
    sets = [s for s in ("zoo", "synthetic") if any(s in r["sets"] for _, r in runs)]
    head = ["run", "profile"] + [f"{s} end-to-end MAPE" for s in sets] + [
        f"zoo per-op {k}" for k in RESOURCES] + [
        "zoo replay oracle: end-to-end; per-op " + " / ".join(RESOURCES),
        "machine figures of the start"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    cols: dict[str, list[float]] = {}
    for d, r in runs:
        row = [f"{d.parent.name}/{d.name}" if d.name == "cmp" else d.name,
               f"`{r.get('profile', '?')}`"]
        for s in sets:
            m = r["sets"].get(s, {}).get("mape")
            row.append(f"{m:.1%}" if m is not None else "-")
            if m is not None:
                cols.setdefault(s, []).append(m)
        op = r["sets"].get("zoo", {}).get("op_mape", {})
        for k in RESOURCES:
            row.append(f"{op[k]:.1%}" if k in op else "-")
            if k in op:
                cols.setdefault(k, []).append(op[k])
        row.append(_oracle(r["sets"].get("zoo", {})))
        row.append(_machine(r))
        lines.append("| " + " | ".join(row) + " |")
    spread = ["spread (min / median / max)", ""]
    for s in sets:
        v = cols.get(s, [])
        spread.append(f"{min(v):.1%} / {np.median(v):.1%} / {max(v):.1%}" if v else "-")
    for k in RESOURCES:
        v = cols.get(k, [])
        spread.append(f"{min(v):.1%} / {np.median(v):.1%} / {max(v):.1%}" if v else "-")
    spread += ["", ""]
    lines.append("| " + " | ".join(spread) + " |")
    return "\n".join(lines) + "\n"
