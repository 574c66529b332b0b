"""Core's own defaults, registered through the same hooks third-party plugins use.

A vendor replaces any of these by registering its own (an op for its backend, an attention
implementation with a higher priority, another scheduler name chosen in the config).
"""

from __future__ import annotations

from llmrt.plugins import hookimpl
from llmrt.plugins.hookspecs import Register

LLMRT_PLUGIN_API = ">=1,<2"


@hookimpl
def llmrt_register_ops(register: Register) -> None:
    """PyTorch reference implementations of every op, for every backend."""
    from llmrt.ops.torch_ops import register_core_ops

    register_core_ops(register)


@hookimpl
def llmrt_register_attention_backends(register: Register) -> None:
    """Paged attention in plain PyTorch, correct everywhere, the fallback for any backend."""
    from llmrt.attention.torch_paged import register_core_attention

    register_core_attention(register)


@hookimpl
def llmrt_register_model_architectures(register: Register) -> None:
    """The decoder-only families core implements (Llama, Mistral, Qwen2/3, Gemma 2/3)."""
    from llmrt.model.architectures import register_core_architectures

    register_core_architectures(register)


@hookimpl
def llmrt_register_quantization_methods(register: Register) -> None:
    """``"none"``: unquantized weights through a plain matrix product."""
    from llmrt.model.layers.linear import UnquantizedLinearMethod

    register("none", lambda quant_config=None: UnquantizedLinearMethod(), backends=None)


@hookimpl
def llmrt_register_schedulers(register: Register) -> None:
    """``"fcfs"``: one token budget per step, chunked prefill, FCFS or priority order."""
    from llmrt.sched.scheduler import Scheduler

    register("fcfs", Scheduler)


@hookimpl
def llmrt_register_block_allocators(register: Register) -> None:
    """``"lru"``: a free queue in eviction order with automatic prefix caching."""
    from llmrt.kv.block_pool import BlockPool

    register("lru", BlockPool)


@hookimpl
def llmrt_register_communicators(register: Register) -> None:
    """``"gloo"``: torch.distributed collectives that work on any device through the host."""
    from llmrt.distributed.communicator import TorchDistributedCommunicator

    register("gloo", lambda world: TorchDistributedCommunicator(world, "gloo"), backends=None)
