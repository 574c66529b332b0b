"""The CUDA backend: NVIDIA GPUs through PyTorch's CUDA build."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from llmrt.backends import Availability, Backend, MemoryInfo

logger = logging.getLogger("llmrt.cuda")

DEFAULT_BLOCK_SIZE = 64
"""Tokens per KV cache block unless ``--block-size`` says otherwise."""


class CudaBackend(Backend):
    """One NVIDIA GPU per worker (``LOCAL_RANK`` picks it); the highest-priority backend.

    Its model runner (:class:`llmrt_cuda.model_runner.CudaModelRunner`) captures CUDA graphs
    for decode batches; its KV budget (:mod:`llmrt_cuda.memory_budget`) subtracts what the graphs
    will hold, which the runner measures while profiling (``graph_memory_bytes``).
    """

    name = "cuda"
    priority = 100
    description = "NVIDIA GPUs through PyTorch CUDA (Triton kernels, CUDA graphs, NCCL)"

    def __init__(self) -> None:
        self.graph_memory_bytes = 0

    def detect(self) -> Availability:
        """Usable when torch was built with CUDA and sees at least one NVIDIA GPU."""
        if torch.version.cuda is None:
            return Availability.no(f"torch {torch.__version__} was built without CUDA")
        if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
            return Availability.no(
                f"no NVIDIA GPU is visible (torch {torch.__version__}, CUDA {torch.version.cuda})"
            )
        name = torch.cuda.get_device_name(self.device())
        return Availability.yes(
            f"{torch.cuda.device_count()} GPU(s), using {name} (CUDA {torch.version.cuda})"
        )

    def device(self) -> torch.device:
        """``cuda:LOCAL_RANK``."""
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))

    def configure(self, config: Any) -> None:
        """Make this worker's GPU the current device."""
        torch.cuda.set_device(self.device())

    def memory_info(self) -> MemoryInfo:
        """Total and free memory of this worker's GPU, as the driver reports it."""
        free, total = torch.cuda.mem_get_info(self.device())
        return MemoryInfo(total, free)

    def supported_dtypes(self) -> tuple[torch.dtype, ...]:
        """float32, bfloat16 and float16."""
        return (torch.float32, torch.bfloat16, torch.float16)

    def default_block_size(self) -> int:
        """64 tokens. Nano on an H100 (alternating processes): 16-token blocks 19,073 / 19,426 out
        tok/s, 32-token 19,767 / 19,865, 64-token 19,936 / 19,923, 128-token no faster; a prefix
        is shared in whole blocks, so larger ones share less of it."""
        return DEFAULT_BLOCK_SIZE

    def overlaps_host_and_device(self) -> bool:
        """Kernels run asynchronously to the host: core overlaps scheduling with them."""
        return True

    def synchronize(self) -> None:
        """Wait for the current stream."""
        torch.cuda.synchronize(self.device())

    def peak_memory_bytes(self) -> int | None:
        """Peak bytes PyTorch's allocator handed out since the last reset."""
        return torch.cuda.max_memory_allocated(self.device())

    def reset_peak_memory(self) -> None:
        """Reset the peak counter."""
        torch.cuda.reset_peak_memory_stats(self.device())

    def kv_cache_budget_bytes(self, config: Any, used_by_model_bytes: int) -> int:
        """Device memory x ``--gpu-memory-utilization`` after weights, profiled peak and graphs.

        ``used_by_model_bytes`` is the allocator's peak during profiling. The arithmetic is logged;
        raises :class:`~llmrt_cuda.memory_budget.CudaOutOfMemoryAtStartup` when nothing is left.
        """
        from llmrt_cuda.memory_budget import measure_budget

        if config.cache.kv_cache_bytes is not None:
            return config.cache.kv_cache_bytes
        budget = measure_budget(
            self.device(),
            config.cache.memory_fraction,
            used_by_model_bytes,
            self.graph_memory_bytes,
        )
        logger.info("CUDA memory: %s", budget.explain())
        budget.check()
        return budget.budget

    def create_model_runner(self, config: Any, host: Any, model_dir: str) -> Any:
        """:class:`~llmrt_cuda.model_runner.CudaModelRunner` (CUDA graphs for decode)."""
        from llmrt_cuda.model_runner import CudaModelRunner

        return CudaModelRunner(config, self, host, model_dir)

    def info(self) -> dict[str, Any]:
        """GPU name and compute capability."""
        props = torch.cuda.get_device_properties(self.device())
        return {
            "gpu": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
        }
