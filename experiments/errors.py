"""Errors of the experiments layer that users cause (bad spec, unknown names, bad results dir),
and the one-line wording of file-system failures (which path, what went wrong, what to do)."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class ExperimentError(ValueError):
    """Bad sweep spec, results directory or capacity request; the CLI prints it as one message."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: stop, keep what is finished, exit 128 + signal number."""

    def __init__(self, signum: int, name: str):
        super().__init__(name)
        self.signum = signum
        self.name = name


_ADVICE = {
    errno.ENOSPC: "free some space (or choose another folder) and run the same command again",
    errno.EDQUOT: "free some space (or choose another folder) and run the same command again",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f); raise the limit "
                 "or choose another folder",
    errno.EACCES: "the folder is not writable by you: choose another folder",
    errno.EPERM: "the folder is not writable by you: choose another folder",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EEXIST: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "it is a folder: give a file name",
    errno.ENOENT: "its folder does not exist: create it or choose another path",
}


def fs_error(exc: OSError, action: str, path: str | Path, advice: str | None = None) -> ExperimentError:
    """An ExperimentError saying `cannot ACTION PATH: REASON; ADVICE` for a failed file operation."""
    reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    hint = advice or _ADVICE.get(exc.errno or 0, "check the path and its permissions")
    return ExperimentError(f"cannot {action} {path}: {reason}; {hint}")


def file_in_the_way(path: str | Path) -> Path | None:
    """The nearest existing ancestor folder of `path` if it is a file (so `path` cannot be
    created), else None."""
    parent = Path(path).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent if parent.exists() and not parent.is_dir() else None
