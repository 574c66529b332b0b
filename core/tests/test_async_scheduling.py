"""Asynchronous scheduling gives exactly the outputs of synchronous scheduling.

Each workload runs through two engines on the same tiny model, one with ``async_scheduling``
off and one with it on (the CPU backend computes synchronously, but the engine takes the same
lookahead path as on an accelerator: tokens in flight, placeholders read from the previous
step's tensor, stops found one step late). Greedy and seeded requests must give the same
tokens, text, finish and stop reasons and logprobs, and every KV block must be free at the end.
"""

from __future__ import annotations

import random

import pytest
from llmrt import LLM, SamplingParams
from llmrt.testing import build_tiny_model, random_prompts

VOCAB = 500


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(build_tiny_model("llama", tmp_path_factory.mktemp("llama")))


def _engines(model_dir, **kwargs):
    return [
        LLM(model=model_dir, backend="cpu", async_scheduling=mode, **kwargs)
        for mode in (False, True)
    ]


def _summary(outputs):
    return [
        [(o.token_ids, o.text, o.finish_reason, o.stop_reason, _logprobs(o)) for o in out.outputs]
        + [out.prompt_logprobs is not None and len(out.prompt_logprobs)]
        for out in outputs
    ]


def _logprobs(completion):
    if completion.logprobs is None:
        return None
    return [
        [(token, round(lp.logprob, 4), lp.rank) for token, lp in entry.items()]
        for entry in completion.logprobs
    ]


def _mixed_params(count: int, seed: int) -> list[SamplingParams]:
    """Greedy and seeded requests with every kind of stop, some needing synchronous steps."""
    rng = random.Random(seed)
    params = []
    for index in range(count):
        kind = index % 8
        common = dict(
            max_tokens=rng.randint(1, 24), stop_token_ids=rng.sample(range(10, VOCAB), 25)
        )
        if kind == 0:
            params.append(SamplingParams(temperature=0.0, **common))
        elif kind == 1:
            params.append(SamplingParams(temperature=0.8, top_p=0.9, seed=index, **common))
        elif kind == 2:
            params.append(
                SamplingParams(temperature=0.0, max_tokens=rng.randint(5, 30), stop=["e", "a "])
            )
        elif kind == 3:
            params.append(
                SamplingParams(temperature=0.0, logprobs=3, max_tokens=rng.randint(1, 20))
            )
        elif kind == 4:
            params.append(
                SamplingParams(temperature=0.7, seed=index, n=3, max_tokens=rng.randint(2, 12))
            )
        elif kind == 5:
            params.append(
                SamplingParams(temperature=0.0, repetition_penalty=1.3, min_tokens=1, **common)
            )
        elif kind == 6:
            params.append(
                SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=rng.randint(20, 40))
            )
        else:
            params.append(
                SamplingParams(
                    temperature=1.0,
                    seed=index,
                    top_k=20,
                    max_tokens=rng.randint(1, 16),
                    prompt_logprobs=2,
                )
            )
    return params


def _run_both(engines, prompts, params):
    results = []
    for llm in engines:
        outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        engine = llm.llm_engine
        assert not engine.has_unfinished_requests()
        assert engine.block_pool.num_free_blocks == engine.num_blocks
        results.append(_summary(outputs))
    return results


def test_async_engine_matches_sync_on_mixed_requests(model_dir):
    sync, lookahead = _engines(model_dir, max_num_batched_tokens=64, max_num_seqs=16)
    assert not sync.llm_engine.async_scheduling and lookahead.llm_engine.async_scheduling
    prompts = random_prompts(VOCAB, 40, 3, 50, seed=5)
    params = _mixed_params(len(prompts), seed=6)
    expected, got = _run_both([sync, lookahead], prompts, params)
    assert got == expected


def test_async_engine_matches_sync_under_preemption_and_prefix_hits(model_dir):
    shared = random_prompts(VOCAB, 1, 40, 40, seed=7)[0]
    prompts = [shared + tail for tail in random_prompts(VOCAB, 24, 1, 30, seed=8)]
    params = [
        SamplingParams(
            temperature=0.0 if i % 2 else 0.9,
            seed=i,
            max_tokens=12 + i % 9,
            stop_token_ids=[11, 12, 13],
        )
        for i in range(len(prompts))
    ]
    for preemption in ("recompute", "swap"):
        engines = _engines(
            model_dir,
            num_gpu_blocks_override=24,
            block_size=16,
            max_num_batched_tokens=48,
            preemption_mode=preemption,
            swap_space=0.01 if preemption == "swap" else 0,
        )
        expected, got = _run_both(engines, prompts, params)
        assert got == expected
        assert engines[1].llm_engine.scheduler.num_preemptions > 0


def test_async_engine_stops_at_max_model_len(model_dir):
    engines = _engines(model_dir, max_model_len=48, max_num_batched_tokens=64)
    prompts = random_prompts(VOCAB, 6, 20, 40, seed=9)
    params = SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=None)
    expected, got = _run_both(engines, prompts, params)
    assert got == expected
    assert all(len(p) + len(out[0][0]) == 48 for p, out in zip(prompts, got, strict=True))


def test_async_engine_streams_each_token_once(model_dir):
    """Step by step, outputs arrive one step later but with the same tokens, never an extra one."""
    _, lookahead = _engines(model_dir)
    engine = lookahead.llm_engine
    prompt = random_prompts(VOCAB, 1, 10, 10, seed=10)[0]
    engine.add_request(
        "r",
        {"prompt_token_ids": prompt},
        SamplingParams(temperature=0.0, max_tokens=5, ignore_eos=True),
    )
    lengths = []
    while engine.has_unfinished_requests():
        lengths += [len(o.outputs[0].token_ids) for o in engine.step()]
    assert lengths == [1, 2, 3, 4, 5]
    assert engine.block_pool.num_free_blocks == engine.num_blocks
