"""Output files of single commands (`run --trace/--gantt/--save-schedule`): checked before any
work is done, written with their folders created, and every failure one `error:` line that
names the path and what to do."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.errors import ExperimentError, file_in_the_way, fs_error


def check_output(path: str | None, option: str) -> None:
    """Refuse an output path that cannot be written (a folder; under a file; not writable)
    before any work is done, so a failed run leaves nothing behind."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ExperimentError(f"{option} {path} is a folder; give a file name")
    blocker = file_in_the_way(p)
    if blocker is not None:
        raise ExperimentError(f"cannot write {option} {path}: {blocker} is a file, not a folder; "
                              "choose another path")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise ExperimentError(f"cannot write {option} {path}: the folder {parent} is not "
                              "writable; choose another path")


def write_output(path: str, option: str, write: Callable[[str], Any]) -> None:
    """Create the folders of `path`, call write(temporary path) and rename it onto `path`: a
    failure (a full disk) leaves no half-written file and is one error line."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write(str(tmp))
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise fs_error(exc, f"write {option}", path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
