"""Microbenchmarks of one OpenCL device: host->device writes (buffers, image2d, image2d_array),
buffer->image transforms, proxy-kernel compute and weight-read throughput, launch overhead, and
storage reads from a real file. Timed with OpenCL profiling events (device work) and the host
clock (file reads); every point is the median of several repetitions."""

from __future__ import annotations

import datetime as _dt
import json
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from validate.device import Device, host_now
from validate.errors import ValidateError
from validate.kernels import (
    EMPTY_SRC,
    FLOPS_PER_ITER,
    build,
    create_image,
    image_layout,
    max_global_for,
    proxy_kernel,
    transform_kernel,
    transform_src,
)
from validate.reader import BlobReader, aligned_array, write_blob_file

MiB = 1 << 20
FORMAT = "weightstream-microbench"


@dataclass
class Settings:
    """Sizes and repetitions; `quick` keeps a run to seconds on a CPU device."""

    quick: bool = False
    reps: int = 5
    copy_sizes: tuple[int, ...] = (64 << 10, 256 << 10, MiB, 4 * MiB, 16 * MiB, 64 * MiB)
    read_sizes: tuple[int, ...] = (4 * MiB, 16 * MiB, 64 * MiB)
    storage_file: int = 256 * MiB
    storage_sizes: tuple[int, ...] = (4 << 10, 16 << 10, 64 << 10, 256 << 10, MiB, 4 * MiB)
    # whole reads as the replay makes them (`BlobReader.read_parts`)
    read_sizes_replay: tuple[int, ...] = (4 << 10, 16 << 10, 64 << 10, 256 << 10, MiB, 4 * MiB,
                                          16 * MiB, 64 * MiB)
    queue_depth: int = 4
    request_size: int = MiB
    compute_target_s: float = 0.02

    @classmethod
    def make(cls, quick: bool) -> Settings:
        if not quick:
            return cls()
        return cls(quick=True, reps=3, copy_sizes=(64 << 10, MiB, 4 * MiB, 16 * MiB),
                   read_sizes=(2 * MiB, 8 * MiB), storage_file=24 * MiB,
                   storage_sizes=(16 << 10, 256 << 10, MiB, 4 * MiB), compute_target_s=0.01,
                   read_sizes_replay=(16 << 10, 256 << 10, 2 * MiB, 8 * MiB))


@dataclass
class Microbench:
    """All measurements of one device (JSON round-trippable)."""

    device: dict[str, Any]
    date: str
    settings: dict[str, Any]
    storage_mode: str = ""
    storage: list[dict[str, float]] = field(default_factory=list)  # size, qd, total, seconds
    reads: list[dict[str, float]] = field(default_factory=list)  # replay-style: bytes, seconds
    write_buffer: list[dict[str, float]] = field(default_factory=list)  # bytes, seconds
    write_image2d: list[dict[str, float]] = field(default_factory=list)
    write_image2d_array: list[dict[str, float]] = field(default_factory=list)
    transform: list[dict[str, float]] = field(default_factory=list)
    compute: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # dtype -> flops, s
    peak: dict[str, float] = field(default_factory=dict)  # dtype -> FLOP/s
    read_buffer: list[dict[str, float]] = field(default_factory=list)
    read_image2d: list[dict[str, float]] = field(default_factory=list)
    read_image2d_array: list[dict[str, float]] = field(default_factory=list)
    device_copy: list[dict[str, float]] = field(default_factory=list)  # bytes moved (r+w), s
    launch: dict[str, float] = field(default_factory=dict)
    image_texel_bytes: int = 16

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Microbench:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ValidateError(f"cannot read microbenchmark file {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ValidateError(f"microbenchmark file {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise ValidateError(f"{path} is not a weightstream microbenchmark file "
                                f"(missing \"format\": \"{FORMAT}\")")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValidateError(f"malformed microbenchmark file {path}: {exc}") from None

    def summary(self) -> dict[str, str]:
        """Headline figures, human readable."""
        out: dict[str, str] = {"device": self.device.get("name", "?")}

        def bw(points: list[dict[str, float]], key: str = "bytes") -> str:
            if not points:
                return "n/a"
            p = max(points, key=lambda q: q[key])
            return f"{p[key] / p['seconds'] / 1e9:.2f} GB/s @ {p[key] / MiB:.3g} MiB"

        out["write buffer"] = bw(self.write_buffer)
        out["write image2d"] = bw(self.write_image2d)
        out["write image2d_array"] = bw(self.write_image2d_array)
        out["transform buffer->image"] = bw(self.transform)
        out["kernel read buffer"] = bw(self.read_buffer)
        out["kernel read image2d"] = bw(self.read_image2d)
        out["device copy (r+w)"] = bw(self.device_copy)
        for d, r in self.peak.items():
            out[f"peak {d}"] = f"{r / 1e9:.1f} GFLOP/s"
        for d, pts in self.compute.items():
            if pts:
                p = max(pts, key=lambda q: q["flops"])
                out[f"proxy {d}"] = f"{p['flops'] / p['seconds'] / 1e9:.1f} GFLOP/s"
        if self.launch:
            out["launch period"] = f"{self.launch['period_s'] * 1e6:.1f} us"
        for qd in sorted({int(p["qd"]) for p in self.storage}):
            pts = [p for p in self.storage if p["qd"] == qd]
            small, big = min(pts, key=lambda p: p["size"]), max(pts, key=lambda p: p["size"])
            out[f"storage qd{qd}"] = (
                f"{small['total'] / small['seconds'] / 1e6:.0f} MB/s @ {small['size'] / 1024:.0f} KiB, "
                f"{big['total'] / big['seconds'] / 1e6:.0f} MB/s @ {big['size'] / 1024:.0f} KiB "
                f"({self.storage_mode})")
        if self.reads:
            small, big = self.reads[0], self.reads[-1]
            out["replay reads"] = (f"{small['seconds'] * 1e6:.0f} us @ {small['bytes'] / 1024:.0f} "
                                   f"KiB, {big['bytes'] / big['seconds'] / 1e6:.0f} MB/s @ "
                                   f"{big['bytes'] / MiB:.0f} MiB")
        return out


def _median_event(run: Callable[[], Any], reps: int) -> float:
    """Median device time (end - start) of `run()`'s event over `reps` runs after one warm-up."""
    times = []
    for i in range(reps + 1):
        ev = run()
        ev.wait()
        if i:
            times.append((ev.profile.end - ev.profile.start) * 1e-9)
    return statistics.median(times)


class _Bench:
    """Runs the microbenchmarks on one device."""

    def __init__(self, dev: Device, st: Settings, workdir: Path):
        self.dev, self.st, self.workdir = dev, st, workdir
        self.cl = dev.cl
        self.q = dev.compute_queue
        info = dev.info
        self.half_images = info.half_images
        self.texel_bytes = 8 if self.half_images else 16
        self.transform_prg = build(dev, transform_src()) if info.image_support else None

    def buffer(self, nbytes: int) -> Any:
        return self.cl.Buffer(self.dev.context, self.cl.mem_flags.READ_WRITE, max(16, nbytes))

    def image(self, layout: Any) -> Any:
        return create_image(self.dev, layout, self.half_images)

    def layout(self, nbytes: int, array: bool) -> Any:
        i = self.dev.info
        return image_layout(nbytes, self.texel_bytes, i.image2d_max_width, i.image2d_max_height,
                            max(1, i.image_max_array_size), prefer_array=array)

    # --- host -> device writes ------------------------------------------------------------
    def writes(self, mb: Microbench) -> None:
        cl = self.cl
        for size in self.st.copy_sizes:
            host = self.dev.host_array(size)[:size]  # the replay's (pinned) staging memory
            buf = self.buffer(size)
            t = _median_event(lambda b=buf, h=host: cl.enqueue_copy(self.q, b, h,
                                                                    is_blocking=False), self.st.reps)
            mb.write_buffer.append({"bytes": size, "seconds": t})
            if not self.dev.info.image_support:
                continue
            for array, dest in ((False, mb.write_image2d), (True, mb.write_image2d_array)):
                lay = self.layout(size, array)
                img = self.image(lay)
                h = self.dev.host_array(lay.nbytes)[:lay.nbytes]
                region = (lay.width, lay.height) if lay.kind == "image2d" else (
                    lay.width, lay.height, lay.layers)
                origin = (0, 0) if lay.kind == "image2d" else (0, 0, 0)
                t = _median_event(lambda i=img, h=h, r=region, o=origin: cl.enqueue_copy(
                    self.q, i, h, origin=o, region=r, is_blocking=False), self.st.reps)
                dest.append({"bytes": lay.nbytes, "seconds": t})

    # --- buffer -> image transform ---------------------------------------------------------
    def transforms(self, mb: Microbench) -> None:
        if self.transform_prg is None:
            return
        for size in self.st.copy_sizes:
            lay = self.layout(size, True)
            img = self.image(lay)
            src = self.buffer(lay.nbytes)
            t = _median_event(lambda s=src, i=img, lay=lay: enqueue_transform(
                self.cl, self.q, self.transform_prg, s, i, lay, self.half_images, local=64),
                self.st.reps)
            mb.transform.append({"bytes": lay.nbytes, "seconds": t})

    # --- compute and weight reads -----------------------------------------------------------
    def proxy(self, sig: str, half: bool, chains: int = 4) -> Any:
        return proxy_kernel(self.dev, sig, half, chains)

    def compute(self, mb: Microbench) -> None:
        dtypes = [("fp32", False)] + ([("fp16", True)] if self.dev.info.fp16 else [])
        scratch = self.buffer(64)
        for name, half in dtypes:
            for chains, dest in ((8, None), (4, name)):
                # the replay's kernel (one weight-buffer argument, streaming nothing here), so
                # the rate is the one its compiled code reaches, not an idealised FMA loop's
                knl = self.proxy("b", half, chains)
                g, iters, pts = max_global_for(self.dev.info), 1, []
                while True:
                    knl.set_args(scratch, np.int32(0), scratch, np.int32(0), np.int32(iters),
                                 np.float32(0.999), np.float32(1e-3), scratch, np.int32(0))
                    t = _median_event(lambda k=knl, g=g: self.cl.enqueue_nd_range_kernel(
                        self.q, k, (g,), (64,)), self.st.reps)
                    flops = g * iters * FLOPS_PER_ITER * chains // 4
                    pts.append({"flops": flops, "seconds": t})
                    if t > self.st.compute_target_s or iters >= 1 << 16:
                        break
                    iters *= 4 if t < self.st.compute_target_s / 8 else 2
                rate = max(p["flops"] / p["seconds"] for p in pts)
                if dest is None:
                    mb.peak[name] = rate
                else:
                    mb.compute[dest] = pts
                    mb.peak[name] = max(mb.peak[name], rate)

    def reads(self, mb: Microbench) -> None:
        cl = self.cl
        scratch = self.buffer(64)
        kinds = [("b", mb.read_buffer)]
        if self.dev.info.image_support:
            kinds += [("i", mb.read_image2d), ("a", mb.read_image2d_array)]
        for sig, dest in kinds:
            knl = self.proxy(sig, False)
            for size in self.st.read_sizes:
                args: list[Any] = [scratch, np.int32(0), scratch, np.int32(0), np.int32(0),
                                   np.float32(0.999), np.float32(1e-3)]
                if sig == "b":
                    obj = self.buffer(size)
                    cl.enqueue_fill_buffer(self.q, obj, np.float32(1.0), 0, size).wait()
                    args += [obj, np.int32(size // 16)]
                    nbytes = size
                else:
                    lay = self.layout(size, sig == "a")
                    obj = self.image(lay)
                    args += [obj, np.int32(lay.texels), np.int32(lay.width)]
                    if sig == "a":
                        args.append(np.int32(lay.height))
                    nbytes = lay.nbytes
                knl.set_args(*args)
                g = max(64, min(max_global_for(self.dev.info), nbytes // 64)) // 64 * 64
                t = _median_event(lambda k=knl, g=g: cl.enqueue_nd_range_kernel(
                    self.q, k, (g,), (64,)), self.st.reps)
                dest.append({"bytes": nbytes, "seconds": t})
        for size in self.st.read_sizes:
            a, b = self.buffer(size), self.buffer(size)
            t = _median_event(lambda a=a, b=b: cl.enqueue_copy(self.q, b, a), self.st.reps)
            mb.device_copy.append({"bytes": 2 * size, "seconds": t})

    def launch(self, mb: Microbench) -> None:
        cl = self.cl
        knl = cl.Kernel(build(self.dev, EMPTY_SRC), "empty")
        scratch = self.buffer(64)  # keep a reference while the kernel uses it
        knl.set_arg(0, scratch)
        n = 50 if self.st.quick else 200
        cl.enqueue_nd_range_kernel(self.q, knl, (1,), None).wait()
        t0 = host_now()
        evs = [cl.enqueue_nd_range_kernel(self.q, knl, (64,), None) for _ in range(n)]
        evs[-1].wait()
        wall = host_now() - t0
        span = (evs[-1].profile.end - evs[0].profile.start) * 1e-9
        busy = statistics.median((e.profile.end - e.profile.start) * 1e-9 for e in evs)
        mb.launch = {"period_s": span / n, "kernel_s": busy, "host_per_launch_s": wall / n,
                     "count": n}

    # --- storage ---------------------------------------------------------------------------
    def storage(self, mb: Microbench) -> None:
        st = self.st
        path = self.workdir / "storage-bench.bin"
        write_blob_file(path, st.storage_file)
        reader = BlobReader(path, st.queue_depth, st.request_size)
        mb.storage_mode = reader.mode
        try:
            out = aligned_array(st.storage_file)
            cap = 8 * MiB if st.quick else 32 * MiB
            pos = 0
            for qd in (1, st.queue_depth):
                for size in st.storage_sizes:
                    total = min(st.storage_file, max(size * (8 if qd == 1 else 4 * qd), cap
                                                     if size >= 256 << 10 else size * 32))
                    times = []
                    for _ in range(st.reps):
                        if pos + total > st.storage_file:
                            pos = 0
                        reader.drop_cache()
                        s, e = reader.read(pos, total, out[:total], size, qd)
                        times.append(e - s)
                        pos += total
                    mb.storage.append({"size": size, "qd": qd, "total": total,
                                       "seconds": statistics.median(times)})
            mb.reads = replay_reads(reader, out, st.read_sizes_replay, st.reps, st.storage_file)
        finally:
            reader.close()
            path.unlink(missing_ok=True)


def replay_reads(reader: BlobReader, out: Any, sizes: tuple[int, ...], reps: int,
                 file_bytes: int, start: int = 0) -> list[dict[str, float]]:
    """Whole reads of each size as a replay makes them (`read_parts`), the median of `reps`,
    each from a part of the file not read just before (its cache dropped)."""
    pts, pos = [], start
    for size in sizes:
        size = min(size, file_bytes)
        times = []
        for _ in range(reps):
            if pos + size > file_bytes:
                pos = 0
            reader.drop_cache()
            s, e = reader.read_parts(pos, size, out[:size])
            times.append(e - s)
            pos += size
        pts.append({"bytes": size, "seconds": statistics.median(times)})
    return pts


def enqueue_transform(cl: Any, queue: Any, prg: Any, src: Any, img: Any, lay: Any, half: bool,
                      wait_for: list[Any] | None = None, local: int | None = None,
                      kernels: dict[str, Any] | None = None) -> Any:
    """Enqueue the buffer->image kernel for `lay`; returns its event. `kernels` caches the
    kernel objects by name, as a runtime does (creating one costs 0.4 ms on NVIDIA's driver
    and milliseconds on PoCL, time a replay would otherwise spend on its host thread)."""
    name = f"to_{'image2d' if lay.kind == 'image2d' else 'array'}_{'h' if half else 'f'}"
    cache = kernels if kernels is not None else {}
    if name not in cache:
        cache[name] = transform_kernel(cl, prg, name)
    knl = cache[name]
    n = np.int32(lay.texels)
    if lay.kind == "image2d":
        knl.set_args(src, img, np.int32(lay.width), n)
    else:
        knl.set_args(src, img, np.int32(lay.width), np.int32(lay.height), n)
    g = (lay.texels + 63) // 64 * 64
    return cl.enqueue_nd_range_kernel(queue, knl, (g,), (local,) if local else None,
                                      wait_for=wait_for)


def run_microbench(dev: Device, quick: bool = False, workdir: str | Path | None = None,
                   progress: Callable[[str], None] | None = None) -> Microbench:
    """Run every microbenchmark on `dev`; storage reads use a file under `workdir` (or a temp
    dir) so that the filesystem measured is the one replays read weights from."""
    st = Settings.make(quick)
    mb = Microbench(device=dev.info.to_dict(),
                    date=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    settings={k: v for k, v in asdict(st).items()})
    say = progress or (lambda s: None)
    with tempfile.TemporaryDirectory(prefix="ws-mb-", dir=workdir) as tmp:
        bench = _Bench(dev, st, Path(tmp))
        mb.image_texel_bytes = bench.texel_bytes
        for name, fn in (("storage reads", bench.storage), ("host->device writes", bench.writes),
                         ("transforms", bench.transforms), ("compute", bench.compute),
                         ("kernel reads", bench.reads), ("launch overhead", bench.launch)):
            say(f"microbench: {name}")
            fn(mb)
    return mb
