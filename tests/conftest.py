"""Shared fixtures: a round-number profile and small synthetic models for hand checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwprofiles import load_profile

from helpers import linear_chain

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def toy_profile():
    """1 GB/s flash, 2 GB/s copy, 4 GB/s transform, 1 TFLOPS fp16, no latencies."""
    return load_profile(str(DATA / "toy.yaml"))


@pytest.fixture
def three_layers():
    return linear_chain()
