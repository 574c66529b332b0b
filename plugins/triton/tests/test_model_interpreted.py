"""Whole tiny models on the Triton kernels equal Hugging Face greedy, token for token (float32).

A test-only backend (``triton_host``) serves the Triton ops and attention on the tensors' own
device: the GPU where there is one, else the CPU under Triton's interpreter. This checks the
kernels inside real model graphs: the q/k norms on strided views, rotary from each family's
table, Gemma's norms, soft-capping and sliding windows, chunked prefill and prefix caching.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch
from llmrt.backends import Availability, Backend, MemoryInfo
from llmrt.config import CacheConfig, EngineConfig, ModelConfig, SchedulerConfig
from llmrt.plugins import hookimpl
from llmrt.sampling_params import SamplingParams
from llmrt.testing import build_tiny_model, random_prompts
from llmrt.testing.hf_reference import hf_greedy
from llmrt.testing.plugin_host import make_plugin_host

MAX_TOKENS = 4


class _TritonHostBackend(Backend):
    name = "triton_host"
    priority = -1
    description = "test backend: the Triton kernels on this machine's default device"

    def detect(self) -> Availability:
        return Availability.yes("test")

    def device(self) -> torch.device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def memory_info(self) -> MemoryInfo:
        return MemoryInfo(1 << 34, 1 << 33)


def _plugin_module() -> types.ModuleType:
    module = types.ModuleType("triton_host_test_plugin")
    module.LLMRT_PLUGIN_API = ">=1,<2"

    @hookimpl
    def llmrt_register_backends(register):
        register(_TritonHostBackend())

    @hookimpl
    def llmrt_register_ops(register):
        from llmrt_triton import register_triton_ops

        register_triton_ops(register, backend="triton_host")

    @hookimpl
    def llmrt_register_attention_backends(register):
        from llmrt_triton import register_triton_attention

        register_triton_attention(register, backend="triton_host")

    module.llmrt_register_backends = llmrt_register_backends
    module.llmrt_register_ops = llmrt_register_ops
    module.llmrt_register_attention_backends = llmrt_register_attention_backends
    sys.modules.setdefault(module.__name__, module)
    return module


def _generate(model_dir: str, prompts: list[list[int]], budget: int) -> list[list[int]]:
    from llmrt.engine.llm_engine import LLMEngine

    host = make_plugin_host(_plugin_module())
    config = EngineConfig(
        model=ModelConfig(model=model_dir, dtype="float32", max_model_len=128),
        cache=CacheConfig(num_blocks_override=64, block_size=8),
        scheduler=SchedulerConfig(max_num_batched_tokens=budget, max_num_seqs=4),
        backend="triton_host",
    )
    engine = LLMEngine(config, host=host)
    assert (
        engine.runner.model.attention_layers()[0].impl.__class__.__name__ == "TritonPagedAttention"
    )
    params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
    for index, prompt in enumerate(prompts):
        engine.add_request(str(index), {"prompt_token_ids": prompt}, params)
    done: dict[str, list[int]] = {}
    while engine.has_unfinished_requests():
        for output in engine.step():
            if output.finished:
                done[output.request_id] = list(output.outputs[0].token_ids)
    return [done[str(i)] for i in range(len(prompts))]


# Qwen3: q/k norms on strided views; Gemma 2: (1 + w) norms, soft-capping, sliding windows.
# (Llama 3 and Gemma 3 pass too; they are left to the GPU run to keep CI fast.)
@pytest.mark.parametrize("arch", ["qwen3", "gemma2"])
def test_greedy_equals_transformers(device, tmp_path, arch):
    model_dir = str(build_tiny_model(arch, tmp_path / arch))
    # Two shared 40-token prefixes (prefix-cache hits), lengths past the 32-token sliding window.
    prompts = random_prompts(500, 2, 40, 40, seed=3)
    prompts = [prompts[0] + [7, 8], prompts[1], prompts[0] + [9]]
    got = _generate(model_dir, prompts, budget=24)  # a small budget: prompts arrive in chunks
    assert got == hf_greedy(model_dir, prompts, MAX_TOKENS)
