"""The ROCm backend: AMD GPUs through PyTorch's ROCm (HIP) build."""

from __future__ import annotations

import os

import torch
from llmrt.backends import Availability, Backend, MemoryInfo


class RocmBackend(Backend):
    """One AMD GPU per worker. PyTorch's HIP build exposes AMD GPUs as ``cuda`` devices."""

    name = "rocm"
    priority = 90
    description = "AMD GPUs through PyTorch ROCm/HIP"

    def detect(self) -> Availability:
        """Usable when torch was built for ROCm and sees at least one AMD GPU."""
        if getattr(torch.version, "hip", None) is None:
            return Availability.no(f"torch {torch.__version__} was built without ROCm/HIP")
        if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
            return Availability.no(f"no AMD GPU is visible (HIP {torch.version.hip})")
        name = torch.cuda.get_device_name(self.device())
        return Availability.yes(
            f"{torch.cuda.device_count()} GPU(s), using {name} (HIP {torch.version.hip})"
        )

    def device(self) -> torch.device:
        """``cuda:LOCAL_RANK`` (HIP devices use PyTorch's cuda device type)."""
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))

    def memory_info(self) -> MemoryInfo:
        """Total and free memory of this worker's GPU."""
        free, total = torch.cuda.mem_get_info(self.device())
        return MemoryInfo(total, free)

    def synchronize(self) -> None:
        """Wait for the current stream."""
        torch.cuda.synchronize(self.device())
