"""The CPU model runner's pieces: lazily zeroed KV cache, oneDNN-packed products, the draw op."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmrt.sample.sampler import Sampler, SamplingBatch
from llmrt.sampling_params import SamplingParams
from llmrt_cpu import cpu_info, native
from llmrt_cpu.sampling import inverse_cdf_sample, sample_categorical
from llmrt_cpu.linear_packing import PANEL_ENV, PackedLinearMethod, PackedWeight, onednn_available, panels_available
from llmrt_cpu.model_runner import CpuModelRunner, lazily_zeroed


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lazily_zeroed_cache_is_zero_and_writable(dtype):
    cache = lazily_zeroed((2, 3, 16, 4, 8), dtype)
    assert cache.shape == (2, 3, 16, 4, 8) and cache.dtype == dtype and cache.is_contiguous()
    assert not cache.any()
    cache[1, 2] = 1
    assert cache.sum().item() == 16 * 4 * 8


def test_inverse_cdf_sampling_follows_the_distribution():
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3]]).repeat(50_000, 1)
    tokens = inverse_cdf_sample(probs, torch.rand(probs.shape[0], generator=torch.Generator().manual_seed(0)))
    frequencies = torch.bincount(tokens, minlength=4).float() / tokens.numel()
    assert frequencies[1] == 0
    torch.testing.assert_close(frequencies, probs[0], atol=0.01, rtol=0)


def test_seeded_rows_sample_as_core_does():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(1))
    params = [SamplingParams(temperature=0.8, seed=7), SamplingParams(temperature=1.0), SamplingParams(seed=9)]

    def batch():
        generators = [torch.Generator().manual_seed(p.seed) if p.seed is not None else None for p in params]
        return SamplingBatch.build(params, generators, torch.device("cpu"))

    ours, _ = Sampler(sample_categorical)(logits, batch())
    core, _ = Sampler()(logits, batch())
    assert ours[0] == core[0] and ours[2] == core[2]


@pytest.fixture(params=["panels", "onednn"])
def float32_path(request, monkeypatch):
    """Each float32 product path: the brgemm panels (where available) and oneDNN's linear op."""
    if request.param == "panels" and not panels_available():
        pytest.skip("no brgemm panels here (native kernels or AVX2 missing)")
    if request.param == "onednn":
        monkeypatch.setenv(PANEL_ENV, "0")
    return request.param


@pytest.mark.skipif(not onednn_available(), reason="PyTorch without oneDNN")
@pytest.mark.parametrize("rows", [0, 1, 3, 13, 32, 75, 200])  # 13, 75: row chunks of a multiple of 8 and a rest
@pytest.mark.parametrize("shape", [(96, 64), (200, 72)])  # 200 outputs: a partial last panel
def test_packed_weight_matches_f_linear(float32_path, rows, shape):
    gen = torch.Generator().manual_seed(2)
    weight, bias = torch.randn(*shape, generator=gen), torch.randn(shape[0], generator=gen)
    kernel = PackedWeight(weight)
    assert (kernel.panels is not None) == (float32_path == "panels")
    x = torch.randn(rows, shape[1], generator=gen)
    strided = torch.randn(rows, 2 * shape[1], generator=gen)[:, 1::2]  # unit stride in neither dimension
    sliced = torch.randn(rows, shape[1] + 8, generator=gen)[:, 8:]  # rows apart by more than their length
    for a in (x, strided, sliced):
        torch.testing.assert_close(kernel(a, bias), F.linear(a, weight, bias), rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(kernel(a), F.linear(a, weight), rtol=1e-5, atol=1e-4)


@pytest.mark.skipif(not panels_available(), reason="no brgemm panels here")
@pytest.mark.parametrize("threads", [1, 3])  # 3 threads, 2 panels: the rows split across threads too
def test_panel_product_without_onednn_and_across_threads(threads, monkeypatch):
    """With oneDNN turned off PyTorch's brgemm takes its gemm fallback; the results stay the same."""
    _C = native.kernels()
    gen = torch.Generator().manual_seed(4)
    weight, x = torch.randn(100, 48, generator=gen), torch.randn(150, 48, generator=gen)
    panels = _C.pack_panels(weight)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.testing.assert_close(_C.panel_linear(x, panels, 100), F.linear(x, weight), rtol=1e-5, atol=1e-4)
        monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
        torch.testing.assert_close(_C.panel_linear(x, panels, 100), F.linear(x, weight), rtol=1e-5, atol=1e-4)
    finally:
        torch.set_num_threads(saved)


@pytest.mark.skipif(not panels_available(), reason="no brgemm panels here")
def test_panel_product_rejects_mismatched_inputs():
    _C = native.kernels()
    panels = _C.pack_panels(torch.randn(96, 64))
    with pytest.raises(RuntimeError, match="pack_panels"):
        _C.panel_linear(torch.randn(3, 32), panels, 96)
    with pytest.raises(RuntimeError, match="float32"):
        _C.panel_linear(torch.randn(3, 64, dtype=torch.bfloat16), panels, 96)
    with pytest.raises(RuntimeError, match="bias"):
        _C.panel_linear(torch.randn(3, 64), panels, 96, torch.randn(95))


@pytest.mark.skipif(not onednn_available(), reason="PyTorch without oneDNN")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_short_inputs_run_padded_and_keep_their_rows(dtype, monkeypatch):
    """On oneDNN's op, inputs shorter than ``min_rows`` run padded (float32 on AVX-512 CPUs):
    every call, of any length and in any order, still gives each row's own product and nothing
    of the others'."""
    monkeypatch.setenv(PANEL_ENV, "0")
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(96, 64, generator=gen).to(dtype)
    kernel = PackedWeight(weight)
    expected_min = 6 if dtype == torch.float32 and "avx512f" in cpu_info.instruction_sets() else 1
    assert kernel.min_rows == expected_min
    tolerance = {"rtol": 1e-5, "atol": 1e-4} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    held = []
    for rows, inference in ((5, True), (1, False), (0, True), (3, False), (7, True), (2, False)):
        x = torch.randn(rows, 64, generator=gen).to(dtype)
        with torch.inference_mode(inference):  # the engine's steps run in inference mode, tools may not
            out = kernel(x)
        assert out.shape == (rows, 96) and out.is_contiguous()
        torch.testing.assert_close(out.float(), F.linear(x.float(), weight.float()), **tolerance)
        held.append((out, out.clone()))
    assert all(torch.equal(out, copy) for out, copy in held), "a later call changed an earlier output"


def test_engine_uses_the_cpu_runner(tmp_path):
    from llmrt import LLM
    from llmrt.testing import build_tiny_model

    llm = LLM(model=str(build_tiny_model("llama", tmp_path / "llama")), backend="cpu", dtype="float32")
    runner = llm.llm_engine.runner
    assert isinstance(runner, CpuModelRunner) and runner.sampler.draw is sample_categorical
    methods = [m.quant_method for m in runner.model.modules() if hasattr(m, "quant_method")]
    assert runner.model.lm_head.quant_method in methods
    packed = [isinstance(m, PackedLinearMethod) and m.kernel is not None for m in methods]
    assert methods and all(packed) == onednn_available()


def test_kv_blocks_default_to_the_backends_size_unless_chosen(tmp_path):
    from llmrt import LLM
    from llmrt.testing import build_tiny_model
    from llmrt_cpu.backend import DEFAULT_BLOCK_SIZE

    model = str(build_tiny_model("qwen3", tmp_path / "qwen3"))
    for chosen, expected in ((None, DEFAULT_BLOCK_SIZE), (16, 16)):
        engine = LLM(model=model, backend="cpu", block_size=chosen).llm_engine
        assert engine.config.cache.block_size == engine.runner.block_size == expected
        assert engine.kv_cache_manager.block_size == expected
