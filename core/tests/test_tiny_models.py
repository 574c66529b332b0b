"""Tests for llmrt.testing's tiny random-weight model and tokenizer builders."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
import torch
from llmrt.testing.tiny_models import (
    TINY_ARCHITECTURES,
    TINY_SLIDING_WINDOW,
    build_tiny_model,
    make_tiny_model,
    measure_greedy_margins,
    random_prompts,
    tiny_tokenizer_for,
)
from llmrt.testing.tiny_tokenizer import (
    SPECIAL_TOKENS,
    TOKENIZER_FLAVORS,
    _tokenizer_json,
    train_tiny_tokenizer,
)
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

ROUND_TRIP_TEXTS = [
    "Hello, world!",
    "  leading and trailing spaces  ",
    "def f(x):\n\treturn x ** 2  # comment\r\n",
    "你好，世界！日本語のテキスト。한국어 문장.",
    "emoji 😀🚀🔥👍🏽 family 👨‍👩‍👧 flag 🇯🇵",
    "bytes-ish \x00\x01\x7f \u200b zero-width, ÿ, ǅ",
    "digits 1234567890 and x[12] = 65536",
    "<|im_start|>user\nliteral special text<|im_end|>",
]

# Config changes that must alter the logits of a prompt longer than the sliding window;
# they prove each arch-specific feature is actually exercised by the tiny weights.
FEATURE_TOGGLES = [
    ("llama3", {"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}),
    ("mistral", {"sliding_window": None}),
    ("gemma2", {"sliding_window": 4096}),
    ("gemma2", {"attn_logit_softcapping": None}),
    ("gemma2", {"final_logit_softcapping": None}),
    ("gemma2", {"query_pre_attn_scalar": 32}),
    ("gemma3", {"sliding_window": 4096}),
    ("gemma3", {"query_pre_attn_scalar": 32}),
]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build every tiny architecture once for the whole module."""
    return {
        arch: build_tiny_model(arch, tmp_path_factory.mktemp(arch)) for arch in TINY_ARCHITECTURES
    }


def _read_json(path: Path) -> dict:
    """Load a JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))


def _long_prompt() -> list[int]:
    """A prompt longer than the sliding window."""
    return random_prompts(512, 1, 2 * TINY_SLIDING_WINDOW, 2 * TINY_SLIDING_WINDOW, seed=0)[0]


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_directory_layout(model_dirs: dict[str, Path], arch: str) -> None:
    """The model directory has the Hugging Face files with consistent token ids."""
    path = model_dirs[arch]
    for name in (
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ):
        assert (path / name).is_file(), name
    config = _read_json(path / "config.json")
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (0, 1, 2)
    assert config["vocab_size"] == 512
    generation = _read_json(path / "generation_config.json")
    assert generation["do_sample"] is False
    assert generation["eos_token_id"] == [1, 4]
    assert "im_start" in _read_json(path / "tokenizer_config.json")["chat_template"]


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_transformers_loads_and_generates(model_dirs: dict[str, Path], arch: str) -> None:
    """transformers loads the directory, runs a forward pass and greedy generation."""
    model = AutoModelForCausalLM.from_pretrained(model_dirs[arch])
    tokenizer = AutoTokenizer.from_pretrained(model_dirs[arch])
    ids = tokenizer("The quick brown fox 🦊", return_tensors="pt").input_ids
    assert ids[0, 0].item() == tokenizer.bos_token_id
    with torch.no_grad():
        logits = model(ids).logits
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False
        )
    assert logits.shape == (1, ids.shape[1], 512)
    assert torch.isfinite(logits).all()
    assert out.shape[1] > ids.shape[1]


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_saved_weights_match_in_memory_model(model_dirs: dict[str, Path], arch: str) -> None:
    """The saved model and ``make_tiny_model`` compute the same logits."""
    loaded = AutoModelForCausalLM.from_pretrained(model_dirs[arch])
    fresh = make_tiny_model(arch)
    ids = torch.tensor([_long_prompt()])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, fresh(ids).logits, rtol=0, atol=0)


def test_arch_specific_config_fields(model_dirs: dict[str, Path]) -> None:
    """Each arch's config.json carries the features it is meant to exercise."""
    configs = {arch: _read_json(path / "config.json") for arch, path in model_dirs.items()}
    assert configs["llama3"]["rope_parameters"]["rope_type"] == "llama3"
    assert configs["mistral"]["sliding_window"] == TINY_SLIDING_WINDOW
    assert configs["qwen2"]["tie_word_embeddings"] and configs["qwen3"]["head_dim"] == 32
    assert (
        configs["gemma2"]["attn_logit_softcapping"] and configs["gemma2"]["final_logit_softcapping"]
    )
    for arch in ("gemma2", "gemma3"):
        assert set(configs[arch]["layer_types"]) == {"sliding_attention", "full_attention"}
    with safe_open(model_dirs["qwen2"] / "model.safetensors", "pt") as f:
        assert "model.layers.0.self_attn.q_proj.bias" in f.keys()
    with safe_open(model_dirs["qwen3"] / "model.safetensors", "pt") as f:
        assert "model.layers.0.self_attn.q_norm.weight" in f.keys()


@pytest.mark.parametrize(
    ("arch", "toggle"), FEATURE_TOGGLES, ids=lambda v: v if isinstance(v, str) else next(iter(v))
)
def test_features_change_logits(arch: str, toggle: dict) -> None:
    """Turning an arch feature off changes the logits noticeably, so the feature is exercised."""
    ids = torch.tensor([_long_prompt()])
    with torch.no_grad():
        base = make_tiny_model(arch, attn_implementation="eager")(ids).logits
        toggled = make_tiny_model(arch, attn_implementation="eager", **toggle)(ids).logits
    assert (base - toggled).abs().max().item() > 0.1


def test_chat_template_renders(model_dirs: dict[str, Path]) -> None:
    """The ChatML template renders system/user/assistant turns and the generation prompt."""
    tokenizer = AutoTokenizer.from_pretrained(model_dirs["llama"])
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi 👋"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|bos|><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi 👋<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
    )
    ids = tokenizer.apply_chat_template(
        messages[:2], add_generation_prompt=False, return_dict=False
    )
    assert ids[:2] == [tokenizer.bos_token_id, tokenizer.convert_tokens_to_ids("<|im_start|>")]
    assert ids.count(tokenizer.bos_token_id) == 1


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_saved_tokenizer_round_trips(model_dirs: dict[str, Path], arch: str) -> None:
    """AutoTokenizer on the saved files agrees with the in-memory tokenizer and round-trips text."""
    loaded = AutoTokenizer.from_pretrained(model_dirs[arch])
    reference = tiny_tokenizer_for(arch)
    assert len(loaded) == len(reference) == 512
    assert loaded.all_special_ids == list(range(len(SPECIAL_TOKENS)))
    for text in ROUND_TRIP_TEXTS:
        ids = loaded.encode(text)
        assert ids == reference.encode(text)
        assert ids[0] == loaded.bos_token_id
        assert loaded.decode(ids[1:]) == unicodedata.normalize("NFC", text)


def test_bytelevel_flavor_round_trips_any_text() -> None:
    """The default flavor round-trips non-NFC text and arbitrary code points exactly."""
    tokenizer = train_tiny_tokenizer()
    texts = ROUND_TRIP_TEXTS + ["cafe\u0301 vs café", "".join(chr(c) for c in range(1, 1200, 7))]
    for text in texts:
        assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


@pytest.mark.parametrize("flavor", TOKENIZER_FLAVORS)
def test_tokenizer_training_is_deterministic(flavor: str) -> None:
    """Training again (bypassing the cache) yields the identical tokenizer.json."""
    assert _tokenizer_json.__wrapped__(512, flavor) == _tokenizer_json(512, flavor)
    assert len(train_tiny_tokenizer(512, flavor)) == 512


def test_sharded_save(tmp_path: Path) -> None:
    """max_shard_size splits the weights and writes an index that transformers loads."""
    path = build_tiny_model("llama", tmp_path / "sharded", max_shard_size="100KB")
    index = _read_json(path / "model.safetensors.index.json")
    shards = set(index["weight_map"].values())
    assert len(shards) > 1 and all((path / shard).is_file() for shard in shards)
    assert not (path / "model.safetensors").exists()
    ids = torch.tensor([_long_prompt()])
    with torch.no_grad():
        logits = AutoModelForCausalLM.from_pretrained(path)(ids).logits
        torch.testing.assert_close(logits, make_tiny_model("llama")(ids).logits, rtol=0, atol=0)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    """Equal seeds give byte-identical files; a different seed gives different weights."""
    first = build_tiny_model("qwen3", tmp_path / "a", seed=7)
    second = build_tiny_model("qwen3", tmp_path / "b", seed=7)
    other = build_tiny_model("qwen3", tmp_path / "c", seed=8)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert (first / "model.safetensors").read_bytes() != (other / "model.safetensors").read_bytes()


def test_global_rng_untouched(tmp_path: Path) -> None:
    """Building a model does not disturb the caller's torch RNG stream."""
    state = torch.random.get_rng_state()
    build_tiny_model("llama", tmp_path / "m")
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_dtype(tmp_path: Path, dtype: str) -> None:
    """Low-precision builds store that dtype and still produce finite logits."""
    path = build_tiny_model("gemma2", tmp_path / dtype, dtype=dtype)
    assert _read_json(path / "config.json")["dtype"] == dtype
    with safe_open(path / "model.safetensors", "pt") as f:
        assert f.get_tensor("model.embed_tokens.weight").dtype == getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([_long_prompt()])).logits).all()


def test_config_overrides(tmp_path: Path) -> None:
    """Keyword overrides land in config.json."""
    path = build_tiny_model("llama", tmp_path / "m", num_hidden_layers=3, tie_word_embeddings=True)
    config = _read_json(path / "config.json")
    assert config["num_hidden_layers"] == 3 and config["tie_word_embeddings"] is True


def test_unknown_arch_and_dtype_rejected(tmp_path: Path) -> None:
    """Bad arch or dtype names raise ValueError."""
    with pytest.raises(ValueError, match="unknown tiny arch"):
        build_tiny_model("gpt5", tmp_path)
    with pytest.raises(ValueError, match="unsupported dtype"):
        build_tiny_model("llama", tmp_path, dtype="int8")


def test_random_prompts() -> None:
    """Prompts respect the length range, avoid special ids and are reproducible."""
    tokenizer = train_tiny_tokenizer()
    prompts = random_prompts(tokenizer, 20, 3, 9, seed=5)
    assert len(prompts) == 20
    assert all(3 <= len(p) <= 9 for p in prompts)
    assert len({len(p) for p in prompts}) > 1
    special = set(tokenizer.all_special_ids)
    assert all(0 <= t < len(tokenizer) and t not in special for p in prompts for t in p)
    assert prompts == random_prompts(tokenizer, 20, 3, 9, seed=5)
    assert prompts == random_prompts(len(tokenizer), 20, 3, 9, seed=5)
    assert prompts != random_prompts(tokenizer, 20, 3, 9, seed=6)
    with pytest.raises(ValueError):
        random_prompts(tokenizer, 1, 5, 4)


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_greedy_margins_are_comfortable(arch: str) -> None:
    """Top-1/top-2 logit gaps dwarf float32 noise (~1e-5), so greedy outputs are stable."""
    prompts = random_prompts(tiny_tokenizer_for(arch), 3, 8, 48, seed=11)
    margins = measure_greedy_margins(make_tiny_model(arch), prompts, new_tokens=8)
    assert len(margins) == 24
    assert min(margins) > 1e-3
    assert sorted(margins)[len(margins) // 2] > 0.1
