"""The op table model layers and the sampler call: names, the signature contract, and :class:`Ops`.

An *op* is a small numeric kernel a layer needs (a norm, the rotary embedding, a gated
activation) or the sampler's random draw. Core ships PyTorch reference implementations (:mod:`llmrt.ops.torch_ops`);
a backend plugin registers faster ones through the ``llmrt_register_ops`` hook, and the
engine resolves one implementation per name into an :class:`Ops` table that every layer
of the model receives. The signatures documented on :class:`Ops` are the plugin contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

OP_NAMES: tuple[str, ...] = (
    "rms_norm",
    "fused_add_rms_norm",
    "rotary_embedding",
    "silu_and_mul",
    "gelu_tanh_and_mul",
    "qk_norm_rotary_embedding",
    "sample_categorical",
)
"""Every op a model layer may call; a complete :class:`Ops` table has one of each."""


@dataclass(frozen=True)
class Ops:
    """One implementation per op name; what model layers call. Frozen once built.

    Tensors below are ``torch.Tensor``; ``T`` is the number of tokens in the step, ``H`` a
    hidden size, ``D`` the head size. Unless stated, outputs have the dtype and device of
    the main input, and implementations must not modify their inputs.

    ``rms_norm(x[..., H], weight[H], eps: float, weight_offset: float = 0.0,
    cast_before_weight: bool = True) -> Tensor[..., H]``
        Root-mean-square normalization, computed in float32:
        ``n = x.float() * rsqrt(mean(x.float() ** 2, -1) + eps)``, then scaled by
        ``weight + weight_offset``. Gemma stores its norm weights centred on zero and
        passes ``weight_offset=1.0``. ``cast_before_weight`` selects where the result
        returns to ``x.dtype``, matching the two orders Hugging Face models use:
        ``True`` (Llama, Qwen, Mistral): ``(weight + offset) * n.to(x.dtype)``;
        ``False`` (Gemma): ``(n * (weight.float() + offset)).to(x.dtype)``.
        In float32 both are the same.

    ``fused_add_rms_norm(x[..., H], residual[..., H], weight[H], eps, weight_offset=0.0,
    cast_before_weight=True) -> (normed, new_residual)``
        ``new_residual = x + residual`` (in ``x.dtype``), ``normed = rms_norm(new_residual,
        ...)``. Implementations may write into ``x`` and ``residual`` and return them (the
        caller never reuses either afterwards); the reference returns new tensors.

    ``rotary_embedding(positions: LongTensor[T], query[T, Hq*D], key[T, Hk*D],
    cos_sin_cache[max_pos, rot_dim], head_size: int, is_neox_style: bool) -> (query, key)``
        Rotates the first ``rot_dim`` (<= ``head_size``, even) channels of every head of
        ``query`` and ``key`` by the angles of each token's position; other channels pass
        through. Row ``p`` of ``cos_sin_cache`` is ``[cos(p * f_i) * s, sin(p * f_i) * s]``
        for the ``rot_dim / 2`` frequencies ``f_i`` (``s`` is a rope-type attention factor,
        usually 1), in the model dtype; the products are taken in ``query.dtype``, as
        Hugging Face does. Neox style (Llama and most models) pairs channel ``i`` with
        ``i + rot_dim/2``; GPT-J style pairs ``2i`` with ``2i + 1``. Returns new tensors
        of the input shapes (an implementation may rotate in place and return its inputs).

    ``silu_and_mul(x[..., 2d]) -> Tensor[..., d]``
        ``silu(x[..., :d]) * x[..., d:]`` (the gated MLP of Llama-like models; the gate is
        the first half, as in a merged ``gate_up_proj``).

    ``gelu_tanh_and_mul(x[..., 2d]) -> Tensor[..., d]``
        ``gelu(x[..., :d], approximate="tanh") * x[..., d:]`` (Gemma's gated MLP).

    ``qk_norm_rotary_embedding(positions, query[T, Hq*D], key[T, Hk*D], q_weight[D],
    k_weight[D], eps, weight_offset, cast_before_weight, cos_sin_cache, head_size,
    is_neox_style) -> (query, key)``
        ``rms_norm`` over each head's ``D`` channels (``q_weight`` for the query heads,
        ``k_weight`` for the key heads; ``eps``, ``weight_offset``, ``cast_before_weight`` as in
        ``rms_norm``), then ``rotary_embedding``: the attention inputs of models with per-head
        q/k norms (Qwen3, Gemma 3), with the numerics of the two ops in sequence. A *composed*
        op: a backend that registers no implementation of its own gets its own ``rms_norm`` and
        ``rotary_embedding`` in sequence (:func:`compose_qk_norm_rotary`); one that fuses them
        saves two launches per layer. May write into ``query`` and ``key`` and return them.

    ``sample_categorical(logits[N, V] float32, temperature[N] float32) -> LongTensor[N]``
        One token per row, drawn from ``softmax(logits[i] / temperature[i])``; a row whose
        temperature is 0 takes its argmax (the first, on ties). Entries of ``-inf`` are never
        drawn. Randomness comes from PyTorch's default generator (``torch.manual_seed`` makes
        a run repeatable); any exact method is allowed (the reference races the probabilities
        against exponential noise; a kernel may take the Gumbel-max of ``logits / t``, or
        invert the cumulative distribution). The sampler calls it for every random row
        without a seed of its own; rows with a seed draw from their generator in core.
    """

    rms_norm: Callable[..., Any]
    fused_add_rms_norm: Callable[..., Any]
    rotary_embedding: Callable[..., Any]
    silu_and_mul: Callable[..., Any]
    gelu_tanh_and_mul: Callable[..., Any]
    qk_norm_rotary_embedding: Callable[..., Any]
    sample_categorical: Callable[..., Any]

    @classmethod
    def from_registry(cls, impls: Mapping[str, Callable[..., Any]]) -> Ops:
        """Build the table from ``{op_name: impl}``; every name in :data:`OP_NAMES` is required.

        Raises ``ValueError`` naming the missing or unknown op names.
        """
        missing = [name for name in OP_NAMES if name not in impls]
        unknown = sorted(set(impls) - set(OP_NAMES))
        if missing or unknown:
            raise ValueError(
                f"incomplete op table: missing {missing or 'none'}, unknown {unknown or 'none'}; "
                f"expected exactly {list(OP_NAMES)}"
            )
        not_callable = [name for name in OP_NAMES if not callable(impls[name])]
        if not_callable:
            raise ValueError(f"op implementations are not callable: {not_callable}")
        return cls(**{name: impls[name] for name in OP_NAMES})

    def replace(self, **impls: Callable[..., Any]) -> Ops:
        """A copy with some ops swapped (e.g. a test wrapping one op to count calls)."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        return Ops.from_registry({**current, **impls})


def compose_qk_norm_rotary(rms_norm: Callable[..., Any], rotary_embedding: Callable[..., Any]) -> Callable[..., Any]:
    """``qk_norm_rotary_embedding`` from a backend's ``rms_norm`` and ``rotary_embedding``."""

    def qk_norm_rotary_embedding(positions, query, key, q_weight, k_weight, eps, weight_offset,
                                 cast_before_weight, cos_sin_cache, head_size, is_neox_style):
        def per_head(x, weight):
            heads = x.reshape(x.shape[0], -1, head_size)
            return rms_norm(heads, weight, eps, weight_offset, cast_before_weight).reshape(x.shape[0], -1)

        return rotary_embedding(positions, per_head(query, q_weight), per_head(key, k_weight),
                                cos_sin_cache, head_size, is_neox_style)

    return qk_norm_rotary_embedding


COMPOSED_OPS: dict[str, Callable[[Mapping[str, Callable[..., Any]]], Callable[..., Any]]] = {
    "qk_norm_rotary_embedding": lambda ops: compose_qk_norm_rotary(ops["rms_norm"], ops["rotary_embedding"]),
}
"""Ops a backend may leave out: each is built from the backend's primitives (listed earlier in
:data:`OP_NAMES`) unless the backend registers its own."""


assert tuple(f.name for f in fields(Ops)) == OP_NAMES, "Ops fields must follow OP_NAMES"
