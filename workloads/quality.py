"""Published quality figures per weight format (perplexity increase over the unquantized model),
from `data/format-quality.yaml`: every figure names its model and source, or says it is an
estimate. Tune accuracy budgets and the `ppl_delta` metric read them; nothing else does."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from workloads.model import WorkloadError
from workloads.precision import parse_precision

TABLE = "format-quality.yaml"


@dataclass(frozen=True)
class QualityFigure:
    """The published perplexity increase of one format, on the model it was measured on."""

    format: str
    ppl_delta: float
    model: str
    source: str
    estimate: bool = False


@cache
def quality_table() -> dict[str, QualityFigure]:
    """Format name -> figure (formats without a sourced figure are absent)."""
    text = (resources.files("workloads") / "data" / TABLE).read_text()
    rows = (yaml.safe_load(text) or {}).get("formats") or {}
    out = {}
    for name, row in rows.items():
        src = row.get("source") or row.get("estimate")
        out[name] = QualityFigure(name, float(row["ppl_delta"]), str(row["model"]), str(src),
                                  estimate="estimate" in row)
    return out


@dataclass(frozen=True)
class PrecisionQuality:
    """Quality of a (possibly mixed) precision: the worst figure among its formats."""

    ppl_delta: float
    worst: QualityFigure
    note: str


def precision_quality(precision: str) -> PrecisionQuality:
    """Perplexity increase of a precision. Mixed precision takes the worst figure among the
    formats it uses: a bound that assumes making part of a model more precise never hurts.
    WorkloadError if a format it uses has no sourced figure."""
    prec = parse_precision(precision)
    table = quality_table()
    missing = [f for f in prec.formats if f not in table]
    if missing:
        raise WorkloadError(f"no sourced quality figure for format(s) {', '.join(missing)}; "
                            f"formats with one: {', '.join(table)}")
    worst = max((table[f] for f in prec.formats), key=lambda q: q.ppl_delta)
    note = f"{worst.format}: +{worst.ppl_delta:g} ppl measured on {worst.model}"
    if prec.mixed:
        note += " (mixed precision: worst format used, a bound)"
    if worst.estimate:
        note += " (estimate)"
    return PrecisionQuality(worst.ppl_delta, worst, note)
