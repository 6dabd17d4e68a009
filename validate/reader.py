"""Reading weight blobs from a real file: O_DIRECT where the filesystem allows it, else the
file's page cache dropped with posix_fadvise(DONTNEED) before each measured read.

A replay reads each load as the replay's runtime would: split into at most `queue_depth`
contiguous parts read at once, one system call each (`BlobReader.read_parts`), so a read holds
the interpreter lock only at its start and end, not once per request. The microbenchmarks also
read in fixed-size requests kept `queue_depth` deep (`BlobReader.read`), to measure the device
by request size and queue depth."""

from __future__ import annotations

import mmap
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from validate.device import host_now

ALIGN = 4096
MIN_PART = 256 << 10  # a load is split into parts of at least this many bytes
PATTERN = np.full(1 << 20, 0x3C003C00, dtype=np.uint32)  # 1.0 as half pairs, ~0.0078 as float


def align_up(n: int, a: int = ALIGN) -> int:
    return (int(n) + a - 1) // a * a


def aligned_array(nbytes: int) -> np.ndarray:
    """A page-aligned uint8 host array (anonymous mmap), usable as an O_DIRECT target."""
    mm = mmap.mmap(-1, max(ALIGN, align_up(nbytes)))
    return np.frombuffer(mm, dtype=np.uint8)


def write_blob_file(path: Path, nbytes: int) -> None:
    """Write `nbytes` (rounded up to 4 KiB) of a float/half-safe pattern and fsync it."""
    total = align_up(nbytes)
    chunk = PATTERN.view(np.uint8)
    with open(path, "wb") as f:
        left = total
        while left > 0:
            n = min(left, chunk.size)
            f.write(chunk[:n].tobytes())
            left -= n
        f.flush()
        os.fsync(f.fileno())


def _try_direct(path: Path) -> bool:
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | flag)
    except OSError:
        return False
    try:
        buf = aligned_array(ALIGN)
        os.preadv(fd, [memoryview(buf)], 0)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


@dataclass
class BlobReader:
    """Reads byte ranges of one file in requests of `request_size`, `queue_depth` in flight."""

    path: Path
    queue_depth: int = 4
    request_size: int = 1 << 20
    mode: str = field(init=False, default="")
    _fd: int = field(init=False, default=-1)
    _pool: ThreadPoolExecutor | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.request_size = align_up(self.request_size)
        if _try_direct(self.path):
            self.mode = "O_DIRECT"
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)
        else:
            self._fd = os.open(self.path, os.O_RDONLY)
            self.mode = "fadvise-dontneed" if hasattr(os, "posix_fadvise") else "page-cache"
        if self.queue_depth > 1:
            self._pool = ThreadPoolExecutor(self.queue_depth, thread_name_prefix="ws-read")

    def drop_cache(self) -> None:
        """Drop the file's page cache (a no-op with O_DIRECT)."""
        if self.mode == "fadvise-dontneed":
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def _pread(self, buf: memoryview, offset: int) -> int:
        return os.preadv(self._fd, [buf], offset)

    def read(self, offset: int, nbytes: int, out: np.ndarray, request_size: int | None = None,
             queue_depth: int | None = None) -> tuple[float, float]:
        """Read [offset, offset + nbytes) (4 KiB aligned, rounded up) into `out`; returns the host
        (start, end) times."""
        size = align_up(request_size or self.request_size)
        total = align_up(nbytes)
        mv = memoryview(out)
        reqs = [(mv[o:o + min(size, total - o)], offset + o) for o in range(0, total, size)]
        q = queue_depth if queue_depth is not None else self.queue_depth
        start = host_now()
        self._requests(reqs, q)
        return start, host_now()

    def _requests(self, reqs: Sequence[tuple[memoryview, int]], depth: int) -> None:
        """One pread per (buffer, file offset), at most `depth` outstanding, in order."""
        if depth <= 1 or len(reqs) == 1 or self._pool is None:
            for buf, off in reqs:
                self._pread(buf, off)
            return
        futs = []
        for buf, off in reqs:
            futs.append(self._pool.submit(self._pread, buf, off))
            if len(futs) >= depth:  # keep at most `depth` requests outstanding
                futs.pop(0).result()
        for f in futs:
            f.result()

    def read_parts(self, offset: int, nbytes: int, out: np.ndarray) -> tuple[float, float]:
        """Read [offset, offset + nbytes) (4 KiB aligned, rounded up) into `out` in at most
        `queue_depth` contiguous parts of at least `MIN_PART` bytes, all in flight at once, one
        system call each; returns the host (start, end) times."""
        total = align_up(nbytes)
        parts = max(1, min(self.queue_depth, total // MIN_PART))
        size = align_up(-(-total // parts))
        mv = memoryview(out)
        reqs = [(o, min(size, total - o)) for o in range(0, total, size)]
        start = host_now()
        if len(reqs) == 1 or self._pool is None:
            for o, n in reqs:
                self._pread(mv[o:o + n], offset + o)
        else:
            futs = [self._pool.submit(self._pread, mv[o:o + n], offset + o) for o, n in reqs[1:]]
            o, n = reqs[0]
            self._pread(mv[o:o + n], offset + o)  # this thread reads the first part itself
            for f in futs:
                f.result()
        return start, host_now()

    def read_scattered(self, offsets: Sequence[int], size: int, out: np.ndarray
                       ) -> tuple[float, float]:
        """Read `size` bytes (4 KiB aligned, rounded up) at each of `offsets` into consecutive
        aligned slots of `out`, one request each, at most `queue_depth` outstanding: the rows an
        embedding gather touches, scattered over its table; returns the host (start, end)."""
        n = align_up(size)
        mv = memoryview(out)
        reqs = [(mv[i * n:(i + 1) * n], off) for i, off in enumerate(offsets)]
        start = host_now()
        self._requests(reqs, self.queue_depth)
        return start, host_now()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
