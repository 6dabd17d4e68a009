"""Schedule IR: JSON round trip and the validator's rejections, each naming the step."""

from __future__ import annotations

import json

import pytest

from sim import ScheduleError, plan, simulate
from sim.schedule import Compute, Free, InvocationInfo, Load, Schedule, validate_schedule


def tiny() -> Schedule:
    return Schedule("hand", "w", "toy", None, {"a": 10, "b": 20},
                    [InvocationInfo("w", "w")])


def test_round_trip_simulates_identically(toy_profile, three_layers, tmp_path):
    s = plan("pipeline", three_layers, toy_profile, depth=2)
    s.save(tmp_path / "s.json")
    s2 = Schedule.load(tmp_path / "s.json")
    assert s2.steps == s.steps and s2.tensor_bytes == s.tensor_bytes
    a = simulate(s, toy_profile).metrics.to_dict()
    b = simulate(s2, toy_profile).metrics.to_dict()
    assert a == b


def test_compute_twice_rejected():
    s = tiny()
    s.add(Compute, op="x", invocation=0)
    s.add(Compute, op="x", invocation=0)
    with pytest.raises(ScheduleError, match="step 1: op 'x' of invocation 0 is computed twice"):
        validate_schedule(s)


def test_use_before_load_rejected():
    s = tiny()
    s.add(Compute, op="x", invocation=0, weights=("a",))
    with pytest.raises(ScheduleError, match="step 0 .* uses tensor 'a' before it is loaded"):
        validate_schedule(s)


def test_compute_not_waiting_for_its_load_rejected():
    s = tiny()
    s.add(Load, tensors=("a",), bytes=10)
    s.add(Compute, op="x", invocation=0, weights=("a",))
    with pytest.raises(ScheduleError, match="does not wait for its load \\(step 0\\)"):
        validate_schedule(s)


def test_free_before_last_use_rejected():
    s = tiny()
    s.add(Load, tensors=("a",), bytes=10)
    s.add(Compute, op="x", invocation=0, weights=("a",), after=(0,))
    s.add(Free, tensors=("a",), after=(0,))
    with pytest.raises(ScheduleError, match="step 2 \\(free\\) frees tensor 'a' before its last use"):
        validate_schedule(s)


def test_wrong_bytes_and_forward_refs_rejected():
    s = tiny()
    s.add(Load, tensors=("a",), bytes=11)
    with pytest.raises(ScheduleError, match="bytes 11 differ"):
        validate_schedule(s)
    s = tiny()
    s.add(Load, tensors=("a",), bytes=10, after=(3,))
    with pytest.raises(ScheduleError, match="not an earlier step"):
        validate_schedule(s)


@pytest.mark.parametrize("text,match", [
    ("{not json", "not valid JSON"),
    ('{"format": "other"}', "not a weightstream schedule"),
    ('{"format": "weightstream-schedule", "steps": []}', "missing the field"),
    ('{"format": "weightstream-schedule", "policy": "p", "workload": "w", "profile": "x",'
     ' "tensor_bytes": {}, "invocations": [{"label": "m", "model": "m"}],'
     ' "steps": [{"step": "teleport", "id": 0}]}',
     "unknown step type 'teleport'"),
])
def test_malformed_files_rejected(tmp_path, text, match):
    f = tmp_path / "bad.json"
    f.write_text(text)
    with pytest.raises(ScheduleError, match=match):
        Schedule.load(f)


def test_saved_json_is_plain(toy_profile, three_layers, tmp_path):
    plan("sequential", three_layers, toy_profile).save(tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["format"] == "weightstream-schedule"
    assert [st["step"] for st in data["steps"]][:3] == ["load", "compute", "free"]
