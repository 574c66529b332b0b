"""Registering the Triton ops and attention for one backend (called from backend plugins)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from llmrt_triton.availability import triton_available

logger = logging.getLogger("llmrt.triton")


def attention_name(backend: str) -> str:
    """The attention's registered name for ``backend`` (``--attention-backend triton-cuda``).

    One name per backend: each backend plugin registers its own entry, and two plugins may not
    register the same name.
    """
    return f"triton-{backend}"


def triton_op_impls() -> dict[str, Callable]:
    """``{op_name: impl}`` for every op in :data:`llmrt.ops.OP_NAMES` that has a Triton kernel."""
    from llmrt_triton import activation, norm, rotary, sampling

    return {
        "rms_norm": norm.rms_norm,
        "fused_add_rms_norm": norm.fused_add_rms_norm,
        "rotary_embedding": rotary.rotary_embedding,
        "qk_norm_rotary_embedding": rotary.qk_norm_rotary_embedding,
        "silu_and_mul": activation.silu_and_mul,
        "gelu_tanh_and_mul": activation.gelu_tanh_and_mul,
        "sample_categorical": sampling.sample_categorical,
    }


def register_triton_ops(register: Callable[..., None], backend: str) -> None:
    """Register every Triton op for ``backend``; nothing (core's references stay) without Triton."""
    availability = triton_available()
    if not availability.usable:
        logger.warning(
            "llmrt-triton: %s; backend %r uses core's reference ops", availability.reason, backend
        )
        return
    for name, impl in triton_op_impls().items():
        register(name, impl, backend=backend)


def register_triton_attention(
    register: Callable[..., None], backend: str, priority: int = 10
) -> None:
    """Register :class:`~llmrt_triton.paged_attention.TritonPagedAttention` for ``backend``.

    ``priority`` 10 beats core's reference (0); nothing is registered without Triton.
    """
    if not triton_available().usable:
        return
    from llmrt_triton.paged_attention import TritonPagedAttention

    register(attention_name(backend), TritonPagedAttention, backends=(backend,), priority=priority)


def register_triton_linear_method(register: Callable[..., None], backend: str) -> None:
    """Register :class:`~llmrt_triton.linear.GemvLinearMethod` as ``backend``'s unquantized method.

    For ``llmrt_register_linear_methods``; nothing (core's ``F.linear`` stays) without Triton.
    """
    if not triton_available().usable:
        return
    from llmrt_triton.linear import GemvLinearMethod

    register(backend, GemvLinearMethod)
