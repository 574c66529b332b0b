"""The TPU backend: TPUs through torch_xla (imported only when present)."""

from __future__ import annotations

import importlib.util

import torch

from llmrt.backends import Availability, Backend, MemoryInfo


class TpuBackend(Backend):
    """One TPU device per worker, through torch_xla."""

    name = "tpu"
    priority = 80
    description = "Google TPUs through torch_xla"

    def detect(self) -> Availability:
        """Usable when torch_xla is installed and reports at least one TPU device."""
        if importlib.util.find_spec("torch_xla") is None:
            return Availability.no("torch_xla is not installed (pip install torch_xla[tpu])")
        import torch_xla.runtime as xr

        if xr.device_type() != "TPU":
            return Availability.no(f"torch_xla sees no TPU (device type {xr.device_type()!r})")
        return Availability.yes(f"{xr.global_runtime_device_count()} TPU device(s)")

    def device(self) -> torch.device:
        """This worker's XLA device."""
        import torch_xla

        return torch_xla.device()

    def memory_info(self) -> MemoryInfo:
        """Total and free memory of the TPU, as torch_xla reports it."""
        import torch_xla.core.xla_model as xm

        info = xm.get_memory_info(self.device())
        total = int(info.get("bytes_limit", info.get("kb_total", 0) * 1024))
        used = int(info.get("bytes_used", (info.get("kb_total", 0) - info.get("kb_free", 0)) * 1024))
        return MemoryInfo(total, total - used)

    def supported_dtypes(self) -> tuple[torch.dtype, ...]:
        """bfloat16 and float32."""
        return (torch.bfloat16, torch.float32)
