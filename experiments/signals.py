"""Turn SIGINT, SIGTERM and SIGHUP into one `Interrupted` exception, so a long command stops
the way Ctrl-C stops it: `finally` blocks save finished rows and stop the workers, then the CLI
prints one `error:` line and exits 128 + the signal number. Later signals are ignored while
that cleanup runs (it is short), so a second Ctrl-C cannot cut a part file in half."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from experiments.errors import Interrupted

SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM/SIGHUP raises Interrupted in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if fired:
            return
        fired.append(signum)
        raise Interrupted(signum, signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
