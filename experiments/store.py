"""The results store: one Parquet row per run, keyed by a hash of the run's inputs, resumable,
shared safely by several writers (sweeps in several processes or on several machines that see
one folder).

Layout of a results directory:

    DIR/results.parquet            every finished run (consolidated; one row per key)
    DIR/runs/part-<ns>-<pid>-<random>.parquet   rows written since the last consolidation
    DIR/spec.yaml                  the sweep spec of the last sweep that ran something here
    DIR/budgets.json               resolved automatic budgets (so a resume skips that work)
    DIR/.lock                      advisory lock (flock) taken to read and to consolidate

Every file is written to a temporary name in the same folder, flushed to disk and renamed into
place, so a killed writer leaves only whole files. Part names are unique per writer (time, pid,
random), so writers never overwrite each other; consolidation (merge the parts into
results.parquet, delete them) holds the lock exclusively and deletes only the parts it merged,
and readers hold it shared, so no row is lost when sweeps run concurrently.

Rows are found by key. A key stored twice (two writers ran the same run) counts once: a result
(`status` ok or infeasible) wins over an error, the earliest result is kept, and of errors only
the latest. Error rows keep their message but do not count as done: the next sweep runs them
again (unless it is told not to retry errors).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from experiments.errors import ExperimentError, file_in_the_way, fs_error

try:  # POSIX advisory locks; elsewhere writers still never collide, reads are unguarded
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

RESULTS = "results.parquet"
PARTS = "runs"
LOCK = ".lock"
SEQUENCES = {list, tuple, np.ndarray}
ORDER = ("model", "profile", "dtype", "policy", "budget_bytes")
REQUIRED = ("key", "model", "profile", "dtype", "policy", "policy_name", "feasible")
ERROR = "error"


def atomic_write(path: Path, write: Callable[[Path], Any], what: str = "write") -> None:
    """Call write(tmp_path), flush it to disk, rename it onto `path` (same folder: atomic on
    POSIX). A failure removes the temporary file and raises ExperimentError naming `path`."""
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise ExperimentError(f"cannot {what} {path}: {blocker} is a file, not a folder; "
                              "choose another path")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise fs_error(exc, what, path) from None
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


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


def is_error(df: pd.DataFrame) -> pd.Series:
    """Rows of runs that raised (status 'error'): stored with their message, not results."""
    if "status" not in df:
        return pd.Series(False, index=df.index)
    return df["status"].eq(ERROR).fillna(False).astype(bool)


def _one_per_key(df: pd.DataFrame) -> pd.DataFrame:
    """One row per key from rows in write order: the first result, else the latest error."""
    n = len(df)
    order = np.arange(n)
    rank = np.where(is_error(df).to_numpy(), 2 * n - order, order)
    keep = (df.assign(_rank=rank).sort_values("_rank", kind="stable")
            .drop_duplicates("key", keep="first").index)
    return df.loc[sorted(keep)].reset_index(drop=True)


class ResultsStore:
    """A results directory: append rows in atomic parts, consolidate, read back."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def results_path(self) -> Path:
        return self.root / RESULTS

    def ensure_dir(self) -> None:
        """Create the results directory or say why it cannot be (its parts folder and lock
        file are made by the first write, so a sweep that fails first changes nothing)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fs_error(exc, "create the results directory", self.root) from None
        for folder in (self.root, self.root / PARTS):
            if folder.exists() and not folder.is_dir():
                raise ExperimentError(f"cannot use {folder} as a results directory: it is a "
                                      "file; choose another --out")

    @contextmanager
    def lock(self, exclusive: bool = False) -> Iterator[None]:
        """Hold the directory's advisory lock (shared to read, exclusive to consolidate). In a
        folder where the lock file cannot be created (read-only) nobody writes: no lock."""
        if fcntl is None or not self.root.is_dir():
            yield
            return
        path = self.root / LOCK
        try:  # readers never create the lock file: reading leaves a directory as it was
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644) if exclusive else \
                os.open(path, os.O_RDONLY)
        except OSError:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:  # no lock file (a directory no writer of this version touched)
                yield
                return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def _parts(self) -> list[Path]:
        return sorted((self.root / PARTS).glob("part-*.parquet"))

    def _files(self) -> list[Path]:
        return [p for p in [self.results_path, *self._parts()] if p.exists()]

    def _table(self, path: Path, columns: list[str] | None = None) -> pa.Table | None:
        """One results file as an Arrow table (None if it vanished: merged by another
        writer); an unreadable or foreign file is an ExperimentError saying what to do."""
        try:
            pf = pq.ParquetFile(path)
            names = pf.schema_arrow.names
            if "key" in names:
                return pf.read(columns=None if columns is None else
                               [c for c in columns if c in names])
        except FileNotFoundError:  # merged and removed by a writer that holds no lock
            return None
        except (OSError, pa.ArrowException, ValueError) as exc:
            what = ("a results part" if path.parent.name == PARTS else "the results file")
            lost = ("its rows will be run again" if path.parent.name == PARTS
                    else "every run in it will be run again; or restore it from a backup")
            raise ExperimentError(f"{what} {path} is unreadable ({_short(exc)}): it is not a whole "
                                  f"Parquet file; delete it (or move it away) and run the same "
                                  f"command again ({lost})") from None
        raise ExperimentError(f"{path} is not a weightstream results file (it has no 'key' "
                              f"column); move it out of {self.root}")

    def done_keys(self, include_errors: bool = False) -> set[str]:
        """Keys of every stored result; error rows count only with `include_errors`."""
        with self.lock():
            tables = [self._table(p, ["key", "status"]) for p in self._files()]
        keys: set[str] = set()
        for t in tables:
            if t is None:
                continue
            if not include_errors and "status" in t.column_names:
                t = t.filter(pc.fill_null(pc.not_equal(t.column("status"), ERROR), True))
            keys.update(t.column("key").to_pylist())
        return keys

    def append(self, rows: list[dict[str, Any]]) -> Path | None:
        """Write `rows` as one new part file (atomically, under a name no other writer uses)."""
        if not rows:
            return None
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        path = self.root / PARTS / name
        table = pa.Table.from_pandas(normalise(pd.DataFrame(rows)), preserve_index=False)
        atomic_write(path, lambda tmp: pq.write_table(table, tmp),
                     f"save {len(rows)} finished run(s) to")
        return path

    def _read_all(self, files: list[Path]) -> pd.DataFrame:
        tables = [t for t in (self._table(p) for p in files) if t is not None and t.num_rows]
        if not tables:
            return pd.DataFrame()
        try:  # one Arrow concatenation is much faster than many pandas ones
            df = pa.concat_tables(tables, promote_options="permissive").to_pandas()
        except (pa.ArrowException, ValueError):  # parts whose column types cannot be unified
            df = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
        return _one_per_key(df)

    def consolidate(self) -> pd.DataFrame:
        """Merge the parts into results.parquet (one row per key, sorted) and delete them; with
        no parts nothing is written (a complete directory may be read-only)."""
        with self.lock(exclusive=True):
            parts = self._parts()
            files = [p for p in [self.results_path, *parts] if p.exists()]
            df = self._read_all(files)
            if not parts or df.empty:
                return sort_rows(df) if not df.empty else df
            df = sort_rows(normalise(df))
            table = pa.Table.from_pandas(df, preserve_index=False)
            atomic_write(self.results_path, lambda tmp: pq.write_table(table, tmp),
                         "write the merged results to")
            for p in parts:  # only the parts merged above; a crash here leaves duplicates
                _unlink_quietly(p)
        return df

    def load(self) -> pd.DataFrame:
        """Every stored row (consolidated file + pending parts), one per key."""
        with self.lock():
            df = self._read_all(self._files())
        return sort_rows(df) if not df.empty else df

    def write_text(self, name: str, text: str) -> None:
        """Write DIR/name atomically, unless it already holds exactly `text`."""
        path = self.root / name
        try:
            if path.read_text(encoding="utf-8") == text:
                return
        except (OSError, UnicodeDecodeError):
            pass
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def read_json(self, name: str) -> Any:
        """DIR/name as JSON, or None if it is absent or unreadable (a cache)."""
        path = self.root / name
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def update_json(self, name: str, updates: dict[str, Any]) -> None:
        """Merge `updates` into the JSON object DIR/name under the lock (concurrent writers
        each add their entries)."""
        with self.lock(exclusive=True):
            data = self.read_json(name)
            data = {**(data if isinstance(data, dict) else {}), **updates}
            self.write_text(name, json.dumps(data, indent=1, sort_keys=True))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


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
    if path.is_file():
        if path.suffix != ".parquet":
            raise ExperimentError(f"{path} is neither a results directory nor a .parquet file")
        try:
            df = pd.read_parquet(path, columns=list(columns) if columns else None)
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise ExperimentError(f"cannot read results file {path}: {_short(exc)}") from None
    elif not path.is_dir():
        raise ExperimentError(f"results directory {path} does not exist")
    else:
        df = ResultsStore(path).load()
        if df.empty:
            raise ExperimentError(f"no results in {path}: expected {RESULTS} or "
                                  f"{PARTS}/part-*.parquet (run `weightstream sweep SPEC --out DIR` "
                                  "first)")
    missing = [c for c in (*REQUIRED, *(columns or ())) if c not in df]
    if missing:
        raise ExperimentError(f"{path} is not a weightstream results file (no column "
                              f"{missing[0]!r}); give a results directory written by "
                              "`weightstream sweep`")
    return df
