"""Conformance suites every backend plugin runs: subclass them in the plugin's tests.

Example (``plugins/mychip/tests/test_conformance.py``)::

    from llmrt.testing.conformance import BackendConformance

    class TestMyChip(BackendConformance):
        backend_name = "mychip"

Tests skip, with the backend's own reason, where the backend is not usable on the machine.
They check the backend's contract (detection, device, memory), that every op and the attention
it resolves to agree with core's reference on random inputs, and that greedy generation on a
tiny model equals Hugging Face transformers token for token.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from llmrt.attention.interface import AttentionConfig
from llmrt.attention.metadata import AttentionMetadata
from llmrt.attention.torch_paged import TorchPagedAttention
from llmrt.backends import Backend, MemoryInfo
from llmrt.backends.selection import backend_report
from llmrt.engine.model_setup import resolve_attention, resolve_ops
from llmrt.ops import torch_ops
from llmrt.ops.interface import compose_qk_norm_rotary
from llmrt.plugins import get_plugin_host


def _tolerance(dtype: torch.dtype) -> dict[str, float]:
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}


class BackendConformance:
    """The contract of a :class:`~llmrt.backends.Backend` plugin, checked on this machine."""

    backend_name: ClassVar[str] = ""
    dtypes: ClassVar[tuple[torch.dtype, ...]] = (torch.float32, torch.bfloat16)
    greedy_architectures: ClassVar[tuple[str, ...]] = ("llama", "qwen3")

    @pytest.fixture(scope="class")
    def status(self):
        """The backend's entry in the plugin report (fails if it is not installed)."""
        statuses = {s.name: s for s in backend_report(get_plugin_host())}
        assert self.backend_name in statuses, f"backend {self.backend_name!r} is not installed"
        return statuses[self.backend_name]

    @pytest.fixture(scope="class")
    def backend(self, status) -> Backend:
        """The backend, skipping the test with its reason when it cannot run here."""
        if not status.availability.usable:
            pytest.skip(f"{self.backend_name} not usable here: {status.availability.reason}")
        return status.backend

    def test_detection_gives_a_reason(self, status):
        assert isinstance(status.availability.reason, str) and status.availability.reason

    def test_identity(self, status):
        assert status.backend.name == self.backend_name
        assert isinstance(status.backend.priority, int)

    def test_memory_info(self, backend):
        info = backend.memory_info()
        assert isinstance(info, MemoryInfo)
        assert 0 < info.free_bytes <= info.total_bytes

    def test_device_holds_tensors(self, backend):
        tensor = torch.arange(8, device=backend.device())
        backend.synchronize()
        assert tensor.sum().item() == 28

    @pytest.mark.parametrize("dtype_index", [0, 1])
    def test_ops_match_core_reference(self, backend, dtype_index):
        dtype = self.dtypes[dtype_index % len(self.dtypes)]
        ops = resolve_ops(get_plugin_host(), backend.name)
        device = backend.device()
        x = torch.randn(5, 64, dtype=dtype, device=device)
        weight = torch.randn(64, dtype=dtype, device=device)
        tol = _tolerance(dtype)
        torch.testing.assert_close(ops.rms_norm(x, weight, 1e-6), torch_ops.rms_norm(x, weight, 1e-6), **tol)
        torch.testing.assert_close(ops.fused_add_rms_norm(x, x.clone(), weight, 1e-6),
                                   torch_ops.fused_add_rms_norm(x, x.clone(), weight, 1e-6), **tol)
        gate_up = torch.randn(5, 128, dtype=dtype, device=device)
        torch.testing.assert_close(ops.silu_and_mul(gate_up), torch_ops.silu_and_mul(gate_up), **tol)
        torch.testing.assert_close(ops.gelu_tanh_and_mul(gate_up), torch_ops.gelu_tanh_and_mul(gate_up), **tol)

    @pytest.mark.parametrize("dtype_index", [0, 1])
    def test_qk_norm_rotary_matches_core_reference(self, backend, dtype_index):
        """Per-head norms of strided q/k views of a fused QKV output, then the rotation."""
        dtype = self.dtypes[dtype_index % len(self.dtypes)]
        ops = resolve_ops(get_plugin_host(), backend.name)
        device, head_size, tokens = backend.device(), 64, 6
        qkv = torch.randn(tokens, 8 * head_size, dtype=dtype, device=device)
        weights = torch.randn(2, head_size, dtype=dtype, device=device)
        angles = torch.arange(32, device=device).float()[:, None] * torch.linspace(1, 1e-3, head_size // 2, device=device)
        cos_sin = torch.cat((angles.cos(), angles.sin()), dim=-1).to(dtype)
        positions = torch.tensor([0, 3, 4, 9, 30, 31], device=device)
        args = (weights[0], weights[1], 1e-6, 0.0, True, cos_sin, head_size, True)

        def run(op):
            fresh = qkv.clone()
            return op(positions, fresh[:, : 6 * head_size], fresh[:, 6 * head_size : 7 * head_size], *args)

        expected = run(compose_qk_norm_rotary(torch_ops.rms_norm, torch_ops.rotary_embedding))
        for got, reference in zip(run(ops.qk_norm_rotary_embedding), expected):
            torch.testing.assert_close(got, reference, **_tolerance(dtype))

    def test_sample_categorical_draws_the_distribution(self, backend):
        """Chi-square at p = 0.001 over 8 tokens (one masked), greedy rows, a long vocabulary."""
        draw = resolve_ops(get_plugin_host(), backend.name).sample_categorical
        device, rows = backend.device(), 40_000
        logits = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, float("-inf"), -1.0, -2.0], device=device)
        temperature = torch.full((rows,), 0.7, device=device)
        temperature[::4] = 0.0  # every fourth row greedy
        torch.manual_seed(0)
        tokens = draw(logits.repeat(rows, 1), temperature).cpu()
        assert tokens.dtype == torch.long and tokens.shape == (rows,)
        assert torch.all(tokens[::4] == 0), "greedy rows must take the argmax"
        random_rows = torch.ones(rows, dtype=torch.bool)
        random_rows[::4] = False
        counts = torch.bincount(tokens[random_rows], minlength=8).double()
        assert counts[5] == 0, "an entry at -inf was drawn"
        expected = torch.softmax(logits.cpu().double() / 0.7, 0) * counts.sum()
        support = expected > 0
        statistic = float(((counts[support] - expected[support]) ** 2 / expected[support]).sum())
        assert statistic < 24.32, f"chi-square {statistic:.1f} over 6 df; counts {counts.tolist()}"
        wide = torch.full((3, 200_003), -30.0, device=device)
        wide[torch.arange(3), torch.tensor([5, 100_000, 200_002])] = 30.0  # one token holds all mass
        assert draw(wide, torch.tensor([1.0, 0.0, 2.0], device=device)).tolist() == [5, 100_000, 200_002]

    def test_attention_matches_core_reference(self, backend):
        name, factory = resolve_attention(get_plugin_host(), backend.name, None)
        device, dtype = backend.device(), self.dtypes[0]
        config = AttentionConfig(num_heads=4, num_kv_heads=2, head_size=16, scale=0.25, sliding_window=None,
                                 logit_softcap=None, dtype=dtype)
        impl, reference = factory(config), TorchPagedAttention(config)
        query_lens, context_lens, block_size = [7, 1, 1], [0, 13, 5], 4
        tables = [[0, 1], [2, 3, 4, 5], [6, 7]]
        metadata = AttentionMetadata.build(query_lens, context_lens, tables, block_size, device)
        shape = TorchPagedAttention.kv_cache_shape(8, block_size, 2, 16)
        cache = torch.randn(shape, dtype=dtype, device=device)
        q = torch.randn(9, 64, dtype=dtype, device=device)
        k, v = torch.randn(9, 32, dtype=dtype, device=device), torch.randn(9, 32, dtype=dtype, device=device)
        expected = reference.forward(q, k, v, cache.clone(), metadata)
        got = impl.forward(q, k, v, cache.clone(), metadata)
        torch.testing.assert_close(got, expected, **_tolerance(dtype), msg=f"attention backend {name!r}")

        if not getattr(impl, "accepts_padded_rows", False):
            return
        # A padded step: rows past num_tokens store nothing and come back zero.
        pad = lambda x: torch.cat([x, torch.randn(3, x.shape[1], dtype=dtype, device=device)])  # noqa: E731
        padded_cache = cache.clone()
        got = impl.forward(pad(q), pad(k), pad(v), padded_cache, metadata)
        assert got.shape == (12, 64), f"attention backend {name!r} returned {tuple(got.shape)} for a padded step"
        torch.testing.assert_close(got[:9], expected, **_tolerance(dtype), msg=f"attention backend {name!r}")
        assert not got[9:].any(), f"attention backend {name!r}: padding rows are not zero"
        unpadded_cache = cache.clone()
        impl.forward(q, k, v, unpadded_cache, metadata)
        assert torch.equal(padded_cache, unpadded_cache), f"attention backend {name!r} stored padding rows"

    @pytest.mark.parametrize("arch_index", [0, 1])
    def test_greedy_generation_matches_transformers(self, backend, arch_index, tmp_path):
        from llmrt import LLM, SamplingParams
        from llmrt.testing.hf_reference import hf_greedy
        from llmrt.testing.tiny_models import build_tiny_model, random_prompts

        arch = self.greedy_architectures[arch_index % len(self.greedy_architectures)]
        model_dir = str(build_tiny_model(arch, tmp_path / arch))
        prompts = random_prompts(500, 6, 3, 40, seed=11)
        llm = LLM(model=model_dir, backend=backend.name, dtype="float32", max_num_batched_tokens=32)
        params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
        outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        expected = hf_greedy(model_dir, prompts, 8)
        assert [o.outputs[0].token_ids for o in outputs] == expected
