"""DeviceCommunicator: the collectives model layers need, implemented per device by plugins.

Launch and rendezvous ride on torch.distributed (torchrun-style ``env://`` variables); llmrt
never invents its own. World size 1 needs no process group at all.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class WorldInfo:
    """This process's place among the engine's workers."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> WorldInfo:
        """Read torchrun's ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (defaults: one process)."""
        return cls(
            int(os.environ.get("RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)),
        )


class DeviceCommunicator(ABC):
    """Collectives over the workers of one engine. Every method is a no-op at world size 1."""

    def __init__(self, world: WorldInfo) -> None:
        self.world = world

    @abstractmethod
    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` across workers; returns the result (may be in place)."""

    @abstractmethod
    def all_gather(self, tensor: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Concatenate every worker's ``tensor`` along ``dim``."""

    @abstractmethod
    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Copy rank ``src``'s ``tensor`` to every worker."""


class TorchDistributedCommunicator(DeviceCommunicator):
    """Collectives through a torch.distributed process group (``gloo``, ``nccl``, ...)."""

    def __init__(self, world: WorldInfo, backend: str) -> None:
        super().__init__(world)
        self.backend = backend
        if world.world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend, rank=world.rank, world_size=world.world_size)

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum across workers in place."""
        if self.world.world_size > 1:
            dist.all_reduce(tensor)
        return tensor

    def all_gather(self, tensor: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Concatenate along ``dim``."""
        if self.world.world_size == 1:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=dim)

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Copy from ``src`` in place."""
        if self.world.world_size > 1:
            dist.broadcast(tensor, src=src)
        return tensor
