"""Greedy generation on the CUDA backend against Hugging Face transformers (on the CPU).

Every supported architecture: in float32 the tokens are equal (a batch of varied lengths with
CUDA graphs for decode, chunked prefill under a small token budget, prefix-cache hits, and
eager mode); in bf16 (batches, and one sequence at a time, whose products run the GEMV kernel)
the first token that differs is within transformers' top 5 at that point.
Skips where no NVIDIA GPU is usable.
"""

import pytest
import torch
from llmrt import LLM, SamplingParams
from llmrt.testing import TINY_ARCHITECTURES, build_tiny_model, random_prompts
from llmrt.testing.hf_reference import hf_greedy, hf_logprobs

MAX_TOKENS = 12
VOCAB = 500

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no NVIDIA GPU is visible")


@pytest.fixture(scope="module", params=TINY_ARCHITECTURES)
def model_dir(request, tmp_path_factory):
    return str(build_tiny_model(request.param, tmp_path_factory.mktemp(request.param)))


def _generate(model_dir, prompts, **engine_args):
    engine_args = {"dtype": "float32", "max_num_seqs": 16, **engine_args}
    llm = LLM(model=model_dir, backend="cuda", **engine_args)
    params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
    return llm, [
        o.outputs[0].token_ids
        for o in llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    ]


def test_float32_equals_transformers(model_dir):
    prompts = random_prompts(VOCAB, 16, 3, 70, seed=1)
    llm, got = _generate(model_dir, prompts)
    assert llm.llm_engine.runner.graphs is not None, "decode steps should replay CUDA graphs"
    assert got == hf_greedy(model_dir, prompts, MAX_TOKENS)


def test_float32_chunked_prefill_and_prefix_cache(model_dir):
    prompts = random_prompts(VOCAB, 3, 40, 48, seed=3)
    prompts = [
        prompts[i % 3] + tail for i, tail in enumerate(random_prompts(VOCAB, 12, 1, 20, seed=4))
    ]
    # 16-token blocks: the 40-48-token shared prefixes fill two (the backend's default is 64)
    llm, first = _generate(model_dir, prompts, max_num_batched_tokens=24, max_num_seqs=6, block_size=16)
    params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
    second = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    assert all(o.num_cached_tokens >= 32 for o in second)
    expected = hf_greedy(model_dir, prompts, MAX_TOKENS)
    assert first == expected
    assert [o.outputs[0].token_ids for o in second] == expected


def test_float32_eager(model_dir):
    prompts = random_prompts(VOCAB, 6, 3, 50, seed=5)
    llm, got = _generate(model_dir, prompts, enforce_eager=True)
    assert llm.llm_engine.runner.graphs is None
    assert got == hf_greedy(model_dir, prompts, MAX_TOKENS)


@pytest.mark.parametrize("max_num_seqs", [16, 1])  # 1: every decode product is a single row (GEMV)
def test_bf16_first_difference_within_top5(model_dir, max_num_seqs):
    prompts = random_prompts(VOCAB, 8 if max_num_seqs > 1 else 3, 3, 60, seed=6)
    _, got = _generate(model_dir, prompts, dtype="bfloat16", max_num_seqs=max_num_seqs)
    expected = hf_greedy(model_dir, prompts, MAX_TOKENS, dtype=torch.bfloat16)
    for prompt, ours, theirs in zip(prompts, got, expected, strict=True):
        diff = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b), None)
        if diff is None:
            continue
        top5 = (
            hf_logprobs(model_dir, prompt + theirs[:diff], dtype=torch.bfloat16)[-1]
            .topk(5)
            .indices.tolist()
        )
        assert ours[diff] in top5, (
            f"token {diff}: ours {ours[diff]} not in transformers' top 5 {top5}"
        )
