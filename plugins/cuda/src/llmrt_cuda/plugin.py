"""Entry point of ``llmrt-cuda``: the CUDA backend, its kernels and graphs, NCCL collectives."""

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
def llmrt_register_ops(register: Register) -> None:
    """The Triton kernels of ``llmrt-triton`` (norms, rotary, gated activations) for ``cuda``."""
    from llmrt_triton import register_triton_ops

    register_triton_ops(register, backend="cuda")


@hookimpl
def llmrt_register_linear_methods(register: Register) -> None:
    """Unquantized products with ``llmrt-triton``'s GEMV kernel for single rows (batch-1 decode)."""
    from llmrt_triton import register_triton_linear_method

    register_triton_linear_method(register, backend="cuda")


@hookimpl
def llmrt_register_attention_backends(register: Register) -> None:
    """Triton paged attention (``triton-cuda``) above core's reference for ``cuda``, and above it
    ``cuda``: the same with decode batches on the CUDA C++ kernel, where the package built it."""
    from llmrt_triton import register_triton_attention, triton_available

    from llmrt_cuda.native import native_kernels

    register_triton_attention(register, backend="cuda", priority=10)
    if triton_available().usable and native_kernels().module is not None:
        from llmrt_cuda.attention import CudaPagedAttention

        register("cuda", CudaPagedAttention, backends=("cuda",), priority=20)


@hookimpl
def llmrt_register_graph_capture(register: Register) -> None:
    """CUDA graphs of decode batches (:class:`llmrt_cuda.decode_graphs.DecodeGraphs`)."""
    from llmrt_cuda.decode_graphs import DecodeGraphs

    register("cuda", DecodeGraphs)


@hookimpl
def llmrt_register_communicators(register: Register) -> None:
    """NCCL through torch.distributed."""
    from llmrt.distributed import TorchDistributedCommunicator

    register("nccl", lambda world: TorchDistributedCommunicator(world, "nccl"), backends=("cuda",))
