"""Entry point of the ``llmrt-rocm`` plugin: the ROCm backend and RCCL collectives."""

from __future__ import annotations

from llmrt.plugins import hookimpl
from llmrt.plugins.hookspecs import Register
from llmrt_rocm.backend import RocmBackend

LLMRT_PLUGIN_API = ">=1,<2"


@hookimpl
def llmrt_register_backends(register: Register) -> None:
    """The ROCm backend."""
    register(RocmBackend())


@hookimpl
def llmrt_register_communicators(register: Register) -> None:
    """RCCL, which torch.distributed exposes under the name ``nccl`` on ROCm builds."""
    from llmrt.distributed import TorchDistributedCommunicator

    register("rccl", lambda world: TorchDistributedCommunicator(world, "nccl"), backends=("rocm",))
