"""Beam search inside the engine equals Hugging Face transformers' beam search, token for token."""

import pytest
import torch

from llmrt import LLM, SamplingParams
from llmrt.testing import build_tiny_model, random_prompts
from llmrt.testing.hf_reference import load_hf_model

MAX_TOKENS = 10
WIDTH = 4


@pytest.fixture(scope="module", params=["llama", "qwen3", "gemma2"])
def model_dir(request, tmp_path_factory):
    return str(build_tiny_model(request.param, tmp_path_factory.mktemp(request.param)))


@pytest.fixture(scope="module")
def llm(model_dir):
    return LLM(model=model_dir, backend="cpu", max_num_batched_tokens=64)


@torch.inference_mode()
def _hf_beam(model_dir, prompt, length_penalty, eos):
    model = load_hf_model(model_dir)
    out = model.generate(torch.tensor([prompt]), num_beams=WIDTH, max_new_tokens=MAX_TOKENS, do_sample=False,
                         length_penalty=length_penalty, early_stopping=False, eos_token_id=eos,
                         num_return_sequences=1, pad_token_id=2)
    return out[0, len(prompt):].tolist()


@pytest.mark.parametrize("length_penalty", [1.0, 0.5, 2.0, -1.0])
def test_beam_search_equals_transformers(llm, model_dir, length_penalty):
    prompts = random_prompts(500, 6, 4, 30, seed=17)
    greedy = llm.generate([{"prompt_token_ids": p} for p in prompts],
                          SamplingParams(temperature=0, max_tokens=3, ignore_eos=True), use_tqdm=False)
    # Frequent tokens as extra stop ids, so that hypotheses also finish before max_tokens.
    extra_stops = sorted({o.outputs[0].token_ids[2] for o in greedy})[:3]
    params = SamplingParams(use_beam_search=True, beam_width=WIDTH, max_tokens=MAX_TOKENS, temperature=0.0,
                            length_penalty=length_penalty, stop_token_ids=extra_stops)
    outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    ended_early = 0
    for prompt, output in zip(prompts, outputs):
        expected = _hf_beam(model_dir, prompt, length_penalty, [1, 4] + extra_stops)
        assert output.outputs[0].token_ids == expected, f"prompt {prompt}"
        ended_early += len(expected) < MAX_TOKENS
    if length_penalty < 0:  # favours short hypotheses: the early-finish path must have been taken
        assert ended_early > 0
    engine = llm.llm_engine
    assert not engine.has_unfinished_requests()
    assert engine.block_pool.num_free_blocks == engine.num_blocks


def test_beams_share_kv_blocks(llm):
    engine = llm.llm_engine
    prompt = random_prompts(500, 1, 40, 40, seed=3)[0]
    engine.add_request("beam", {"prompt_token_ids": prompt},
                       SamplingParams(use_beam_search=True, beam_width=WIDTH, max_tokens=6, ignore_eos=True))
    for _ in range(3):
        engine.step()
    group = engine.beam_search.groups["beam"]
    tables = [engine.kv_cache_manager.get_block_ids(b.request.request_id) for b in group.beams]
    assert len(tables) == WIDTH
    # once the beams exist the root no longer keeps room for the width: the group takes WIDTH seats
    # (a preempted beam could otherwise never be readmitted beside its idle siblings)
    assert [b.request.reserved_sequences for b in group.beams] == [1] * WIDTH
    assert len({b for t in tables for b in t}) < sum(len(t) for t in tables)  # prompt blocks are shared
    while engine.has_unfinished_requests():
        engine.step()
    assert engine.block_pool.num_free_blocks == engine.num_blocks


def test_abort_frees_every_beam(llm):
    engine = llm.llm_engine
    engine.add_request("gone", {"prompt_token_ids": [5, 6, 7, 8]},
                       SamplingParams(use_beam_search=True, beam_width=WIDTH, max_tokens=8))
    for _ in range(3):
        engine.step()
    engine.abort_request("gone")
    while engine.has_unfinished_requests():
        engine.step()
    assert engine.block_pool.num_free_blocks == engine.num_blocks


def test_beam_groups_wait_for_room_under_max_num_seqs(model_dir):
    """A beam-search request keeps room for its width: a second group waits, so no step samples
    more rows than max_num_seqs; results are those of each request alone."""
    llm = LLM(model=model_dir, backend="cpu", max_num_seqs=4)
    prompts = random_prompts(500, 2, 4, 12, seed=23)
    params = SamplingParams(use_beam_search=True, beam_width=3, max_tokens=5, ignore_eos=True)
    alone = [llm.generate([{"prompt_token_ids": p}], params, use_tqdm=False)[0].outputs[0].token_ids
             for p in prompts]
    engine, rows = llm.llm_engine, []
    sample = engine.runner._sample
    engine.runner._sample = lambda requests, logits, result: rows.append(len(requests)) or sample(
        requests, logits, result)
    together = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in together] == alone
    assert max(rows) <= 4
