"""Entry point of the ``llmrt-cpu`` plugin: the CPU backend, its native ops, attention and products.

The ops and the attention implementation are registered only when the native kernels load
(:mod:`llmrt_cpu.native`); otherwise the ``cpu`` backend runs on core's PyTorch reference
ops and attention, and a warning says why.
"""

from __future__ import annotations

import logging

from llmrt.plugins import hookimpl
from llmrt.plugins.hookspecs import Register
from llmrt_cpu import native
from llmrt_cpu.backend import CpuBackend

LLMRT_PLUGIN_API = ">=1,<2"
ATTENTION_NAME = "cpu_native"
ATTENTION_PRIORITY = 10

logger = logging.getLogger("llmrt.cpu")


@hookimpl
def llmrt_register_backends(register: Register) -> None:
    """The CPU backend."""
    register(CpuBackend())


@hookimpl
def llmrt_register_ops(register: Register) -> None:
    """The inverse-CDF draw, and native norms, rotary embedding and SiLU-and-mul, for ``cpu``."""
    from llmrt_cpu.sampling import sample_categorical

    register("sample_categorical", sample_categorical, backend="cpu")
    if native.kernels() is None:
        logger.warning("cpu backend: %s", native.status())
        return
    from llmrt_cpu.ops import NATIVE_OPS

    for name, impl in NATIVE_OPS.items():
        register(name, impl, backend="cpu")


@hookimpl
def llmrt_register_linear_methods(register: Register) -> None:
    """Unquantized products on oneDNN with packed weights, where PyTorch has oneDNN."""
    from llmrt_cpu.linear_packing import PackedLinearMethod, onednn_available

    if onednn_available():
        register("cpu", PackedLinearMethod)


@hookimpl
def llmrt_register_attention_backends(register: Register) -> None:
    """Native paged attention for the ``cpu`` backend (above core's ``torch``, priority 0)."""
    if native.kernels() is None:
        return
    from llmrt_cpu.attention import CpuPagedAttention

    register(ATTENTION_NAME, CpuPagedAttention, backends=("cpu",), priority=ATTENTION_PRIORITY)
