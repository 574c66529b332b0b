"""CudaPagedAttention: the Triton paged attention, with decode batches on a CUDA C++ kernel.

Decode attention is most of a large batch's time (it reads every cached key and value of every
sequence at every step) and is bound by memory bandwidth. The CUDA kernel
(``csrc/paged_decode_attention.cu``) streams the cache through shared memory with asynchronous
copies, several chunks in flight per warp, computes the scores of the few query heads that share
a kv head on the CUDA cores instead of padding them to a tensor-core tile, and stores the step's
new keys and values itself (one kernel per layer less than the Triton path). Everything else (prompts, mixed batches,
soft-capping, sliding windows, other head sizes, block sizes that are not powers of two, large
batches of groups over two) stays on the Triton kernel, as does any machine where the extension
is not built.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from llmrt.attention.metadata import AttentionMetadata
from llmrt_triton.paged_attention import TritonPagedAttention

from llmrt_cuda.native import native_kernels

NATIVE_HEAD_SIZES = (64, 128, 256)
NATIVE_MAX_GROUP = 8
NATIVE_DTYPES = (torch.bfloat16, torch.float16)
NATIVE_MIN_CAPABILITY = (9, 0)
"""The extension is built for Hopper (``setup.py``'s default ``TORCH_CUDA_ARCH_LIST``, 9.0 and
PTX for newer GPUs); older GPUs keep the Triton kernel."""
NATIVE_LARGE_BATCH_MAX_GROUP = 2
"""Largest group (query heads per kv head) whose large decode batches (no KV split) run the CUDA
kernel: at 4 (Llama-3-8B, 256 sequences) Triton's kernel was 4-7% faster on an H100; at 2
(Qwen3-0.6B) the CUDA kernel is ahead; with KV splits (small batches) it is ahead at both."""


class CudaPagedAttention(TritonPagedAttention):
    """:class:`TritonPagedAttention` whose supported decode batches run the CUDA C++ kernel."""

    def native_decode_supported(self, dtype: torch.dtype) -> bool:
        """Whether this layer's decode batches can run the CUDA kernel (given the extension)."""
        cfg = self.config
        return (
            native_kernels().module is not None
            and dtype in NATIVE_DTYPES
            and cfg.head_size in NATIVE_HEAD_SIZES
            and cfg.num_heads // cfg.num_kv_heads <= NATIVE_MAX_GROUP
            and not cfg.logit_softcap
            and not cfg.sliding_window
        )

    @staticmethod
    def native_cache_supported(cache_k: torch.Tensor) -> bool:
        """The kernel takes power-of-two block sizes (it splits positions with shifts)."""
        block = cache_k.shape[1]
        return block & (block - 1) == 0

    def _runs_native_decode(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_cache: torch.Tensor, splits: int
    ) -> bool:
        """Supported layers on a GPU that can run the kernel, rows the kernel can read, power-of-two
        blocks; a large batch (no split) only for groups up to :data:`NATIVE_LARGE_BATCH_MAX_GROUP`."""
        group = self.config.num_heads // self.config.num_kv_heads
        return (
            self.native_decode_supported(q.dtype)
            and _device_fits(q.device, self.config.head_size, group)
            and _rows_aligned(q)
            and _rows_aligned(k)
            and k.stride() == v.stride()
            and k.stride(1) == self.config.head_size
            and self.native_cache_supported(kv_cache[0])
            and (splits > 1 or group <= NATIVE_LARGE_BATCH_MAX_GROUP)
        )

    def _native_decode(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        cache_k: torch.Tensor,
        cache_v: torch.Tensor,
        out: torch.Tensor,
        parts: torch.Tensor,
        stats: torch.Tensor,
        metadata: AttentionMetadata,
        splits: int,
    ) -> None:
        """The CUDA kernel: stores the new keys and values, then attends (see the base class)."""
        native_kernels().module.paged_decode_attention(
            q, k, v, cache_k, cache_v, out, parts, stats, metadata.seq_lens, metadata.block_tables,
            metadata.slot_mapping, splits, self.config.scale,
        )


def _rows_aligned(rows: torch.Tensor) -> bool:
    """The kernel reads each row ``[tokens, heads, head_size]`` as 16-byte pieces."""
    strides_ok = rows.stride(0) % 8 == 0 and rows.stride(1) % 8 == 0 and rows.stride(2) == 1
    return rows.data_ptr() % 16 == 0 and strides_ok


@lru_cache(maxsize=64)
def _device_fits(device: torch.device, head_size: int, group: int) -> bool:
    """The GPU is recent enough and lets one block use the kernel's shared memory (192 KiB for
    groups up to 2: more than an A100 or a consumer GPU allows)."""
    props = torch.cuda.get_device_properties(device)
    if (props.major, props.minor) < NATIVE_MIN_CAPABILITY:
        return False
    limit = getattr(props, "shared_memory_per_block_optin", None)
    needed = native_kernels().module.decode_shared_bytes(head_size, group)
    return limit is None or needed <= limit
