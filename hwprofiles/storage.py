"""Request-size-dependent storage throughput: the closed form of a two-stage request pipeline.

A read of B contiguous bytes is split into n = ceil(B / max_request_size) requests. Each request
spends `request_latency` (t0, overlappable: up to `queue_depth` requests outstanding) and then
transfers its bytes over the shared link one at a time (c = size / read_bandwidth, or
1 / max_iops if that is longer). With q outstanding requests the device finishes one request
every max(c, (t0 + c) / q): bandwidth-bound for large requests or deep queues, latency-bound
for small requests at low queue depth, which reproduces throughput(s) = s / (t0 + s / BW) at
queue depth 1.
"""

from __future__ import annotations

import math

from hwprofiles.schema import StorageSpec


def read_time(storage: StorageSpec, nbytes: int, queue_depth: int | None = None,
              request_size: int | None = None) -> float:
    """Seconds to read `nbytes` with requests of `request_size` kept `queue_depth` deep."""
    if nbytes <= 0:
        return 0.0
    q = max(1, int(queue_depth if queue_depth is not None else storage.queue_depth))
    size = int(request_size if request_size is not None else storage.max_request_size)
    size = max(1, min(size, nbytes))
    n = math.ceil(nbytes / size)
    t0 = storage.request_latency
    min_service = 1.0 / storage.max_iops if storage.max_iops > 0 else 0.0
    c = max(size / storage.read_bandwidth, min_service)
    last = max((nbytes - (n - 1) * size) / storage.read_bandwidth, min_service)
    if q * c >= t0 + c or n == 1:
        # bandwidth-bound: the link never idles after the first request's latency
        return t0 + (n - 1) * c + last
    # latency-bound: requests complete in waves of q, each wave costing t0 + c
    k, r = divmod(n - 1, q)
    return k * (t0 + c) + t0 + r * c + last


def throughput(storage: StorageSpec, request_size: int, queue_depth: int | None = None,
               total_bytes: int | None = None) -> float:
    """Bytes/s reading `total_bytes` (default 256 requests' worth) in `request_size` requests."""
    total = total_bytes if total_bytes is not None else request_size * 256
    return total / read_time(storage, total, queue_depth, request_size)
