"""Every core architecture against Hugging Face transformers on the same tiny random weights.

For each tiny model: logits of a whole prompt (longer than the sliding window), the same
prompt prefilled in chunks over the paged cache, and greedy decoding of two sequences batched
together, token for token against ``generate``. float32 throughout (atol 1e-4); one bf16
check per architecture that the top token agrees within the other side's top-5.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from llmrt.attention.metadata import AttentionMetadata
from llmrt.attention.torch_paged import TorchPagedAttention
from llmrt.model.architectures import ARCHITECTURES, decoder_factory
from llmrt.model.context import LayerContext
from llmrt.model.hf_config import load_hf_config
from llmrt.model.loader import load_model
from llmrt.ops.torch_ops import reference_ops
from llmrt.testing.tiny_models import TINY_ARCHITECTURES, build_tiny_model, random_prompts
from transformers import AutoModelForCausalLM

BLOCK_SIZE = 4
NUM_BLOCKS = 64
ATOL = 1e-4


class PagedHarness:
    """A minimal model runner: per-sequence block lists over freshly allocated caches."""

    def __init__(self, model, num_blocks: int = NUM_BLOCKS, block_size: int = BLOCK_SIZE) -> None:
        self.model = model
        self.block_size = block_size
        self.free = list(range(num_blocks - 1, -1, -1))  # hand out blocks in a scrambled order
        self.free = self.free[::2] + self.free[1::2]
        self.blocks: dict[int, list[int]] = {}
        self.lengths: dict[int, int] = {}
        dtype = next(model.parameters()).dtype
        for layer in model.attention_layers():
            layer.kv_cache = torch.zeros(layer.kv_cache_shape(num_blocks, block_size), dtype=dtype)

    def step(self, batch: list[tuple[int, list[int]]], rows: list[int] | None = None) -> torch.Tensor:
        """Run ``[(seq_id, new_tokens), ...]`` as one flattened step; logits of every token, or of
        the flat token rows ``rows`` only (through ``forward_rows``)."""
        query_lens, context_lens, tables, ids, positions = [], [], [], [], []
        for seq_id, tokens in batch:
            start = self.lengths.get(seq_id, 0)
            blocks = self.blocks.setdefault(seq_id, [])
            while len(blocks) * self.block_size < start + len(tokens):
                blocks.append(self.free.pop())
            query_lens.append(len(tokens))
            context_lens.append(start)
            tables.append(list(blocks))
            ids += tokens
            positions += range(start, start + len(tokens))
            self.lengths[seq_id] = start + len(tokens)
        meta = AttentionMetadata.build(query_lens, context_lens, tables, self.block_size, "cpu")
        with torch.inference_mode():
            if rows is None:
                hidden = self.model(torch.tensor(ids), torch.tensor(positions), meta)
            else:
                index = torch.tensor(rows, dtype=torch.long)
                hidden = self.model.forward_rows(torch.tensor(ids), torch.tensor(positions), meta, index)
            return self.model.compute_logits(hidden)


def _llmrt_model(model_dir: Path, dtype: torch.dtype = torch.float32):
    hf_config = load_hf_config(model_dir)
    ctx = LayerContext(reference_ops(), TorchPagedAttention, None, dtype, torch.device("cpu"))
    factory = decoder_factory(ARCHITECTURES[hf_config.architectures[0]])
    return load_model(model_dir, hf_config, ctx, factory)


def _hf_model(model_dir: Path, dtype: torch.dtype = torch.float32):
    return AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=dtype, attn_implementation="eager"
    ).eval()


@pytest.fixture(scope="module", params=TINY_ARCHITECTURES)
def models(request, tmp_path_factory):
    """(arch, model dir, HF model, llmrt model, prompts) for one tiny architecture."""
    arch = request.param
    model_dir = build_tiny_model(arch, tmp_path_factory.mktemp(arch))
    hf_config = load_hf_config(model_dir)
    prompts = random_prompts(hf_config.vocab_size, 2, 20, 24, seed=1)
    prompts[0] = random_prompts(hf_config.vocab_size, 1, 41, 41, seed=2)[
        0
    ]  # longer than the window (32)
    return arch, model_dir, _hf_model(model_dir), _llmrt_model(model_dir), prompts


def _hf_logits(hf, tokens: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return hf(torch.tensor([tokens])).logits[0].float()


def test_full_prompt_logits_match(models):
    arch, _, hf, model, prompts = models
    expected = _hf_logits(hf, prompts[0])
    got = PagedHarness(model).step([(0, prompts[0])])
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0, msg=lambda m: f"{arch}: {m}")


def test_chunked_prefill_over_cache_matches(models):
    arch, _, hf, model, prompts = models
    prompt = prompts[0]
    expected = _hf_logits(hf, prompt)
    harness = PagedHarness(model)
    cuts = [0, 15, 28, len(prompt)]  # chunk boundaries not aligned to the block size
    got = torch.cat([harness.step([(0, prompt[a:b])]) for a, b in itertools.pairwise(cuts)])
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0, msg=lambda m: f"{arch}: {m}")


def test_mixed_batch_chunk_and_fresh_prompt(models):
    """One step holding a chunk continuing a cached prefix and a whole new prompt."""
    arch, _, hf, model, prompts = models
    harness = PagedHarness(model)
    harness.step([(0, prompts[0][:17])])
    logits = harness.step([(0, prompts[0][17:]), (1, prompts[1])])
    split = len(prompts[0]) - 17
    torch.testing.assert_close(logits[:split], _hf_logits(hf, prompts[0])[17:], atol=ATOL, rtol=0)
    torch.testing.assert_close(logits[split:], _hf_logits(hf, prompts[1]), atol=ATOL, rtol=0)


def test_forward_rows_keeps_the_cache_of_rows_left_out(models):
    """``forward_rows`` gives the logits of its rows alone, and the tokens it leaves out (a whole
    first chunk here) still have their keys and values cached for the next step."""
    arch, _, hf, model, prompts = models
    harness = PagedHarness(model)
    assert harness.step([(0, prompts[0][:17])], rows=[]).shape[0] == 0
    split = len(prompts[0]) - 17
    rows = [split + len(prompts[1]) - 1, split - 1, split + 3, split - 1]  # unsorted, one twice
    logits = harness.step([(0, prompts[0][17:]), (1, prompts[1])], rows=rows)
    last, second = _hf_logits(hf, prompts[0])[-1], _hf_logits(hf, prompts[1])
    expected = torch.stack([second[-1], last, second[3], last])
    torch.testing.assert_close(logits, expected, atol=ATOL, rtol=0, msg=lambda m: f"{arch}: {m}")


def test_greedy_decode_batched_matches_generate(models):
    arch, _, hf, model, prompts = models
    steps = 6
    expected = []
    for prompt in prompts:
        with torch.inference_mode():
            out = hf.generate(
                torch.tensor([prompt]),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                max_new_tokens=steps,
                do_sample=False,
            )
        expected.append(out[0, len(prompt) :].tolist())
    harness = PagedHarness(model)
    logits = harness.step([(i, p) for i, p in enumerate(prompts)])
    ends = torch.tensor([len(prompts[0]), len(prompts[0]) + len(prompts[1])]) - 1
    generated = [[t] for t in logits[ends].argmax(-1).tolist()]
    for _ in range(steps - 1):
        logits = harness.step([(i, [g[-1]]) for i, g in enumerate(generated)])
        for g, token in zip(generated, logits.argmax(-1).tolist(), strict=True):
            g.append(token)
    for i, (want, got) in enumerate(zip(expected, generated, strict=True)):
        assert want, f"{arch}: HF generated nothing for prompt {i}"
        assert got[: len(want)] == want, f"{arch} prompt {i}: llmrt {got} vs HF {want}"


def test_bfloat16_top_token_within_hf_top5(models):
    arch, model_dir, _, _, prompts = models
    hf = _hf_model(model_dir, torch.bfloat16)
    model = _llmrt_model(model_dir, torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16
    got = PagedHarness(model).step([(0, prompts[1])])
    expected = _hf_logits(hf, prompts[1])
    assert got.dtype == torch.float32
    top5 = expected.topk(5, dim=-1).indices
    ours = got.argmax(-1, keepdim=True)
    assert (top5 == ours).any(-1).all(), f"{arch}: bf16 top token outside HF's top-5"
    assert (got - expected).abs().max() < 0.5


def test_every_tiny_architecture_is_registered():
    seen = {}
    from llmrt.model.architectures import register_core_architectures

    register_core_architectures(lambda name, factory: seen.setdefault(name, factory))
    assert set(seen) == set(ARCHITECTURES)
    assert {
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "Gemma2ForCausalLM",
        "Gemma3ForCausalLM",
    } <= set(seen)


def test_profiling_forward_without_bound_cache(models):
    """The runner's profiling pass: fresh prompts only, before any cache is allocated."""
    arch, _, hf, model, prompts = models
    layers = model.attention_layers()
    saved = [layer.kv_cache for layer in layers]
    for layer in layers:
        layer.kv_cache = None
    try:
        meta = AttentionMetadata.build([len(prompts[1])], [0], [[0] * 8], BLOCK_SIZE, "cpu")
        with torch.inference_mode():
            hidden = model(torch.tensor(prompts[1]), torch.arange(len(prompts[1])), meta)
            logits = model.compute_logits(hidden)
        torch.testing.assert_close(logits, _hf_logits(hf, prompts[1]), atol=ATOL, rtol=0)
    finally:
        for layer, cache in zip(layers, saved, strict=True):
            layer.kv_cache = cache
