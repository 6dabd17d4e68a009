"""Results of a tune: trial rows from the studies, their export to the Parquet store, the best
trials, the Pareto front and the best-found-versus-evaluations curves of search and grid."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.spec import digest_of
from experiments.store import ResultsStore
from experiments.tune_spec import TuneSpec

TRIAL_COLUMNS = ("tune", "search", "trial", "trial_state", "params", "objective_values",
                 "constraint_values", "constraints_met", "retry_of")


def trial_rows(spec: TuneSpec, studies: dict[str, Any]) -> pd.DataFrame:
    """One row per complete trial of every study, in completion order within each search."""
    import optuna

    frames = []
    for search, study in studies.items():
        uid = study.user_attrs.get("uid", study.study_name)
        trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        trials = sorted(trials, key=lambda t: (t.datetime_complete, t.number))
        rows = []
        for order, t in enumerate(trials):
            row = json.loads(t.user_attrs["row"])
            config, cons = row.pop("config", {}), row.pop("constraint_values", [])
            row.update({
                "key": digest_of({"study": uid, "trial": t.number}, 24),
                "tune": spec.name, "search": search, "trial": t.number, "evaluation": order + 1,
                "tune_objective": spec.objectives[0].metric,
                "tune_direction": spec.objectives[0].direction,
                "trial_state": "complete",
                "params": json.dumps(t.params, sort_keys=True, default=str),
                "config": json.dumps(config, sort_keys=True, default=str),
                "objective_values": list(t.values),
                "constraint_values": list(cons),
                "retry_of": t.system_attrs.get("failed_trial"),
            })
            rows.append(row)
        if rows:
            frames.append(pd.DataFrame(rows))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def export(df: pd.DataFrame, out_dir: str | Path) -> int:
    """Store trial rows not yet in the results folder (keyed by study and trial); returns how
    many were added. Safe to repeat after a resume: a key is never stored twice."""
    if df.empty:
        return 0
    store = ResultsStore(out_dir)
    done = store.done_keys()
    new = df[~df["key"].isin(done)]
    if not new.empty:
        store.append(new.to_dict("records"))
    store.consolidate()
    return len(new)


def feasible(df: pd.DataFrame) -> pd.DataFrame:
    """Trials whose run was feasible and met every constraint."""
    if df.empty:
        return df
    return df[df["constraints_met"].astype(bool) & (df["status"] == "ok")]


def _loss(df: pd.DataFrame, spec: TuneSpec) -> np.ndarray:
    """Objective values as losses (maximized metrics negated), shape (rows, objectives)."""
    cols = []
    for o in spec.objectives:
        v = df[o.metric].astype(float).to_numpy()
        cols.append(v if o.direction == "minimize" else -v)
    return np.column_stack(cols) if cols else np.empty((len(df), 0))


def pareto(df: pd.DataFrame, spec: TuneSpec) -> pd.DataFrame:
    """Feasible trials not dominated in every objective (the best trial for one objective),
    sorted by the first objective."""
    ok = feasible(df)
    if ok.empty:
        return ok
    loss = _loss(ok, spec)
    keep = []
    for i in range(len(ok)):
        dominated = np.any(np.all(loss <= loss[i], axis=1) & np.any(loss < loss[i], axis=1))
        if not dominated:
            keep.append(i)
    front = ok.iloc[keep]
    front = front.assign(_l=loss[keep, 0]).sort_values(["_l", "trial"], kind="stable")
    return front.drop(columns="_l").drop_duplicates("config")


def best(df: pd.DataFrame, spec: TuneSpec, top: int = 5) -> pd.DataFrame:
    """The `top` feasible trials by the first objective (distinct configurations)."""
    ok = feasible(df)
    if ok.empty:
        return ok
    o = spec.objectives[0]
    ok = ok.sort_values([o.metric, "trial"], ascending=[o.direction == "minimize", True],
                        kind="stable")
    return ok.drop_duplicates("config").head(top)


def hypervolume(loss: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of loss points dominated within `ref` (Optuna's exact WFG computation)."""
    from optuna._hypervolume import compute_hypervolume

    inside = loss[np.all(loss < ref, axis=1)]
    return float(compute_hypervolume(inside, ref)) if len(inside) else 0.0


def convergence(df: pd.DataFrame, spec: TuneSpec) -> pd.DataFrame:
    """Per search and evaluation: the best feasible first-objective value so far (one
    objective) or the hypervolume of the feasible points so far (several; reference point:
    the worst feasible value of each objective over both searches, plus 10% of its range)."""
    rows: list[dict[str, Any]] = []
    if df.empty:
        return pd.DataFrame(columns=["search", "evaluation", "best"])
    ok_all = feasible(df)
    ref = None
    if spec.multi and not ok_all.empty:
        loss = _loss(ok_all, spec)
        span = loss.max(axis=0) - loss.min(axis=0)
        ref = loss.max(axis=0) + 0.1 * np.where(span > 0, span, np.abs(loss.max(axis=0)) + 1)
    o = spec.objectives[0]
    sign = 1.0 if o.direction == "minimize" else -1.0
    for search, g in df.groupby("search", sort=False):
        g = g.sort_values("evaluation")
        best_so_far = np.inf
        pts: list[np.ndarray] = []
        for _, r in g.iterrows():
            met = bool(r["constraints_met"]) and r["status"] == "ok"
            if spec.multi:
                if met and ref is not None:
                    pts.append(_loss(pd.DataFrame([r]), spec)[0])
                value = hypervolume(np.array(pts), ref) if pts and ref is not None else 0.0
            else:
                if met:
                    best_so_far = min(best_so_far, sign * float(r[o.metric]))
                value = sign * best_so_far if np.isfinite(best_so_far) else np.nan
            rows.append({"search": search, "evaluation": int(r["evaluation"]), "best": value})
    return pd.DataFrame(rows)


@dataclass
class TuneOutcome:
    """What a tune produced: trial rows, best trials, Pareto front, curves and counts."""

    spec: TuneSpec
    storage: str
    results: pd.DataFrame
    best: pd.DataFrame
    pareto: pd.DataFrame
    curves: pd.DataFrame
    grid_points: int
    executed: dict[str, int] = field(default_factory=dict)
    states: dict[str, dict[str, int]] = field(default_factory=dict)
    exported: int = 0
    wall_s: float = 0.0
    out_dir: Path = Path(".")

    def best_value(self, search: str) -> float | None:
        """Best first-objective value (or final hypervolume) of a search at the trial budget."""
        c = self.curves[(self.curves["search"] == search)
                        & (self.curves["evaluation"] <= self.spec.trials)]
        if c.empty or c["best"].isna().all():
            return None
        return float(c.sort_values("evaluation")["best"].iloc[-1])

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (written to tune-summary.json)."""
        cols = ["search", "trial", "config", *[o.metric for o in self.spec.objectives]]
        return {
            "name": self.spec.name, "storage": self.storage, "trials": self.spec.trials,
            "objectives": [f"{o.direction} {o.metric}" for o in self.spec.objectives],
            "grid_points": self.grid_points, "states": self.states,
            "best_value": {s: self.best_value(s) for s in self.states},
            "best": _records(self.best[cols]) if len(self.best) else [],
            "pareto": _records(self.pareto[cols]) if len(self.pareto) else [],
        }


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(df.to_json(orient="records", double_precision=15))
