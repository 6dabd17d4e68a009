"""The results store: one Parquet row per run, keyed by a hash of the run's inputs, resumable.

Layout of a results directory:

    DIR/results.parquet            every finished run (consolidated; one row per key)
    DIR/runs/part-000017.parquet   rows written since the last consolidation
    DIR/spec.yaml                  the sweep spec as given
    DIR/budgets.json               resolved automatic budgets (so a resume skips that work)

Every file is written to a temporary name in the same folder and renamed into place, so a
killed sweep leaves only whole files. Rows are found by key: a resumed sweep skips every key
already stored and never stores a key twice (consolidation keeps the first row of a key).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from experiments.errors import ExperimentError

RESULTS = "results.parquet"
PARTS = "runs"
SEQUENCES = {list, tuple, np.ndarray}
ORDER = ("model", "profile", "dtype", "policy", "budget_bytes")


def _atomic_write(path: Path, write: Any) -> None:
    """Call write(tmp_path) then rename tmp_path onto `path` (same folder: atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Types Parquet can store: a column of mixed scalar types (meta values differ per policy)
    becomes text; byte counts stay nullable integers."""
    df = df.copy()
    for col in df.columns:
        if df[col].dtype != object:
            continue
        kinds = {type(v) for v in df[col] if v is not None and not _isnan(v)}
        if len(kinds) > 1 and not kinds <= {int, float} and not kinds <= SEQUENCES:
            df[col] = [None if v is None or _isnan(v) else str(v) for v in df[col]]
        elif kinds <= {int, float} and kinds:
            df[col] = pd.to_numeric(df[col])
    if "budget_bytes" in df:
        df["budget_bytes"] = df["budget_bytes"].astype("Int64")
    return df


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and v != v


class ResultsStore:
    """A results directory: append rows in atomic parts, consolidate, read back."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._next = 0

    @property
    def results_path(self) -> Path:
        return self.root / RESULTS

    def _parts(self) -> list[Path]:
        return sorted((self.root / PARTS).glob("part-*.parquet"))

    def done_keys(self) -> set[str]:
        """Keys of every stored run (consolidated or in parts)."""
        keys: set[str] = set()
        for path in [self.results_path, *self._parts()]:
            if path.exists():
                keys.update(pq.read_table(path, columns=["key"]).column("key").to_pylist())
        return keys

    def append(self, rows: list[dict[str, Any]]) -> Path | None:
        """Write `rows` as one new part file (atomically); returns its path."""
        if not rows:
            return None
        parts = self._parts()
        n = max([self._next, *(int(p.stem.split("-")[1]) + 1 for p in parts)])
        self._next = n + 1
        path = self.root / PARTS / f"part-{n:06d}.parquet"
        table = pa.Table.from_pandas(normalise(pd.DataFrame(rows)), preserve_index=False)
        _atomic_write(path, lambda tmp: pq.write_table(table, tmp))
        return path

    def _read_all(self) -> pd.DataFrame:
        frames = [pd.read_parquet(p) for p in [self.results_path, *self._parts()] if p.exists()]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame()
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return df.drop_duplicates("key", keep="first").reset_index(drop=True)

    def consolidate(self) -> pd.DataFrame:
        """Merge the parts into results.parquet (one row per key, sorted) and delete them."""
        parts = self._parts()
        df = self._read_all()
        if df.empty and not self.results_path.exists():
            return df
        df = sort_rows(normalise(df))
        table = pa.Table.from_pandas(df, preserve_index=False)
        _atomic_write(self.results_path, lambda tmp: pq.write_table(table, tmp))
        for p in parts:  # a crash before this only leaves duplicates that reads drop
            p.unlink(missing_ok=True)
        return df

    def load(self) -> pd.DataFrame:
        """Every stored row (consolidated file + pending parts), one per key."""
        df = self._read_all()
        return sort_rows(df) if not df.empty else df

    def write_text(self, name: str, text: str) -> None:
        _atomic_write(self.root / name, lambda tmp: tmp.write_text(text))

    def read_json(self, name: str) -> Any:
        path = self.root / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None


def sort_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows and columns in a fixed order (so equal results give equal files whoever ran them,
    in whatever order the rows arrived): the key first, then the columns by name."""
    cols = [c for c in ORDER if c in df]
    if "key" in df:
        df = df[["key", *sorted(c for c in df.columns if c != "key")]]
    if not cols:
        return df
    return df.sort_values([*cols, "key"], na_position="last", kind="stable").reset_index(drop=True)


def load_results(path: str | Path, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Results of a results directory (or a .parquet file); ExperimentError if there are none."""
    path = Path(path)
    if path.is_file() and path.suffix == ".parquet":
        return pd.read_parquet(path, columns=list(columns) if columns else None)
    if not path.is_dir():
        raise ExperimentError(f"results directory {path} does not exist")
    df = ResultsStore(path).load()
    if df.empty:
        raise ExperimentError(f"no results in {path}: expected {RESULTS} or {PARTS}/part-*.parquet "
                              "(run `weightstream sweep SPEC --out DIR` first)")
    return df
