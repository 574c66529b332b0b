"""Facts about the host CPU and memory, read without third-party packages."""

from __future__ import annotations

import os
import platform
from pathlib import Path

INTERESTING_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "asimd", "sve")


def allowed_cores() -> int:
    """Cores this process may run on (respects affinity masks and cgroup pinning)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpuinfo_field(name: str) -> str | None:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def instruction_sets() -> list[str]:
    """The SIMD extensions of interest that this CPU reports."""
    flags = set((_cpuinfo_field("flags") or _cpuinfo_field("Features") or "").split())
    return [flag for flag in INTERESTING_FLAGS if flag in flags]


def cpu_model() -> str:
    """The CPU's marketing name, or the machine architecture when unknown."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def _meminfo_bytes(field: str) -> int | None:
    path = Path("/proc/meminfo")
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def host_memory() -> tuple[int, int]:
    """Total and available host memory in bytes."""
    total = _meminfo_bytes("MemTotal")
    available = _meminfo_bytes("MemAvailable")
    if total is None:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return total, available if available is not None else total
