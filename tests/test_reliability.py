"""Reliability with real processes: several writers into one results directory, signals and
kills at random moments, workers that die (process pool and Dask), Dask schedulers that are
absent, not Dask, or die, a full disk and a read-only results directory. Every test is bounded
in time and checks that no process it caused is left running."""

from __future__ import annotations

import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml
from click.testing import CliRunner

from experiments.cli import main
from experiments.errors import ExperimentError
from experiments.runners import PoolRunner, SerialRunner
from experiments.runs import TIMING_COLUMNS, expand
from experiments.spec import parse_spec
from experiments.store import ResultsStore
from experiments.sweep import run_sweep

TESTS = Path(__file__).parent
TOY = str(TESTS / "data" / "toy.yaml")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
       "WEIGHTSTREAM_TEST_DELAY_S": "0.05"}  # runs in subprocesses last long enough to interrupt
CLI = [sys.executable, "-m", "experiments.cli"]


def chains(n: int, prefix: str = "c") -> list[dict]:
    """`n` small chains; each run sleeps $WEIGHTSTREAM_TEST_DELAY_S (set for subprocesses)."""
    return [{"factory": "helpers:slow_chain", "name": f"{prefix}{i}",
             "args": {"n": 3 + i % 3, "weight_elems": 5_000_000, "name": f"{prefix}{i}"}}
            for i in range(n)]


def spec_dict(models: list[dict], budgets: list | None = None, **over: object) -> dict:
    return {"name": "r", "models": models, "profiles": [TOY],
            "policies": ["preload", "sequential", {"name": "pipeline", "options": {"depth": 2}}],
            "budgets": budgets or ["25MB", "40MB", "unlimited"], **over}


def write_spec(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    df = df.drop(columns=[c for c in (*TIMING_COLUMNS, "error") if c in df])
    return df.sort_values("key").reset_index(drop=True)


def clean_results(data: dict, root: Path) -> pd.DataFrame:
    return comparable(run_sweep(parse_spec(data), root, SerialRunner(), progress=False).results)


def descendants(pid: int) -> list[psutil.Process]:
    """Processes started by `pid`, except multiprocessing's resource tracker (one per parent,
    alive as long as the parent is: not an orphan)."""
    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for p in procs:
        try:
            if "resource_tracker" not in " ".join(p.cmdline()) or pid != os.getpid():
                out.append(p)
        except psutil.Error:
            pass  # already gone
    return out


def assert_all_gone(procs: list[psutil.Process], timeout: float = 5.0) -> None:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:  # leave nothing behind even when failing
        p.kill()
    assert not alive, f"left running: {[(p.pid, p.cmdline()[:3]) for p in alive]}"


def stored_keys(root: Path) -> set[str]:
    return ResultsStore(root).done_keys(include_errors=True)


# --- several writers ----------------------------------------------------------------------------

def test_four_concurrent_sweeps_into_one_directory_lose_and_duplicate_nothing(tmp_path):
    """Two sweeps of the same spec (every key raced twice) and two of other budgets, at once."""
    specs = [spec_dict(chains(4), ["25MB", "40MB", "unlimited"]),
             spec_dict(chains(4), ["25MB", "40MB", "unlimited"]),
             spec_dict(chains(4), ["30MB", "50MB"]),
             spec_dict(chains(4), ["35MB", "60MB", "1GB"])]
    out = tmp_path / "shared"
    procs = [subprocess.Popen([*CLI, "sweep", str(write_spec(tmp_path / f"s{i}.yaml", d)),
                               "--out", str(out), "--workers", "1", "--no-progress",
                               "--no-plots"], env={**ENV, "WEIGHTSTREAM_TEST_DELAY_S": "0.005"}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i, d in enumerate(specs)]
    try:
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0 and "Traceback" not in err, err
    expected = {r.key for d in specs for r in expand(parse_spec(d))}
    assert len(expected) == 12 * (3 + 2 + 3)  # specs 0 and 1 share their keys
    merged = pd.read_parquet(out / "results.parquet")  # the last sweep merged every part
    assert not list((out / "runs").glob("part-*.parquet"))
    assert merged["key"].is_unique and set(merged["key"]) == expected
    assert (merged["status"] != "error").all()
    # the raced rows equal the ones a clean serial sweep computes
    clean = clean_results(specs[0], tmp_path / "clean")
    raced = comparable(merged[merged["key"].isin(clean["key"])])
    pd.testing.assert_frame_equal(raced[clean.columns], clean, check_dtype=False)


WRITER = """
import sys
from experiments.store import ResultsStore
tag, root = sys.argv[1], sys.argv[2]
store = ResultsStore(root)
for i in range(50):
    store.append([{"key": f"{tag}-{i}-{j}", "model": "m", "profile": "p", "dtype": "fp16",
                   "policy": tag, "budget_bytes": i, "feasible": True, "status": "ok"}
                  for j in range(3)])
    if i % 5 == 4:
        store.consolidate()
    if i % 9 == 0:  # a reader never misses a stored row while the other process consolidates
        assert {f"{tag}-{i}-{j}" for j in range(3)} <= store.done_keys()
"""


def test_one_store_used_from_two_processes_loses_nothing(tmp_path):
    """(The store before this test existed lost 117-150 of these 300 rows, and crashed.)"""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, tag, str(tmp_path)], env=ENV,
                              stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    try:
        errs = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], errs
    df = ResultsStore(tmp_path).consolidate()
    assert len(df) == 300 and df["key"].is_unique
    assert set(df["key"]) == {f"{t}-{i}-{j}" for t in "ab" for i in range(50) for j in range(3)}


# --- signals and kills --------------------------------------------------------------------------

SLOW = spec_dict(chains(10, "s"))  # 90 runs, ~65 ms each in a subprocess


@pytest.fixture(scope="module")
def slow_clean(tmp_path_factory):
    return clean_results(SLOW, tmp_path_factory.mktemp("clean"))


@pytest.mark.parametrize("sig, workers, when", [
    (signal.SIGTERM, 2, "after a flush"), (signal.SIGINT, 1, "after a flush"),
    (signal.SIGKILL, 2, "any time")])
def test_signal_at_a_random_moment_then_resume_equals_a_clean_run(tmp_path, slow_clean, sig,
                                                                  workers, when):
    """SIGTERM/SIGINT: finished rows pending at the signal are saved, workers stopped, exit
    128 + n, nothing half-written. SIGKILL: workers exit with their parent. Either way the
    resumed results equal a clean run's."""
    seed = time.time_ns()
    rng = random.Random(seed)
    out = tmp_path / "o"
    spec = write_spec(tmp_path / "slow.yaml", SLOW)
    # a sweep builds each workload once per chunk of runs: slow the builds (not the runs) so
    # the sweep lasts long enough to be interrupted
    p = subprocess.Popen([*CLI, "sweep", str(spec), "--out", str(out), "--workers",
                          str(workers), "--no-progress", "--no-plots"],
                         env={**ENV, "WEIGHTSTREAM_TEST_DELAY_S": "0.6"},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if when == "any time":  # from start-up (imports, spawning workers) to the last runs
            delay = rng.uniform(0.2, 3.0)
            time.sleep(delay)
        else:  # after the first flush, with finished rows pending
            deadline = time.monotonic() + 60
            while not list((out / "runs").glob("part-*.parquet")):
                assert time.monotonic() < deadline and p.poll() is None, p.communicate()
                time.sleep(0.05)
            delay = rng.uniform(0.2, 1.0)
            time.sleep(delay)
        before = len(stored_keys(out)) if out.exists() else 0
        procs = descendants(p.pid)
        finished = p.poll() is not None
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert_all_gone(procs)
    context = f"{sig.name} {when}, {delay:.2f} s (seed {seed}): {err}"
    if sig == signal.SIGKILL:
        assert p.returncode in ((0,) if finished else (0, -signal.SIGKILL)), context
    else:
        assert p.returncode == 128 + sig, context
        assert f"error: stopped by {sig.name}" in err and "Traceback" not in err, context
        assert len(stored_keys(out)) > before, context  # pending finished rows were saved
        assert not list(out.rglob("*.tmp")), context  # nothing half-written
    stored = stored_keys(out) if out.exists() else set()
    resumed = run_sweep(parse_spec(SLOW), out, SerialRunner(), progress=False)
    assert resumed.executed == 90 - len(stored) and resumed.skipped == len(stored)
    pd.testing.assert_frame_equal(comparable(resumed.results), slow_clean, check_dtype=False)


# --- dying workers and error rows ---------------------------------------------------------------

def test_a_run_that_kills_its_pool_worker_is_an_error_row_and_the_sweep_goes_on(tmp_path):
    data = spec_dict([*chains(3), {"factory": "helpers:fatal_chain", "name": "fatal"}],
                     ["40MB", "unlimited"], policies=["sequential"])
    pool = PoolRunner(1)
    try:
        out = run_sweep(parse_spec(data), tmp_path, pool, progress=False)
        procs = [psutil.Process(p.pid) for p in (pool._pool._processes or {}).values()] \
            if pool._pool else []
    finally:
        pool.close()
    assert_all_gone(procs)
    df = out.results
    fatal = df[df["model"] == "fatal"]
    assert len(df) == 8 and len(fatal) == 2 and out.errors == 2
    assert (fatal["status"] == "error").all()
    assert fatal["error"].str.startswith("WorkerDied: the worker process running this run died").all()
    assert (df[df["model"] != "fatal"]["status"] != "error").all()
    # summaries and plots leave error rows out instead of crashing on their missing metrics
    r = CliRunner().invoke(main, ["plot", str(tmp_path), "--out", str(tmp_path / "t.svg")])
    assert r.exit_code == 0, r.output


def test_error_rows_are_retried_unless_told_not_to(tmp_path, monkeypatch):
    """A run that failed (its cause since fixed) runs again on the next sweep; --no-retry keeps
    the error row; an all-error directory does not break `sweep` or `plot`."""
    marker = tmp_path / "broken"
    marker.write_text("")
    data = spec_dict([{"factory": "helpers:flaky_chain", "name": "flaky",
                       "args": {"marker": str(marker)}}], ["40MB"],
                     policies=["sequential", "preload"])
    spec = write_spec(tmp_path / "s.yaml", data)
    out = tmp_path / "o"
    args = ["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "2 errors" in r.output and "first error: RuntimeError: flaky" in r.output
    r = CliRunner().invoke(main, ["plot", str(out)])
    assert r.exit_code == 2 and "all 2 stored runs are errors" in r.output
    marker.unlink()  # the cause is fixed
    r = CliRunner().invoke(main, [*args, "--no-retry"])
    assert r.exit_code == 0 and "0 executed, 2 already stored" in r.output, r.output
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "2 executed, 0 already stored" in r.output, r.output
    df = ResultsStore(out).load()
    assert len(df) == 2 and set(df["status"]) == {"ok"}
    r = CliRunner().invoke(main, ["plot", str(out)])
    assert r.exit_code == 0, r.output


# --- Dask ---------------------------------------------------------------------------------------

distributed = pytest.importorskip("distributed", reason="dask[distributed] not installed")


def test_dask_run_that_kills_its_workers_is_an_error_row(tmp_path):
    import dask

    data = spec_dict([*chains(2), {"factory": "helpers:fatal_chain", "name": "fatal"}],
                     ["40MB", "unlimited"], policies=["sequential"])
    before = {p.pid for p in descendants(os.getpid())}
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=None) as cluster:
        out = run_sweep(parse_spec(data), tmp_path, scheduler=cluster.scheduler_address,
                        progress=False)
        procs = [p for p in descendants(os.getpid()) if p.pid not in before]
    df = out.results
    assert len(df) == 6
    fatal, others = df[df["model"] == "fatal"], df[df["model"] != "fatal"]
    assert (fatal["status"] == "error").all() and fatal["error"].str.contains("KilledWorker").all()
    # Dask also counts a death against the runs queued on that worker: those are error rows
    # too (run again by the next sweep); the others completed
    assert (others["status"] == "ok").any()
    assert others[others["status"] != "ok"]["error"].str.contains("KilledWorker").all()
    assert_all_gone(procs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dask_worker_and_scheduler_deaths_then_resume_equals_a_clean_run(tmp_path):
    data = spec_dict(chains(6, "d"), ["40MB", "unlimited"], policies=["sequential"])
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                              "127.0.0.1", "--port", str(port), "--no-dashboard"], **quiet)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr,
                               "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                              env=ENV, **quiet)
    rows: list[str] = []
    try:
        def on_row(row: dict) -> None:
            rows.append(row["key"])
            if len(rows) == 2:  # a worker dies: its nanny restarts it, the runs are redone
                for child in descendants(worker.pid):
                    child.kill()
            if len(rows) == 6:  # the scheduler dies: the sweep stops with a clear error
                sched.kill()

        t0 = time.monotonic()
        with pytest.raises(ExperimentError, match="lost the connection to the Dask scheduler"):
            run_sweep(parse_spec(data), tmp_path / "o", scheduler=addr, progress=False,
                      on_row=on_row, flush_s=0.2)
        assert time.monotonic() - t0 < 60
        procs = [psutil.Process(sched.pid), psutil.Process(worker.pid), *descendants(worker.pid)]
    finally:
        worker.terminate()
        sched.kill()
        worker.wait(20)
        sched.wait(20)
    assert_all_gone(procs, timeout=20)
    assert set(rows) <= stored_keys(tmp_path / "o") and len(rows) >= 6  # nothing received lost
    resumed = run_sweep(parse_spec(data), tmp_path / "o", SerialRunner(), progress=False)
    pd.testing.assert_frame_equal(comparable(resumed.results),
                                  clean_results(data, tmp_path / "clean"), check_dtype=False)


def test_dask_without_workers_or_scheduler_fails_fast_with_one_line(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", spec_dict(chains(1), ["40MB"]))
    base = ["sweep", str(spec), "--out", str(tmp_path / "o"), "--no-progress",
            "--dask-timeout", "1"]
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cl:
        t0 = time.monotonic()
        r = CliRunner().invoke(main, [*base, "--scheduler", cl.scheduler_address])
        assert time.monotonic() - t0 < 15
    assert r.exit_code == 2 and "has no worker (waited 1 s)" in r.output, r.output
    assert "dask worker" in r.output and "Traceback" not in r.output
    # a service on the port that is not Dask: it accepts the connection and says nothing
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True).start()
    try:
        t0 = time.monotonic()
        r = CliRunner().invoke(main, [*base, "--scheduler",
                                      f"tcp://127.0.0.1:{server.getsockname()[1]}"])
        assert time.monotonic() - t0 < 10
    finally:
        for s in (*held, server):
            s.close()
    assert r.exit_code == 2 and "cannot reach a Dask scheduler" in r.output, r.output
    assert not (tmp_path / "o").exists()  # nothing written before the cluster was reached


# --- the file system ----------------------------------------------------------------------------

def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


def test_a_full_disk_is_one_error_line_and_nothing_half_written(tmp_path):
    """Files may not grow past 20 kB (RLIMIT_FSIZE: the kernel refuses the write like a full
    disk): the first part file cannot be written."""
    data = spec_dict(chains(4), ["25MB", "40MB", "unlimited"])
    spec = write_spec(tmp_path / "s.yaml", data)
    out = tmp_path / "o"
    r = subprocess.run([*CLI, "sweep", str(spec), "--out", str(out), "--workers", "1",
                        "--no-progress"], env=ENV, capture_output=True, text=True, timeout=120,
                       preexec_fn=_limit_file_size)
    assert r.returncode == 2, r.stderr
    assert re.search(r"error: cannot save \d+ finished run\(s\) to \S+/o/runs/part-\S+\.parquet: "
                     r"File too large", r.stderr), r.stderr
    assert "Traceback" not in r.stderr
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("part-*"))
    resumed = run_sweep(parse_spec(data), out, SerialRunner(), progress=False)
    assert resumed.executed == 36


@pytest.fixture
def read_only(tmp_path):
    """Make a folder read-only for real (chmod; as root, a read-only bind mount)."""
    made: list[tuple[str, Path]] = []

    def make(path: Path) -> None:
        if os.geteuid() != 0:
            for p in [path, *path.rglob("*")]:
                p.chmod(p.stat().st_mode & ~0o222)
            made.append(("chmod", path))
            return
        ok = subprocess.run(["mount", "--bind", str(path), str(path)],
                            capture_output=True).returncode == 0 and subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(path)], capture_output=True).returncode == 0
        if not ok:
            subprocess.run(["umount", str(path)], capture_output=True)
            pytest.skip("running as root without permission to mount: cannot make a folder "
                        "read-only")
        made.append(("mount", path))

    yield make
    for how, path in made:
        if how == "mount":
            subprocess.run(["umount", str(path)], check=True)
        else:
            for p in [path, *path.rglob("*")]:
                p.chmod(p.stat().st_mode | 0o200)


def test_read_only_results_directory(tmp_path, read_only):
    data = spec_dict(chains(2), ["40MB", "unlimited"])
    spec = write_spec(tmp_path / "s.yaml", data)
    out = tmp_path / "o"
    args = ["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]
    assert CliRunner().invoke(main, args).exit_code == 0
    (tmp_path / "more.yaml").write_text(yaml.safe_dump(spec_dict(chains(3), ["40MB"])))
    read_only(out)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*"))
    r = CliRunner().invoke(main, args)  # complete: nothing to write, nothing written
    assert r.exit_code == 0 and "0 executed, 12 already stored" in r.output, r.output
    r = CliRunner().invoke(main, ["plot", str(out), "--out", str(tmp_path / "elsewhere.png")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["plot", str(out)])
    assert r.exit_code == 2 and f"cannot write the plot {out / 'tradeoff.png'}" in r.output
    assert "choose another folder" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, [*args[:1], str(tmp_path / "more.yaml"), *args[2:]])
    assert r.exit_code == 2 and str(out) in r.output and "choose another" in r.output, r.output
    assert "Traceback" not in r.output
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*")) == before
