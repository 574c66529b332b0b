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


def _run_capped(engine, max_steps=400):
    """Step until done; a stalled engine fails the test instead of hanging it."""
    outputs = {}
    for _ in range(max_steps):
        outputs.update((o.request_id, o) for o in engine.step() if o.finished)
        if not engine.has_unfinished_requests():
            return outputs
    raise AssertionError(f"still unfinished after {max_steps} steps")


@pytest.mark.parametrize(("blocks", "limits"), [
    (6, {}),  # 6 blocks of 4 tokens: room for one beam and a bit
    (9, {"max_num_batched_tokens": 3}),  # a preempted beam recomputes in chunks beside idle ones
    (8, {"max_num_seqs": 4, "scheduling_policy": "priority"}),  # the second group has priority
])
def test_beam_groups_finish_when_their_beams_outgrow_the_kv_cache(model_dir, blocks, limits):
    """Two groups whose beams need more blocks (or seats) than there are: beams that reported are
    preempted and parked until their group chooses, so that the others can run; every group
    finishes with the tokens it gets with room to spare."""
    prompts = random_prompts(500, 2, 10, 10, seed=5)
    params = SamplingParams(use_beam_search=True, beam_width=4, max_tokens=8, ignore_eos=True)
    results = []
    for num_blocks, settings in ((64, {}), (blocks, limits)):
        settings = {"max_num_batched_tokens": 64, **settings}
        engine = LLM(model=model_dir, backend="cpu", block_size=4, num_gpu_blocks_override=num_blocks,
                     **settings).llm_engine
        engine.add_request("r0", {"prompt_token_ids": prompts[0]}, params, priority=1)
        engine.step()
        engine.add_request("r1", {"prompt_token_ids": prompts[1]}, params, priority=0)
        outputs = _run_capped(engine)
        results.append([outputs[f"r{i}"].outputs[0].token_ids for i in range(len(prompts))])
        assert engine.block_pool.num_free_blocks == engine.num_blocks
    assert results[0] == results[1]
    assert engine.scheduler.num_preemptions > 0


def test_a_beam_too_large_for_the_kv_cache_fails_its_request(model_dir):
    """A beam that cannot fit in the whole cache ends its request with an error, and the
    engine goes on serving."""
    engine = LLM(model=model_dir, backend="cpu", block_size=4, num_gpu_blocks_override=4,
                 max_num_batched_tokens=64).llm_engine
    engine.add_request("beams", {"prompt_token_ids": list(range(5, 15))},
                       SamplingParams(use_beam_search=True, beam_width=4, max_tokens=8, ignore_eos=True))
    outputs = _run_capped(engine)
    failed = outputs["beams"].outputs[0]
    assert failed.finish_reason == "error" and "KV cache is too small" in failed.stop_reason
    assert engine.block_pool.num_free_blocks == engine.num_blocks
    engine.add_request("plain", {"prompt_token_ids": [5, 6, 7]}, SamplingParams(max_tokens=4, ignore_eos=True))
    assert len(_run_capped(engine)["plain"].outputs[0].token_ids) == 4


def test_beams_fork_in_place_when_the_group_fills_max_num_seqs(model_dir):
    """A group as wide as max_num_seqs still forks its beams onto shared KV blocks: the seats
    of unchosen beams and of the root's reservation go to the forks, so nothing is recomputed."""
    prompt = random_prompts(500, 1, 16, 16, seed=9)[0]
    params = SamplingParams(use_beam_search=True, beam_width=4, max_tokens=4, ignore_eos=True)
    computed = []
    for max_num_seqs in (256, 4):
        engine = LLM(model=model_dir, backend="cpu", max_num_seqs=max_num_seqs).llm_engine
        scheduled, schedule = [], engine.scheduler.schedule
        engine.scheduler.schedule = lambda: scheduled.append(out := schedule()) or out
        engine.add_request("r", {"prompt_token_ids": prompt}, params)
        _run_capped(engine)
        computed.append(sum(out.num_batched_tokens for out in scheduled))
    assert computed[1] == computed[0]
