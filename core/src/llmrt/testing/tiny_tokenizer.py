"""Offline-trained byte-level BPE tokenizer for tiny test models.

Nothing is downloaded: the tokenizer is trained with the ``tokenizers`` library on a
small corpus built into this module (English prose, Python code, CJK text, emoji).
Because the initial alphabet holds all 256 byte symbols, every string round-trips
through ``encode``/``decode``.

Two flavors exist because transformers 5.x ``AutoTokenizer`` ignores the
normalizer/pre-tokenizer of tokenizer.json for ``model_type == "qwen2"`` and rebuilds
them as ``Qwen2Tokenizer`` does (NFC normalizer, Qwen split regex). The ``"qwen2"``
flavor is trained with exactly that pipeline so tokenizer.json and transformers agree;
it round-trips NFC text only. The ``"bytelevel"`` flavor (GPT-2 regex, no normalizer)
round-trips any string.

The tokenizer behaves like a Llama-3-style tokenizer: ``encode(text)`` prepends
``<|bos|>``; the chat template is ChatML and starts with the BOS token itself, so
chat prompts must be tokenized with ``add_special_tokens=False`` (as
``apply_chat_template`` does).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX as _QWEN2_REGEX

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"
IM_START_TOKEN = "<|im_start|>"
IM_END_TOKEN = "<|im_end|>"

#: Special tokens in id order: they get ids 0..4 in every tiny tokenizer.
SPECIAL_TOKENS: tuple[str, ...] = (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, IM_START_TOKEN, IM_END_TOKEN)

#: Tokenizer flavors ``train_tiny_tokenizer`` accepts.
TOKENIZER_FLAVORS: tuple[str, ...] = ("bytelevel", "qwen2")

#: ChatML chat template (system/user/assistant, ``add_generation_prompt``).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_ENGLISH = """\
The small runtime reads a prompt, splits it into tokens, and feeds them to the model one
batch at a time. Each request keeps its own cache of keys and values, stored in fixed-size
blocks so that memory can be shared and reused without copying. When a request finishes,
its blocks return to the free list and another request may claim them at once.
A scheduler decides which requests run in the next step. It prefers requests that are
already decoding, because they hold memory, and then admits new prompts while the token
budget allows. Long prompts are split into chunks so that short requests are not starved.
Greedy decoding picks the most likely token at every step; sampling draws from the
distribution after temperature, top-k and top-p have been applied. A stop string ends the
output early, and the detokenizer must never emit half of a multi-byte character.
Good tests compare the runtime with a reference implementation on the same weights, token
by token, and they check what happens when things go wrong: a request is cancelled, the
cache runs out of blocks, or the model raises an error in the middle of a batch.
Numbers such as 0, 1, 2, 3, 10, 42, 100, 256, 1024 and 65536 appear often in logs.
"""

_CODE = '''\
import math
from dataclasses import dataclass, field


@dataclass
class Block:
    """A fixed-size slab of cache memory."""

    index: int
    ref_count: int = 0
    tokens: list[int] = field(default_factory=list)

    def is_full(self, block_size: int) -> bool:
        return len(self.tokens) >= block_size


def softmax(values: list[float]) -> list[float]:
    peak = max(values)
    exps = [math.exp(v - peak) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


class Allocator:
    def __init__(self, num_blocks: int) -> None:
        self.free = [Block(i) for i in range(num_blocks)]

    def allocate(self) -> Block:
        if not self.free:
            raise RuntimeError("out of cache blocks")
        block = self.free.pop()
        block.ref_count = 1
        return block

    def release(self, block: Block) -> None:
        block.ref_count -= 1
        if block.ref_count == 0:
            block.tokens.clear()
            self.free.append(block)


for step in range(4):
    print(f"step={step} probs={softmax([1.0, 2.0, 3.0])!r}")
'''

_MULTILINGUAL = """\
你好，世界！今天天气很好，我们一起去公园散步吧。模型会把文字切成词元，然后逐个生成。
日本語のテキストも少し入れておきます。東京は大きな都市です。ありがとうございます。
한국어 문장도 있습니다. 안녕하세요, 만나서 반갑습니다.
Emoji: 😀 😃 😄 🚀 🔥 ✨ 👍 🎉 ❤️ 🤖 🧪 📦 — and accents: café, naïve, über, señor, façade.
Symbols: ∑ ∫ √ π ≈ ≠ ≤ ≥ → ← ← ⇒ € £ ¥ © ® ™ ° ± × ÷.
"""


def tiny_corpus() -> list[str]:
    """Return the built-in training corpus as a list of documents (deterministic)."""
    docs = [_ENGLISH, _CODE, _MULTILINGUAL]
    # Repeat short numbered lines so digits and common words merge predictably.
    docs += [f"Line {i}: the value of x[{i}] is {i * i} and y = {i % 7}.\n" for i in range(64)]
    return docs


def _set_pipeline(tokenizer: Tokenizer, flavor: str) -> None:
    """Install the normalizer, pre-tokenizer and decoder of ``flavor`` on ``tokenizer``."""
    if flavor == "bytelevel":
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif flavor == "qwen2":
        tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_QWEN2_REGEX), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        raise ValueError(f"unknown tokenizer flavor {flavor!r}; choose from {TOKENIZER_FLAVORS}")
    tokenizer.decoder = decoders.ByteLevel()


@functools.cache
def _tokenizer_json(vocab_size: int, flavor: str) -> str:
    """Train the BPE model once per (vocab size, flavor) and return its JSON serialization."""
    tokenizer = Tokenizer(models.BPE())
    _set_pipeline(tokenizer, flavor)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(tiny_corpus(), trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS_TOKEN} $A",
                pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B",
                special_tokens=[(BOS_TOKEN, bos_id)],
            ),
        ]
    )
    return tokenizer.to_str()


def train_tiny_tokenizer(
    vocab_size: int = 512, flavor: str = "bytelevel"
) -> PreTrainedTokenizerFast:
    """Return a byte-level BPE tokenizer of ``vocab_size`` tokens (5 special, 256 bytes, merges).

    ``flavor`` is ``"bytelevel"`` (any text round-trips) or ``"qwen2"`` (the pipeline
    transformers forces on qwen2 models; see the module docstring). The built-in corpus
    supports about 610 tokens; a larger ``vocab_size`` yields that many. Training happens
    once per process per (vocab size, flavor); each call returns a fresh tokenizer built
    from the cached serialized form, so callers may mutate it. Deterministic: the same
    arguments give the same tokenizer.json.
    """
    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise ValueError(
            f"vocab_size must be at least {len(SPECIAL_TOKENS) + 256}, got {vocab_size}"
        )
    backend = Tokenizer.from_str(_tokenizer_json(vocab_size, flavor))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=[IM_START_TOKEN, IM_END_TOKEN],
        model_max_length=512,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_tiny_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | os.PathLike) -> None:
    """Save ``tokenizer`` into ``directory`` with the chat template inside tokenizer_config.json.

    ``unk_token`` is written as null explicitly: otherwise ``Qwen2Tokenizer`` (which
    ``AutoTokenizer`` forces on qwen2 models) would add an ``<|endoftext|>`` token
    beyond the model's vocabulary.
    """
    tokenizer.save_pretrained(directory, save_jinja_files=False)
    config_path = Path(directory) / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.setdefault("unk_token", None)
    config_path.write_text(
        json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
