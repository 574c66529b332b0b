"""llmrt-triton: Triton kernels shared by llmrt's GPU backends (CUDA and ROCm).

A library, not a plugin. A backend plugin registers the kernels for its own backend name::

    from llmrt_triton import register_triton_attention, register_triton_ops

    @hookimpl
    def llmrt_register_ops(register):
        register_triton_ops(register, backend="cuda")

Kernel modules import Triton lazily (on first call), so importing this package and
registering costs nothing and works where Triton is missing; :func:`triton_available` says
whether the kernels can run.
"""

from llmrt_triton.availability import triton_available
from llmrt_triton.registration import (
    register_triton_attention,
    register_triton_linear_method,
    register_triton_ops,
)

__all__ = [
    "register_triton_attention",
    "register_triton_linear_method",
    "register_triton_ops",
    "triton_available",
]
