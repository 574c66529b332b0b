"""The toy backend's plugin module: a backend and an op override for it.

Set ``LLMRT_TOY_ABSENT=1`` to make detection fail (as on a machine without the chip), and
``LLMRT_TOY_TRACE=FILE`` to have the op override append a line per call (proof it ran).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from llmrt.backends import Availability, Backend, MemoryInfo
from llmrt.plugins import hookimpl

LLMRT_PLUGIN_API = ">=1,<2"


class ToyBackend(Backend):
    """Pretends to be an accelerator; tensors live on the host."""

    name = "toy"
    priority = 1
    description = "toy accelerator (emulated on the host)"

    def detect(self) -> Availability:
        """Unusable when LLMRT_TOY_ABSENT is set."""
        if os.environ.get("LLMRT_TOY_ABSENT"):
            return Availability.no("no toy accelerator found on the bus")
        return Availability.yes("toy accelerator (emulated on the host)")

    def device(self) -> torch.device:
        """The host."""
        return torch.device("cpu")

    def memory_info(self) -> MemoryInfo:
        """A fixed 1 GiB device."""
        return MemoryInfo(1 << 30, 1 << 30)

    def kv_cache_budget_bytes(self, config, used_by_model_bytes: int) -> int:
        """64 MiB of KV cache."""
        return 64 << 20


def traced_silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """SiLU(gate) * up, recording the call when LLMRT_TOY_TRACE names a file."""
    trace = os.environ.get("LLMRT_TOY_TRACE")
    if trace:
        with open(trace, "a") as handle:
            handle.write(f"silu_and_mul {tuple(x.shape)}\n")
    gate, up = x.chunk(2, dim=-1)
    return F.silu(gate) * up


@hookimpl
def llmrt_register_backends(register) -> None:
    """The toy backend."""
    register(ToyBackend())


@hookimpl
def llmrt_register_ops(register) -> None:
    """The toy backend's own silu_and_mul."""
    register("silu_and_mul", traced_silu_and_mul, backend="toy")
