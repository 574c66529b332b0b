"""The CPU backend: weights and KV cache in host memory, matrix products through PyTorch."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import torch

from llmrt.backends import Availability, Backend, MemoryInfo
from llmrt_cpu import cpu_info, native

if TYPE_CHECKING:
    from llmrt.config import EngineConfig

logger = logging.getLogger("llmrt.cpu")

GIB = 1 << 30
THREADS_ENV = "LLMRT_CPU_NUM_THREADS"
"""Compute threads when ``num_threads`` is not configured (default: every allowed core)."""
KV_SPACE_ENV = "LLMRT_CPU_KVCACHE_SPACE"
"""KV cache size in GiB for the CPU backend (same meaning as vLLM's VLLM_CPU_KVCACHE_SPACE)."""
DEFAULT_KV_FRACTION_OF_AVAILABLE = 0.25
DEFAULT_KV_CAP_BYTES = 8 * GIB
DEFAULT_BLOCK_SIZE = 128


class CpuBackend(Backend):
    """Runs anywhere PyTorch runs; the lowest-priority hardware backend."""

    name = "cpu"
    priority = 10
    description = "CPU through PyTorch (oneDNN/MKL matrix products)"

    def detect(self) -> Availability:
        """Always usable; the reason lists the cores, instruction sets and kernels in use."""
        isa = ", ".join(cpu_info.instruction_sets()) or "no SIMD extensions detected"
        return Availability.yes(
            f"{cpu_info.allowed_cores()} cores of {cpu_info.cpu_model()} ({isa}); {native.status()}")

    def device(self) -> torch.device:
        """The host."""
        return torch.device("cpu")

    def memory_info(self) -> MemoryInfo:
        """Host memory (total and available)."""
        total, available = cpu_info.host_memory()
        return MemoryInfo(total, available)

    def supported_dtypes(self) -> tuple[torch.dtype, ...]:
        """float32 and bfloat16 (float16 matrix products are slow on most CPUs)."""
        return (torch.float32, torch.bfloat16, torch.float16)

    def default_block_size(self) -> int:
        """128 tokens: decode attention reads each sequence's cache rows in order, and longer
        runs of rows stream faster (one thread of the benchmark machine: 9 GB/s over 16-token
        blocks read a head at a time, 13-14 over 128-token blocks in row order)."""
        return DEFAULT_BLOCK_SIZE

    def configure(self, config: EngineConfig) -> None:
        """Use every allowed core unless ``num_threads`` or $LLMRT_CPU_NUM_THREADS says otherwise."""
        threads = config.num_threads or int(os.environ.get(THREADS_ENV, 0)) or cpu_info.allowed_cores()
        torch.set_num_threads(threads)
        logger.info("cpu backend: %d threads", threads)

    def kv_cache_budget_bytes(self, config: EngineConfig, used_by_model_bytes: int) -> int:
        """``kv_cache_bytes`` if set, else $LLMRT_CPU_KVCACHE_SPACE GiB, else a share of free RAM."""
        if config.cache.kv_cache_bytes is not None:
            return config.cache.kv_cache_bytes
        if os.environ.get(KV_SPACE_ENV):
            return int(float(os.environ[KV_SPACE_ENV]) * GIB)
        _, available = cpu_info.host_memory()
        return int(min(available * DEFAULT_KV_FRACTION_OF_AVAILABLE, DEFAULT_KV_CAP_BYTES))

    def create_model_runner(self, config: EngineConfig, host: Any, model_dir: str) -> Any:
        """:class:`llmrt_cpu.model_runner.CpuModelRunner` (lazily zeroed KV cache, short warm-up)."""
        from llmrt_cpu.model_runner import CpuModelRunner

        return CpuModelRunner(config, self, host, model_dir)

    def info(self) -> dict[str, Any]:
        """Cores, CPU model, instruction sets and the kernels in use."""
        return {"cores": cpu_info.allowed_cores(), "cpu": cpu_info.cpu_model(),
                "isa": cpu_info.instruction_sets(), "kernels": native.status()}
