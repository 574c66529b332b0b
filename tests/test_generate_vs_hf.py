"""Greedy generation on the CPU backend equals Hugging Face transformers, token for token.

Float32, every supported architecture, batches of 16+ prompts of varied lengths: plain,
with chunked prefill forced by a small token budget, with prefix-cache hits, and with a KV
cache too small for the whole batch (preemption by recompute).
"""

import random

import pytest

from llmrt import LLM, SamplingParams
from llmrt.testing import TINY_ARCHITECTURES, build_tiny_model, random_prompts
from llmrt.testing.hf_reference import hf_greedy

MAX_TOKENS = 12
VOCAB = 500  # ids of the tiny tokenizer's ordinary tokens (the vocabulary has 512)


@pytest.fixture(scope="module", params=TINY_ARCHITECTURES)
def model_dir(request, tmp_path_factory):
    return str(build_tiny_model(request.param, tmp_path_factory.mktemp(request.param)))


def _shared_prefix_prompts(vocab_source, count: int) -> list[list[int]]:
    rng = random.Random(7)
    bases = random_prompts(vocab_source, 3, 33, 48, seed=3)
    tails = random_prompts(vocab_source, count, 1, 20, seed=4)
    return [bases[rng.randrange(3)] + tail for tail in tails]


def _generate(model_dir: str, prompts: list[list[int]], **engine_args):
    llm = LLM(model=model_dir, backend="cpu", **engine_args)
    params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
    outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    return llm, outputs


def _assert_equal_to_hf(model_dir, prompts, outputs):
    expected = hf_greedy(model_dir, prompts, MAX_TOKENS)
    for index, (output, reference) in enumerate(zip(outputs, expected)):
        assert output.outputs[0].token_ids == reference, f"prompt {index} (length {len(prompts[index])})"


def test_batch_of_varied_lengths(model_dir):
    prompts = random_prompts(VOCAB, 16, 3, 70, seed=1)
    _, outputs = _generate(model_dir, prompts)
    _assert_equal_to_hf(model_dir, prompts, outputs)


def test_chunked_prefill_with_a_small_token_budget(model_dir):
    prompts = random_prompts(VOCAB, 16, 20, 90, seed=2)
    _, outputs = _generate(model_dir, prompts, max_num_batched_tokens=24, max_num_seqs=6)
    _assert_equal_to_hf(model_dir, prompts, outputs)


def test_prefix_cache_hits(model_dir):
    prompts = _shared_prefix_prompts(VOCAB, 16)
    llm, first = _generate(model_dir, prompts, block_size=16)  # the shared prefix spans blocks
    params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
    second = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    assert all(o.num_cached_tokens >= 32 for o in second)
    _assert_equal_to_hf(model_dir, prompts, first)
    _assert_equal_to_hf(model_dir, prompts, second)


def test_preemption_with_a_kv_cache_too_small_for_the_batch(model_dir):
    prompts = random_prompts(VOCAB, 16, 20, 60, seed=5)
    llm, outputs = _generate(model_dir, prompts, num_gpu_blocks_override=14, block_size=8,
                             max_model_len=128)
    assert llm.llm_engine.scheduler.num_preemptions > 0
    _assert_equal_to_hf(model_dir, prompts, outputs)


def test_preemption_by_swapping_to_host_memory(model_dir):
    prompts = random_prompts(VOCAB, 16, 20, 60, seed=6)
    llm, outputs = _generate(model_dir, prompts, num_gpu_blocks_override=14, block_size=8, max_model_len=128,
                             preemption_mode="swap", swap_space=0.01)
    assert llm.llm_engine.scheduler.num_preemptions > 0
    _assert_equal_to_hf(model_dir, prompts, outputs)
