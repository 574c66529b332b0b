"""Entry point of ``llmrt-rocm``: the ROCm backend, shared Triton kernels, RCCL collectives."""

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


@hookimpl
def llmrt_register_ops(register: Register) -> None:
    """The shared Triton kernels of ``llmrt-triton`` (the same source the CUDA backend runs)."""
    from llmrt_triton import register_triton_ops

    register_triton_ops(register, backend="rocm")


@hookimpl
def llmrt_register_attention_backends(register: Register) -> None:
    """Triton paged attention (``triton-rocm``) above core's reference for ``rocm``."""
    from llmrt_triton import register_triton_attention

    register_triton_attention(register, backend="rocm", priority=10)
