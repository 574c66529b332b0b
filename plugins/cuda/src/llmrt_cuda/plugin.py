"""Entry point of the ``llmrt-cuda`` plugin: the CUDA backend and NCCL collectives."""

from __future__ import annotations

from llmrt.plugins import hookimpl
from llmrt.plugins.hookspecs import Register
from llmrt_cuda.backend import CudaBackend

LLMRT_PLUGIN_API = ">=1,<2"


@hookimpl
def llmrt_register_backends(register: Register) -> None:
    """The CUDA backend."""
    register(CudaBackend())


@hookimpl
def llmrt_register_communicators(register: Register) -> None:
    """NCCL through torch.distributed."""
    from llmrt.distributed import TorchDistributedCommunicator

    register("nccl", lambda world: TorchDistributedCommunicator(world, "nccl"), backends=("cuda",))
