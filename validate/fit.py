"""Least-squares fits of the simulator's latency + bytes/bandwidth models (numpy only).

All fits minimise relative squared error, so small and large transfers weigh alike; each
returns its RMS relative residual for the profile's source notes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hwprofiles.schema import StorageSpec
from hwprofiles.storage import read_time


@dataclass(frozen=True)
class Fit:
    """y ~ latency + x / bandwidth (latency may be 0 for origin fits)."""

    latency: float
    bandwidth: float
    residual: float  # RMS relative error
    points: int

    def note(self) -> str:
        return f"fit residual {self.residual:.1%} RMS over {self.points} points"


def _rms_rel(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(((pred - y) / y) ** 2))) if len(y) else 0.0


def fit_latency_bandwidth(x: Sequence[float], y: Sequence[float]) -> Fit:
    """Fit y = a + x / bw with a >= 0, bw > 0 (weighted by 1/y)."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    keep = ys > 0
    xs, ys = xs[keep], ys[keep]
    if len(xs) == 0:
        raise ValueError("no points to fit")
    if len(xs) >= 2:
        a_mat = np.stack([1 / ys, xs / ys], axis=1)
        (a, b), *_ = np.linalg.lstsq(a_mat, np.ones_like(ys), rcond=None)
        if a >= 0 and b > 0:
            return Fit(float(a), float(1 / b), _rms_rel(a + b * xs, ys), len(xs))
    return fit_bandwidth(xs, ys)


def fit_bandwidth(x: Sequence[float], y: Sequence[float]) -> Fit:
    """Fit y = x / bw through the origin (weighted by 1/y)."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    keep = ys > 0
    xs, ys = xs[keep], ys[keep]
    r = xs / ys
    b = float(np.sum(r) / np.sum(r * r))
    return Fit(0.0, 1 / b, _rms_rel(b * xs, ys), len(xs))


@dataclass(frozen=True)
class StorageFit:
    """Fitted request latency and bandwidth of the storage request model."""

    request_latency: float
    read_bandwidth: float
    residual: float
    points: int

    def note(self) -> str:
        return f"fit residual {self.residual:.1%} RMS over {self.points} reads"


def fit_storage(points: Sequence[dict[str, float]], kind: str = "file") -> StorageFit:
    """Fit (request_latency, read_bandwidth) of `hwprofiles.storage.read_time` to reads of
    `total` bytes in `size` requests kept `qd` deep taking `seconds` (log-grid search, refined)."""
    pts = [p for p in points if p["seconds"] > 0]
    if not pts:
        raise ValueError("no storage points to fit")
    ys = np.array([p["seconds"] for p in pts])

    def err(t0: float, bw: float) -> float:
        pred = np.array([read_time(StorageSpec(kind, bw, t0, int(p["qd"]), int(p["size"])),
                                   int(p["total"])) for p in pts])
        return _rms_rel(pred, ys)

    best = (math.inf, 1e-5, 1e9)
    t0s, bws = np.logspace(-7, -1.5, 34), np.logspace(7, 11.5, 46)
    for _ in range(3):
        for t0 in t0s:
            for bw in bws:
                e = err(float(t0), float(bw))
                if e < best[0]:
                    best = (e, float(t0), float(bw))
        t0s = best[1] * np.logspace(-0.25, 0.25, 15)
        bws = best[2] * np.logspace(-0.15, 0.15, 15)
    return StorageFit(best[1], best[2], best[0], len(pts))
