"""Where a benchmark's GPU time goes: kernel time, idle time and the costliest kernels.

``bench.py ... --trace`` wraps the timed run in ``torch.profiler`` (GPU activity only, so the
host is barely slowed) and prints ``TRACE {...}``: wall time, the time at least one kernel ran
(the union of kernel intervals), the idle rest, and the kernels that took the most time. Idle
GPU time is host work the GPU waited for; busy time against the roofline says how good the
kernels are.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import json
import os
import time
from collections import defaultdict
from typing import Iterator

import torch
from torch.profiler import ProfilerActivity, profile

TOP_KERNELS = 12
LONGEST_GAPS = 12


@contextlib.contextmanager
def gpu_trace(label: str) -> Iterator[None]:
    """Profile the GPU during the block; print the summary afterwards."""
    pauses = _GcPauses()
    gc.callbacks.append(pauses)
    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            start = time.perf_counter()
            yield
            torch.cuda.synchronize()
            wall = time.perf_counter() - start
    finally:
        gc.callbacks.remove(pauses)
    print("TRACE " + json.dumps({**summarize(prof, wall, label), "gc": pauses.summary()}), flush=True)
    if os.environ.get("LLMRT_TRACE_DUMP"):
        dump_kernels(prof, os.environ["LLMRT_TRACE_DUMP"])


def dump_kernels(prof: profile, path: str) -> None:
    """Every GPU activity in order as gzipped JSON ``{"names": [...], "events": [[start_us,
    duration_us, name_index], ...]}``, for per-step analysis off the machine."""
    names: dict[str, int] = {}
    events = [
        [round(start / 1e3, 1), round((end - start) / 1e3, 2), names.setdefault(name, len(names))]
        for start, end, name in _gpu_intervals(prof)
    ]
    with gzip.open(path, "wt") as file:
        json.dump({"names": list(names), "events": events}, file)


class _GcPauses:
    """Python's garbage-collector pauses (a host stall the GPU may wait for)."""

    def __init__(self) -> None:
        self.count, self.by_generation = [0, 0, 0], [0.0, 0.0, 0.0]
        self.longest, self._start = 0.0, 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        pause = time.perf_counter() - self._start
        self.count[info["generation"]] += 1
        self.by_generation[info["generation"]] += pause
        self.longest = max(self.longest, pause)

    def summary(self) -> dict:
        return {"collections": self.count, "total_ms": round(1e3 * sum(self.by_generation), 2),
                "ms_by_generation": [round(1e3 * t, 2) for t in self.by_generation],
                "longest_ms": round(1e3 * self.longest, 2)}


def _gpu_intervals(prof: profile) -> list[tuple[int, int, str]]:
    """``(start_ns, end_ns, short name)`` of every GPU activity (the raw Kineto events), in order."""
    return sorted(
        (event.start_ns(), event.start_ns() + event.duration_ns(), _short(event.name()))
        for event in prof.profiler.kineto_results.events()
        if event.device_type() == torch.autograd.DeviceType.CUDA
    )


def summarize(prof: profile, wall_s: float, label: str) -> dict:
    """Busy/idle seconds and the top kernels by total time (from the raw Kineto events)."""
    intervals, per_kernel = _gpu_intervals(prof), defaultdict(lambda: [0, 0])
    for start, end, name in intervals:
        entry = per_kernel[name]
        entry[0] += end - start
        entry[1] += 1
    busy = _union_ns(intervals) / 1e9
    top = sorted(per_kernel.items(), key=lambda kv: -kv[1][0])[:TOP_KERNELS]
    return {
        "label": label,
        "wall_s": round(wall_s, 3),
        "gpu_busy_s": round(busy, 3),
        "gpu_idle_s": round(wall_s - busy, 3),
        "kernels": [
            {"name": name, "total_ms": round(ns / 1e6, 2), "calls": calls, "avg_us": round(ns / calls / 1e3, 1)}
            for name, (ns, calls) in top
        ],
        "gaps": _gaps(intervals),
    }


def _gaps(intervals: list[tuple[int, int, str]]) -> dict:
    """Idle stretches between kernels: how many of each size, and the longest with neighbours."""
    found, end, previous = [], None, ""
    for start, stop, name in intervals:
        if end is not None and start > end:
            found.append((start - end, previous, name))
        if end is None or stop > end:
            end, previous = stop, name
    bins = {"<5us": 0, "5-20us": 0, "20-100us": 0, "100us-1ms": 0, ">1ms": 0}
    sums = dict.fromkeys(bins, 0.0)
    for gap, _, _ in found:
        key = ("<5us" if gap < 5e3 else "5-20us" if gap < 2e4 else "20-100us" if gap < 1e5
               else "100us-1ms" if gap < 1e6 else ">1ms")
        bins[key] += 1
        sums[key] += gap / 1e6
    longest = sorted(found, reverse=True)[:LONGEST_GAPS]
    waiting: dict[str, float] = defaultdict(float)  # idle time (gaps over 20 us) by the next kernel
    for gap, _, after in found:
        if gap >= 2e4:
            waiting[after] += gap / 1e6
    return {
        "count": bins,
        "total_ms": {k: round(v, 2) for k, v in sums.items()},
        "idle_ms_before": {k: round(v, 1) for k, v in sorted(waiting.items(), key=lambda kv: -kv[1])[:8]},
        "longest": [{"us": round(g / 1e3, 1), "after": a, "before": b} for g, a, b in longest],
    }


def _union_ns(intervals: list[tuple[int, int, str]]) -> int:
    total, end = 0, None
    for start, stop, _ in intervals:
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def _short(name: str) -> str:
    return name if len(name) <= 80 else name[:77] + "..."
