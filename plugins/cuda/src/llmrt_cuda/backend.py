"""The CUDA backend: NVIDIA GPUs through PyTorch's CUDA build."""

from __future__ import annotations

import os
from typing import Any

import torch

from llmrt.backends import Availability, Backend, MemoryInfo


class CudaBackend(Backend):
    """One NVIDIA GPU per worker (``LOCAL_RANK`` picks it); the highest-priority backend."""

    name = "cuda"
    priority = 100
    description = "NVIDIA GPUs through PyTorch CUDA"

    def detect(self) -> Availability:
        """Usable when torch was built with CUDA and sees at least one NVIDIA GPU."""
        if torch.version.cuda is None:
            return Availability.no(f"torch {torch.__version__} was built without CUDA")
        if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
            return Availability.no(f"no NVIDIA GPU is visible (torch {torch.__version__}, CUDA {torch.version.cuda})")
        name = torch.cuda.get_device_name(self.device())
        return Availability.yes(f"{torch.cuda.device_count()} GPU(s), using {name} (CUDA {torch.version.cuda})")

    def device(self) -> torch.device:
        """``cuda:LOCAL_RANK``."""
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))

    def memory_info(self) -> MemoryInfo:
        """Total and free memory of this worker's GPU, as the driver reports it."""
        free, total = torch.cuda.mem_get_info(self.device())
        return MemoryInfo(total, free)

    def supported_dtypes(self) -> tuple[torch.dtype, ...]:
        """float32, bfloat16 and float16."""
        return (torch.float32, torch.bfloat16, torch.float16)

    def synchronize(self) -> None:
        """Wait for the current stream."""
        torch.cuda.synchronize(self.device())

    def peak_memory_bytes(self) -> int | None:
        """Peak bytes PyTorch's allocator handed out since the last reset."""
        return torch.cuda.max_memory_allocated(self.device())

    def reset_peak_memory(self) -> None:
        """Reset the peak counter."""
        torch.cuda.reset_peak_memory_stats(self.device())

    def info(self) -> dict[str, Any]:
        """GPU name and compute capability."""
        props = torch.cuda.get_device_properties(self.device())
        return {"gpu": props.name, "capability": f"{props.major}.{props.minor}",
                "memory_gib": round(props.total_memory / 2**30, 1)}
