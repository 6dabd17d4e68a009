"""Model precision: one weight format for the whole model, or mixed precision per layer group.

A precision is written `BASE[,GROUP=FORMAT...]`, e.g. `q4_0,lm_head=q6_k,embeddings=q8_0`: every
layer in BASE except the named groups. Groups are found from op names and kinds (Hugging Face
module naming, which the zoo and the importers keep):

- `lm_head`: the op called `lm_head` (a tied embedding table belongs here: llama.cpp likewise
  gives a tied token-embedding table the output tensor's type);
- `embeddings`: embedding (row gather) ops;
- `attention`: ops inside an attention module (a name part containing 'attn' or 'attention',
  or an attention_qk / attention_av op);
- `ffn`: ops inside an MLP / feed-forward module (mlp, ffn, ff, feed_forward, fc1, fc2,
  intermediate, or a BERT-style `layer.N.output`);
- everything else (convolutions, patch embeddings, norms, classifier heads) follows BASE.

The canonical name lists groups in `GROUPS` order and drops those equal to BASE, so equal
precisions have equal names (and equal run keys).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workloads.formats import FormatError, get_format, list_formats

if TYPE_CHECKING:
    from workloads.model import Op

GROUPS = ("embeddings", "attention", "ffn", "lm_head")
OTHER = "other"
_FFN_PARTS = {"mlp", "ffn", "ff", "feed_forward", "intermediate", "fc1", "fc2"}
_SPLIT = re.compile(r"[./]")


def _error(msg: str) -> Exception:
    from workloads.model import WorkloadError

    return WorkloadError(msg)


@dataclass(frozen=True)
class Precision:
    """A base format and per-group overrides (only groups whose format differs from base)."""

    base: str
    groups: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return ",".join([self.base, *(f"{g}={f}" for g, f in self.groups)])

    @property
    def mixed(self) -> bool:
        return bool(self.groups)

    def format_for(self, group: str) -> str:
        """The format of layers in `group` ('other' and unnamed groups get the base)."""
        return dict(self.groups).get(group, self.base)

    @property
    def formats(self) -> list[str]:
        """Every format the precision uses, base first."""
        return list(dict.fromkeys([self.base, *(f for _, f in self.groups)]))


def _format(name: object, where: str) -> str:
    try:
        return get_format(str(name).strip()).name
    except FormatError as exc:
        raise _error(f"{where}: {exc}") from None


def parse_precision(spec: str | Mapping[str, str]) -> Precision:
    """Parse 'q4_0,lm_head=q6_k' (or {base: q4_0, lm_head: q6_k}); WorkloadError naming the
    bad part and the valid formats or groups."""
    if isinstance(spec, Precision):
        return spec
    if isinstance(spec, Mapping):
        items = dict(spec)
        if "base" not in items:
            raise _error(f"a mixed precision mapping needs 'base' (the format of every other "
                         f"layer); found keys {', '.join(map(str, items))}")
        base = items.pop("base")
        pairs = list(items.items())
    elif isinstance(spec, str) and spec.strip():
        head, *rest = [p.strip() for p in spec.split(",")]
        if "=" in head:
            raise _error(f"precision {spec!r} must start with the base format, e.g. "
                         f"'q4_0,lm_head=q6_k'")
        base = head
        pairs = []
        for part in rest:
            if "=" not in part:
                raise _error(f"precision {spec!r}: {part!r} must look like GROUP=FORMAT; "
                             f"groups: {', '.join(GROUPS)}")
            g, f = (x.strip() for x in part.split("=", 1))
            pairs.append((g, f))
    else:
        raise _error(f"a precision must be a format name such as 'fp16' or 'q4_0,lm_head=q6_k'; "
                     f"found {spec!r}; formats: {', '.join(list_formats())}")
    where = f"precision {spec!r}"
    base = _format(base, where)
    groups: dict[str, str] = {}
    for g, f in pairs:
        if g not in GROUPS:
            raise _error(f"{where}: unknown layer group {g!r}; valid groups: {', '.join(GROUPS)}")
        if g in groups:
            raise _error(f"{where}: layer group {g!r} is given twice")
        groups[g] = _format(f, where)
    return Precision(base, tuple((g, groups[g]) for g in GROUPS
                                 if g in groups and groups[g] != base))


def op_group(op: Op) -> str:
    """The layer group of one op: embeddings, attention, ffn, lm_head or other."""
    parts = _SPLIT.split(op.name.lower())
    if parts[-1] == "lm_head":
        return "lm_head"
    if op.kind == "embedding":
        return "embeddings"
    if any(p in _FFN_PARTS for p in parts):
        return "ffn"  # before attention: diffusers nests the FF inside `attentions.N`
    if op.kind.startswith("attention") or any("attn" in p or "attention" in p for p in parts):
        return "attention"
    if any(p == "output" and i > 0 and parts[i - 1].isdigit() for i, p in enumerate(parts)):
        return "ffn"  # BERT: layer.N.output.dense is the FFN's second linear
    return OTHER


def tensor_groups(ops: Iterable[Op]) -> dict[str, str]:
    """Layer group of every weight tensor; a tensor shared by groups (a tied embedding table)
    goes to lm_head first, then embeddings, then the group of its first use."""
    out: dict[str, str] = {}
    rank = {"lm_head": 0, "embeddings": 1}
    for op in ops:
        g = op_group(op)
        for t in op.weights:
            prev = out.get(t.name)
            if prev is None or rank.get(g, 9) < rank.get(prev, 9):
                out[t.name] = g
    return out
