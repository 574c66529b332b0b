"""The CUDA C++ decode attention kernel against core's TorchPagedAttention (GPU with the extension
built), and what happens where it is not built (any machine)."""

import random

import pytest
import torch
from llmrt.attention.interface import AttentionConfig
from llmrt.attention.metadata import AttentionMetadata
from llmrt.attention.torch_paged import TorchPagedAttention
from llmrt_cuda.native import native_kernels

TOL = {torch.bfloat16: 2e-2, torch.float16: 2e-3}

needs_kernel = pytest.mark.skipif(
    not torch.cuda.is_available() or native_kernels().module is None,
    reason="needs a GPU and llmrt_cuda._C (pip install --no-build-isolation ./plugins/cuda)",
)


def _decode_batch(context_lens, block, num_blocks, device, seed):
    rng = random.Random(seed)
    free = list(range(num_blocks))
    rng.shuffle(free)
    tables = [[free.pop() for _ in range(-(-(c + 1) // block))] for c in context_lens]
    return AttentionMetadata.build([1] * len(context_lens), context_lens, tables, block, device)


@pytest.fixture
def native_calls(monkeypatch):
    """Counts launches of the CUDA kernel; lets every group size run it, also without splits."""
    from llmrt_cuda import attention

    module = native_kernels().module
    calls = []
    kernel = module.paged_decode_attention
    monkeypatch.setattr(module, "paged_decode_attention", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    monkeypatch.setattr(attention, "NATIVE_LARGE_BATCH_MAX_GROUP", 8)
    return calls


def _compare(dtype, heads, kv_heads, head_size, context_lens, block=16, splits=1, seed=0):
    from llmrt_cuda.attention import CudaPagedAttention
    from llmrt_triton import attention_plan

    device = torch.device("cuda")
    config = AttentionConfig(heads, kv_heads, head_size, head_size**-0.5, dtype=dtype)
    num_blocks = sum(-(-(c + 1) // block) for c in context_lens) + 4
    metadata = _decode_batch(context_lens, block, num_blocks, device, seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    shape = TorchPagedAttention.kv_cache_shape(num_blocks, block, kv_heads, head_size)
    cache = torch.randn(shape, generator=gen, device=device).to(dtype)
    width = (heads + 2 * kv_heads) * head_size
    qkv = torch.randn(len(context_lens), width, generator=gen, device=device).to(dtype)
    q, k, v = qkv.split([heads * head_size, kv_heads * head_size, kv_heads * head_size], -1)
    ref_cache, got_cache = cache.clone(), cache.clone()
    expected = TorchPagedAttention(config).forward(q, k, v, ref_cache, metadata)
    impl = CudaPagedAttention(config)
    assert impl.native_decode_supported(dtype)
    chosen = attention_plan.decode_splits
    attention_plan.decode_splits = lambda *args: splits
    try:
        got = impl.forward(q, k, v, got_cache, metadata)
    finally:
        attention_plan.decode_splits = chosen
    assert torch.equal(got_cache, ref_cache)
    torch.testing.assert_close(got.float(), expected.float(), rtol=TOL[dtype], atol=TOL[dtype])


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("head_size", [64, 128, 256])
@pytest.mark.parametrize("heads,kv_heads", [(8, 8), (16, 8), (12, 4), (32, 8), (16, 2)])
def test_matches_reference(native_calls, dtype, head_size, heads, kv_heads):
    """Every head size and group size (1, 2, 3, 4, 8), lengths on and off block boundaries."""
    _compare(dtype, heads, kv_heads, head_size, [0, 1, 15, 16, 17, 100, 333, 1023], seed=head_size + heads)
    assert native_calls


@needs_kernel
@pytest.mark.parametrize("splits", [2, 3, 16])
@pytest.mark.parametrize("heads,kv_heads,head_size", [(16, 8, 128), (8, 8, 64), (32, 8, 256), (16, 2, 128)])
def test_splits_combine(native_calls, splits, heads, kv_heads, head_size):
    """Several KV splits per sequence, through the Triton reduction (empty splits included), for
    groups 1, 2, 4 and 8 and every head size."""
    _compare(torch.bfloat16, heads, kv_heads, head_size, [5, 40, 700, 2047], splits=splits, seed=splits)
    assert native_calls


@needs_kernel
@pytest.mark.parametrize("block", [8, 32, 64])
def test_other_block_sizes(native_calls, block):
    _compare(torch.float16, 32, 8, 128, [3, 31, 32, 33, 500], block=block, seed=block)
    assert native_calls


def test_large_batches_of_larger_groups_stay_on_triton(monkeypatch):
    """Without splits, groups above NATIVE_LARGE_BATCH_MAX_GROUP run the Triton kernel (faster
    there); with splits, or with smaller groups, the CUDA one. Keys and values the kernel cannot
    read as one layout (a key made contiguous next to a strided value) stay on Triton too."""
    from llmrt_cuda import attention
    from llmrt_cuda.native import NativeKernels

    monkeypatch.setattr(attention, "native_kernels", lambda: NativeKernels(object(), "test"))
    monkeypatch.setattr(attention, "_device_fits", lambda *args: True)
    qkv = torch.zeros(2, 48, 128, dtype=torch.bfloat16)
    q, k, v = qkv[:, :32], qkv[:, 32:40], qkv[:, 40:]
    cache = torch.zeros(2, 4, 16, 8, 128, dtype=torch.bfloat16)
    group_four = attention.CudaPagedAttention(AttentionConfig(32, 8, 128, 0.1, dtype=torch.bfloat16))
    assert not group_four._runs_native_decode(q, k, v, cache, 1)
    assert group_four._runs_native_decode(q, k, v, cache, 2)
    assert not group_four._runs_native_decode(q, k.contiguous(), v, cache, 2)
    group_two = attention.CudaPagedAttention(AttentionConfig(16, 8, 128, 0.1, dtype=torch.bfloat16))
    assert group_two._runs_native_decode(q[:, :16], k, v, cache, 1)
    odd_blocks = torch.zeros(2, 4, 24, 8, 128, dtype=torch.bfloat16)
    assert not group_two._runs_native_decode(q[:, :16], k, v, odd_blocks, 2)


@pytest.mark.parametrize("capability,optin,fits", [
    ((9, 0), 232448, True),   # H100: 227 KiB a block
    ((8, 0), 166912, False),  # A100: too old (and 163 KiB)
    ((12, 0), 101376, False),  # a consumer Blackwell: 99 KiB
])
def test_gpus_that_cannot_run_the_kernel_keep_triton(monkeypatch, capability, optin, fits):
    from types import SimpleNamespace

    from llmrt_cuda import attention
    from llmrt_cuda.native import NativeKernels

    module = SimpleNamespace(decode_shared_bytes=lambda head_size, group: 196608)
    monkeypatch.setattr(attention, "native_kernels", lambda: NativeKernels(module, "test"))
    props = SimpleNamespace(major=capability[0], minor=capability[1], shared_memory_per_block_optin=optin)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)
    assert attention._device_fits.__wrapped__(torch.device("cuda", 0), 128, 2) == fits


@needs_kernel
def test_shared_memory_fits_this_gpu():
    """The kernel's shared memory for every head size and group fits the GPU the tests run on."""
    props = torch.cuda.get_device_properties(0)
    limit = getattr(props, "shared_memory_per_block_optin", 227 * 1024)
    for head_size in (64, 128, 256):
        for group in (1, 2, 4, 8):
            assert native_kernels().module.decode_shared_bytes(head_size, group) <= limit


@needs_kernel
def test_padding_rows_attend_to_nothing():
    """CUDA-graph padding rows (slot -1, no keys) give zeros, write nothing, leave real rows alone."""
    from llmrt_cuda.attention import CudaPagedAttention

    device = torch.device("cuda")
    config = AttentionConfig(16, 8, 128, 128**-0.5, dtype=torch.bfloat16)
    metadata = _decode_batch([20, 7], 16, 8, device, 0)
    metadata.slot_mapping[1] = -1
    metadata.seq_lens[1] = 0
    cache = torch.randn(TorchPagedAttention.kv_cache_shape(8, 16, 8, 128), device=device).bfloat16()
    qkv = torch.randn(2, 32 * 128, device=device).bfloat16()
    q, k, v = qkv.split([16 * 128, 8 * 128, 8 * 128], -1)
    expected_cache = cache.clone()
    slot = int(metadata.slot_mapping[0])
    expected_cache[0].view(-1, 8, 128)[slot] = k[0].view(8, 128)
    expected_cache[1].view(-1, 8, 128)[slot] = v[0].view(8, 128)
    got = CudaPagedAttention(config).forward(q, k, v, cache, metadata)
    assert torch.count_nonzero(got[1]) == 0 and torch.count_nonzero(got[0]) > 0
    assert torch.equal(cache, expected_cache)


def test_unsupported_layers_fall_back_to_triton():
    """Soft-capping, sliding windows, float32 and odd head sizes never reach the CUDA kernel."""
    from llmrt_cuda.attention import CudaPagedAttention

    plain = AttentionConfig(16, 8, 128, 0.1, dtype=torch.bfloat16)
    assert CudaPagedAttention(plain).native_decode_supported(torch.bfloat16) == (native_kernels().module is not None)
    for config, dtype in [
        (AttentionConfig(16, 8, 128, 0.1, logit_softcap=30.0, dtype=torch.bfloat16), torch.bfloat16),
        (AttentionConfig(16, 8, 128, 0.1, sliding_window=64, dtype=torch.bfloat16), torch.bfloat16),
        (AttentionConfig(16, 8, 96, 0.1, dtype=torch.bfloat16), torch.bfloat16),
        (AttentionConfig(32, 2, 128, 0.1, dtype=torch.bfloat16), torch.bfloat16),
        (plain, torch.float32),
    ]:
        assert not CudaPagedAttention(config).native_decode_supported(dtype)


def test_missing_extension_says_why(monkeypatch):
    """Without the extension (or with it turned off) the reason names the fix."""
    native_kernels.cache_clear()
    monkeypatch.setenv("LLMRT_CUDA_NATIVE", "0")
    try:
        kernels = native_kernels()
        assert kernels.module is None and "LLMRT_CUDA_NATIVE=0" in kernels.reason
    finally:
        native_kernels.cache_clear()
