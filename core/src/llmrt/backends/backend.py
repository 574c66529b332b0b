"""What a hardware backend supplies: detection, its device, memory queries, its model runner.

A backend is registered by a plugin through ``llmrt_register_backends``. Core never asks
"which device is this?"; it asks the selected backend these questions instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from llmrt.config import EngineConfig


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run on this machine, and the reason in words either way."""

    usable: bool
    reason: str

    @classmethod
    def yes(cls, reason: str) -> Availability:
        """Usable, with what was found (e.g. ``"2 cores, AVX2"``)."""
        return cls(True, reason)

    @classmethod
    def no(cls, reason: str) -> Availability:
        """Not usable, with the concrete reason (e.g. ``"torch was built without CUDA"``)."""
        return cls(False, reason)


@dataclass(frozen=True)
class MemoryInfo:
    """Device memory in bytes: the total, and what is free for llmrt right now."""

    total_bytes: int
    free_bytes: int


class Backend(ABC):
    """One hardware platform. Subclass it in a plugin and register an instance.

    Class attributes: ``name`` (unique, what ``--backend`` takes), ``priority`` (automatic
    selection picks the usable backend with the highest), ``description`` (one line for
    ``llmrt plugins``).
    """

    name: str = ""
    priority: int = 0
    description: str = ""

    @abstractmethod
    def detect(self) -> Availability:
        """Say whether this backend can run here, without side effects on the device."""

    @abstractmethod
    def device(self) -> torch.device:
        """The torch device that model weights and the KV cache live on."""

    @abstractmethod
    def memory_info(self) -> MemoryInfo:
        """Total and free memory of :meth:`device`, for sizing the KV cache."""

    def supported_dtypes(self) -> tuple[torch.dtype, ...]:
        """Model dtypes this backend computes in."""
        return (torch.float32, torch.bfloat16, torch.float16)

    def default_dtype(self, checkpoint_dtype: torch.dtype) -> torch.dtype:
        """The dtype used for ``dtype="auto"``, given the checkpoint's ``torch_dtype``."""
        return checkpoint_dtype if checkpoint_dtype in self.supported_dtypes() else torch.float32

    def default_block_size(self) -> int:
        """Tokens per KV cache block when the user does not choose (``--block-size``).

        Small blocks waste less memory and share prefixes at a finer grain; a backend whose
        attention reads the cache faster in longer runs (CPUs: the hardware prefetchers) asks
        for more.
        """
        return 16

    def configure(self, config: EngineConfig) -> None:
        """Prepare the device for an engine (threads, seeds, streams). Called once, first."""

    def kv_cache_budget_bytes(self, config: EngineConfig, used_by_model_bytes: int) -> int:
        """Bytes the KV cache may take, after weights and a profiled forward pass.

        The default takes ``config.cache.memory_fraction`` of total memory minus what the
        model and activations used, or exactly ``config.cache.kv_cache_bytes`` when set.
        """
        if config.cache.kv_cache_bytes is not None:
            return config.cache.kv_cache_bytes
        info = self.memory_info()
        return int(info.total_bytes * config.cache.memory_fraction) - used_by_model_bytes

    def create_model_runner(self, config: EngineConfig, host: Any, model_dir: str) -> Any:
        """The runner that executes scheduled steps on this device.

        Core's :class:`llmrt.engine.model_runner.ModelRunner` is device-agnostic; a backend
        overrides this to return a subclass (graph capture, persistent input buffers).
        """
        from llmrt.engine.model_runner import ModelRunner

        return ModelRunner(config, self, host, model_dir)

    def overlaps_host_and_device(self) -> bool:
        """True when device work is queued and runs while the host goes on (an accelerator).

        The engine then turns asynchronous scheduling on by default (the host schedules and
        prepares the next step while the device computes this one, see
        ``engine/async_scheduling.py``), copies step inputs through pinned host memory without
        waiting, and brings sampled tokens back with a non-blocking copy and a device event
        (``torch.Event`` on :meth:`device`). False (the default) for devices that compute
        synchronously on the host's thread, such as the CPU: there is nothing to overlap.
        """
        return False

    def synchronize(self) -> None:
        """Wait for queued device work (for timing); a no-op on synchronous devices."""

    def peak_memory_bytes(self) -> int | None:
        """Peak bytes allocated on the device since the last reset, if the device tracks it."""
        return None

    def reset_peak_memory(self) -> None:
        """Reset the counter behind :meth:`peak_memory_bytes`."""

    def info(self) -> dict[str, Any]:
        """Extra facts for ``llmrt plugins`` and the startup log (device name, cores, ...)."""
        return {}
