"""Shared fixtures: a round-number profile and small synthetic models for hand checks."""

from __future__ import annotations

from dataclasses import replace
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
def fast_flash(toy_profile):
    """The toy profile with 10 GB/s flash: a 1 GB layer reads in 0.1 s."""
    return replace(toy_profile, storage=replace(toy_profile.storage, read_bandwidth=10e9))


@pytest.fixture
def three_layers():
    return linear_chain()
