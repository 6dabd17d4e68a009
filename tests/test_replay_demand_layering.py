"""Demand Layering's schedules replayed on a real OpenCL device (PoCL in CI): preallocated
buffers, sector-rounded reads, the sync barrier and the copy gating hold in measured time, and a
reader with several reads in flight runs them; skipped when no OpenCL device exists."""

from __future__ import annotations

import pytest

from sim import Compute, Load, plan
from workloads import Op, Tensor, chain, single


@pytest.fixture(scope="module")
def device():
    from validate.device import open_device
    from validate.errors import ValidateError

    try:
        return open_device("pocl")
    except ValidateError:
        try:
            return open_device(None)
        except ValidateError as exc:
            pytest.skip(str(exc))


def small_cnn():
    ops = [Op(f"c{i}", "conv", flops=2 * 10**6,
              weights=(Tensor(f"m/c{i}", (16, 16, 3, 3 + 20 * (i % 3)), "fp32"),),
              input_elems=4096, output_elems=4096) for i in range(6)]
    return single(chain("m", ops))


@pytest.mark.parametrize("variant,reads", [("sync", 1), ("async", 2)])
def test_replay_keeps_buffers_barriers_and_copy_gating(device, variant, reads):
    from hwprofiles import load_profile
    from validate.replay import ReplayOptions, replay

    prof = load_profile("pocl-cpu")
    opts = {"variant": variant} if variant == "sync" else {"variant": variant, "depth": 2}
    s = plan("demand-layering", small_cnn(), prof, **opts)
    r = replay(device, s, ReplayOptions(reads_in_flight=reads))
    held = sum(b["bytes"] for b in s.buffers.values())
    assert r.latency_s > 0 and r.peak_memory_bytes >= held
    read_end, copy_start, end = {}, {}, {}
    for i in r.trace.intervals:
        end[i.step] = max(end.get(i.step, 0.0), i.end)
        if i.resource == "storage":
            read_end[i.step] = i.end
        if i.resource == "copy":
            copy_start[i.step] = i.start
    gpu = {i.step: i for i in r.trace.intervals if i.resource == "gpu"}
    assert len(gpu) == len(s.computes)
    tol = 1e-4
    for st in s.steps:
        if isinstance(st, Compute):
            for lid in st.after_read:  # the lock-step barrier: the next layer's read has ended
                assert gpu[st.id].start >= read_end[lid] - tol
        if isinstance(st, Load):
            for cid in st.copy_after:  # a GPU slot is reused only after its kernel ended
                assert copy_start[st.id] >= end[cid] - tol
    if variant == "sync":
        assert any(st.after_read for st in s.computes)


def test_replay_reads_gathered_rows_one_request_each(device, tmp_path):
    """GPT-2's flashmem plan gathers its embedding rows (a row-sized request each): the replay
    lays the rows apart in its file (past the readahead) and reads each with its own request,
    as the schedule says, instead of the rows' bytes in one read."""
    from hwprofiles import load_profile
    from validate.reader import align_up
    from validate.replay import GATHER_SPAN, GATHER_STRIDE, ReplayOptions, _Replay
    from workloads.zoo import get_model

    prof = load_profile("pocl-cpu")
    m = get_model("gpt2", "fp16", tokens=8)
    s = plan("flashmem", single(m), prof, 2 * m.weight_bytes)
    gathered = [st for st in s.loads if st.request_bytes]
    assert gathered
    rp = _Replay(device, s, ReplayOptions(), tmp_path)
    try:
        rp.prepare()
        for st in gathered:
            ls = rp.loads[st.id]
            n = -(-st.bytes // st.request_bytes)
            assert len(ls.pieces) == n and ls.piece == align_up(st.request_bytes)
            gaps = {b - a for a, b in zip(ls.pieces, ls.pieces[1:], strict=False)}
            assert all(GATHER_STRIDE >= g >= min(GATHER_STRIDE, GATHER_SPAN // n) for g in gaps)
        rp.run()
        trace = rp.trace()
    finally:
        rp.close()
    reads = {i.step: i for i in trace.intervals if i.resource == "storage"}
    assert all(reads[st.id].end > reads[st.id].start for st in gathered)


def test_a_replay_that_cannot_get_memory_says_what_waits_and_who_holds_it(device):
    """A schedule whose budget is cut below what its second layer needs stalls in the replay:
    the error names the waiting request, the bytes in use by category and the unfinished steps
    holding them (what tells a replay-only deadlock apart from an engine one)."""
    from dataclasses import replace

    from hwprofiles import load_profile
    from validate.errors import ValidateError
    from validate.replay import ReplayOptions, replay

    prof = load_profile("pocl-cpu")
    s = plan("sequential", small_cnn(), prof, None, path="direct")
    biggest = max(st.bytes for st in s.loads)
    tight = replace(s, budget_bytes=biggest + 4096)
    with pytest.raises(ValidateError) as exc:
        replay(device, tight, ReplayOptions())
    msg = str(exc.value)
    assert "cannot complete within the budget" in msg and "waiting for memory: step " in msg
    assert f"of {biggest + 4096} bytes in use" in msg and "held by unfinished steps:" in msg
