#!/usr/bin/env python3
"""Train llmrt's demo model: a small Qwen3-style decoder trained from scratch on CPython's stdlib.

The model ships in the ``llmrt-demo-model`` distribution (``demo_model/``) as the offline default
for ``llmrt serve`` (issue 8). The corpus build is byte-for-byte deterministic; training is
seeded (GPU kernels are not bit-exact, so a rerun lands within about 0.01 of the same loss):

1. **Corpus** (``--build-corpus``): every ``.py`` file of one CPython standard library (by
   default this interpreter's, excluding ``test/`` and ``site-packages/``), in sorted path order.
   Every ``--holdout-every``-th file is held out for validation. From the training files only,
   chat examples are derived (a function's docstring summary as the user turn, the function's
   source as the assistant turn) so that chat requests answer with code. A byte-level BPE
   tokenizer is trained on the training files. All of it is written as gzip'd JSON lines plus
   ``tokenizer.json`` and ``manifest.json`` into ``--corpus-dir``, so that another machine (with
   another Python) trains on exactly the same text.
2. **Training** (``--out``): a ``Qwen3ForCausalLM`` from transformers, AdamW with linear warm-up
   and cosine decay, bf16 autocast on CUDA, random fixed-length windows of the tokenized corpus.
   The model is saved in the Hugging Face layout with bfloat16 weights, with its settings and
   final losses in ``train_settings.json``.
3. **Evaluation** (``--evaluate MODEL_DIR``): held-out perplexity on ``heldout.txt`` and a few
   greedy completions, computed with transformers in float32.

Examples::

    # build the corpus here (CPython 3.11.7's stdlib), then a CPU smoke run
    python scripts/train_demo_model.py --build-corpus --corpus-dir .demo_build/corpus
    python scripts/train_demo_model.py --corpus-dir .demo_build/corpus --out /tmp/smoke \\
        --device cpu --steps 20 --warmup-steps 5 --eval-interval 10 --eval-windows 16 \\
        --hidden-size 64 --layers 2 --heads 2 --kv-heads 1 --head-dim 32 \\
        --intermediate-size 128 --seq-len 128 --batch-size 8
    # the shipped model (defaults; one H100 or H200, about a minute)
    python scripts/train_demo_model.py --corpus-dir .demo_build/corpus --out model --device cuda
    # held-out perplexity and greedy samples (CPU)
    python scripts/train_demo_model.py --corpus-dir .demo_build/corpus --evaluate model
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import gzip
import hashlib
import io
import json
import math
import os
import random
import sys
import sysconfig
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
"""ChatML, as Qwen uses it (no default system prompt)."""

CORPUS_FILES = ("train.jsonl.gz", "val.jsonl.gz", "chat.jsonl.gz", "tokenizer.json")
HELDOUT_FILE = "heldout.txt"
HELDOUT_MAX_BYTES = 200_000
SAMPLE_PROMPTS = (  # no trailing newline: BPE merges a newline with the next line's indent
    "def fibonacci(n):",
    "class Stack:\n    \"\"\"A last-in, first-out stack.\"\"\"\n\n    def __init__(self):",
    "import os\n\n\ndef list_python_files(root):",
    "def is_prime(n):\n    \"\"\"Return True if n is a prime number.\"\"\"",
)
SAMPLE_CHAT = (
    "Write a Python function `reverse_words`: Return the words of a string in reverse order."
)


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainSettings:
    """Everything that determines a training run (recorded in ``train_settings.json``).

    The defaults are the shipped model's settings. They were chosen by validation loss among
    eleven runs on one GPU: the corpus (about 4.8M tokens) is small for 11.7M parameters, so the
    model overfits after a few epochs without strong regularisation (dropout 0.3 and weight
    decay 1.0 beat dropout 0-0.2 and weight decay 0.1-0.5).
    """

    seed: int = 1234
    steps: int = 1600
    batch_size: int = 64
    seq_len: int = 1024
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    dropout: float = 0.3
    chat_copies: int = 1
    hidden_size: int = 384
    layers: int = 6
    heads: int = 6
    kv_heads: int = 2
    head_dim: int = 64
    intermediate_size: int = 896
    rope_theta: float = 10000.0
    eval_interval: int = 200
    eval_windows: int = 256
    compile: bool = True
    """torch.compile the model on CUDA (about 2x the tokens/s on an H100); ignored on the CPU."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; training flags default to :class:`TrainSettings`."""
    defaults = TrainSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus-dir", type=Path, default=Path(".demo_build/corpus"))
    parser.add_argument("--build-corpus", action="store_true",
                        help="build the corpus and tokenizer into --corpus-dir first")
    parser.add_argument("--stdlib", type=Path, default=Path(sysconfig.get_paths()["stdlib"]),
                        help="CPython standard library to build the corpus from")
    parser.add_argument("--holdout-every", type=int, default=50,
                        help="hold out every N-th file (by sorted path) for validation")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--out", type=Path, help="model directory to write (omit: no training)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--evaluate", type=Path, metavar="MODEL_DIR",
                        help="report held-out perplexity and greedy samples of a saved model")
    parser.add_argument("--heldout", type=Path, help="held-out text (default: corpus heldout.txt)")
    parser.add_argument("--eval-out", type=Path, help="write the evaluation report here (JSON)")
    for field in dataclasses.fields(TrainSettings):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=getattr(defaults, field.name))
        else:
            parser.add_argument(flag, type=type(getattr(defaults, field.name)),
                                default=getattr(defaults, field.name))
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> TrainSettings:
    """Collect the :class:`TrainSettings` fields from parsed arguments."""
    names = [field.name for field in dataclasses.fields(TrainSettings)]
    return TrainSettings(**{name: getattr(args, name) for name in names})


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------


def list_source_files(stdlib: Path) -> list[str]:
    """Relative POSIX paths of the stdlib's ``.py`` files, sorted, without tests or site-packages.

    Build-generated files (``_sysconfigdata*``, ``config-*``) are left out: they describe this
    machine's build rather than being CPython source.
    """
    paths = []
    for path in stdlib.rglob("*.py"):
        rel = path.relative_to(stdlib).as_posix()
        top = rel.split("/")[0]
        if top in ("test", "site-packages", "__pycache__") or top.startswith("config-"):
            continue
        if rel.startswith("_sysconfigdata") or "/__pycache__/" in rel:
            continue
        paths.append(rel)
    return sorted(paths)


def read_documents(stdlib: Path, paths: list[str]) -> list[dict]:
    """Read each file as UTF-8 (files that are not valid UTF-8 are skipped)."""
    documents = []
    for rel in paths:
        try:
            text = (stdlib / rel).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if text.strip() and not any(token in text for token in SPECIAL_TOKENS):
            documents.append({"path": rel, "text": text})
    return documents


def split_documents(documents: list[dict], holdout_every: int) -> tuple[list[dict], list[dict]]:
    """Hold out every ``holdout_every``-th document (indices 0, N, 2N, ...) for validation."""
    train = [d for i, d in enumerate(documents) if i % holdout_every != 0]
    val = [d for i, d in enumerate(documents) if i % holdout_every == 0]
    return train, val


def docstring_summary(node: ast.AST) -> str | None:
    """First paragraph of a function's docstring on one line, if it is a usable request."""
    doc = ast.get_docstring(node)
    if not doc:
        return None
    summary = " ".join(doc.strip().split("\n\n")[0].split())
    if len(summary.split()) < 4 or len(summary) > 300:
        return None
    return summary


def chat_examples(document: dict, max_lines: int = 60) -> list[dict]:
    """Chat examples from one file: docstring summary (user) -> function source (assistant)."""
    source = document["text"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    examples = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        summary = docstring_summary(node)
        segment = ast.get_source_segment(source, node, padded=True)
        if summary is None or segment is None:
            continue
        code = textwrap.dedent(segment)
        if code.count("\n") >= max_lines:
            continue
        request = f"Write a Python function `{node.name}`: {summary}"
        examples.append({"messages": [{"role": "user", "content": request},
                                      {"role": "assistant", "content": code}]})
    return examples


def render_chat(messages: list[dict]) -> str:
    """Render messages as the chat template does (ChatML), for training text."""
    return "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)


def write_jsonl_gz(path: Path, records: list[dict]) -> str:
    """Write records as gzip'd JSON lines with a fixed header (byte-identical); return sha256."""
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(payload)
    path.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def read_jsonl_gz(path: Path) -> list[dict]:
    """Read gzip'd JSON lines."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def train_tokenizer(texts: list[str], vocab_size: int):
    """Train a byte-level BPE tokenizer (full byte alphabet, ChatML special tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def heldout_text(val: list[dict], max_bytes: int = HELDOUT_MAX_BYTES) -> tuple[str, list[str]]:
    """The held-out fixture: validation files in order, joined by a blank line, under max_bytes."""
    parts, paths, size = [], [], 0
    for document in val:
        n = len(document["text"].encode())
        if size + n + 2 > max_bytes:
            continue
        parts.append(document["text"])
        paths.append(document["path"])
        size += n + 2
    return "\n\n".join(parts), paths


def python_version_of(stdlib: Path) -> str:
    """The CPython version the stdlib belongs to (from its directory or this interpreter)."""
    if Path(sysconfig.get_paths()["stdlib"]).resolve() == stdlib.resolve():
        return sys.version.split()[0]
    return stdlib.name


def build_corpus(stdlib: Path, corpus_dir: Path, holdout_every: int, vocab_size: int) -> None:
    """Build the training/validation corpus, chat examples and tokenizer into ``corpus_dir``."""
    corpus_dir.mkdir(parents=True, exist_ok=True)
    documents = read_documents(stdlib, list_source_files(stdlib))
    train, val = split_documents(documents, holdout_every)
    chat = [example for document in train for example in chat_examples(document)]
    tokenizer = train_tokenizer([d["text"] for d in train], vocab_size)
    tokenizer.save(str(corpus_dir / "tokenizer.json"))
    heldout, heldout_paths = heldout_text(val)
    (corpus_dir / HELDOUT_FILE).write_text(heldout, encoding="utf-8")
    manifest = {
        "source": "CPython standard library (.py files), PSF License",
        "python_version": python_version_of(stdlib),
        "stdlib": str(stdlib),
        "holdout_every": holdout_every,
        "train_files": len(train),
        "val_files": [d["path"] for d in val],
        "heldout_files": heldout_paths,
        "chat_examples": len(chat),
        "train_bytes": sum(len(d["text"].encode()) for d in train),
        "val_bytes": sum(len(d["text"].encode()) for d in val),
        "sha256": {
            "train.jsonl.gz": write_jsonl_gz(corpus_dir / "train.jsonl.gz", train),
            "val.jsonl.gz": write_jsonl_gz(corpus_dir / "val.jsonl.gz", val),
            "chat.jsonl.gz": write_jsonl_gz(corpus_dir / "chat.jsonl.gz", chat),
            "tokenizer.json": sha256_file(corpus_dir / "tokenizer.json"),
            HELDOUT_FILE: sha256_file(corpus_dir / HELDOUT_FILE),
        },
    }
    (corpus_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"corpus: {len(train)} train files, {len(val)} val files, {len(chat)} chat examples, "
          f"{manifest['train_bytes'] / 1e6:.1f} MB train text -> {corpus_dir}", flush=True)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# Tokenized data
# --------------------------------------------------------------------------------------------


def load_tokenizer(corpus_dir: Path):
    """The corpus' trained tokenizer (``tokenizers.Tokenizer``)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(corpus_dir / "tokenizer.json"))


def encode_stream(tokenizer, texts: list[str]) -> torch.Tensor:
    """Token ids of all texts, each followed by ``<|endoftext|>``, as one int64 tensor."""
    eos = tokenizer.token_to_id(ENDOFTEXT)
    ids: list[int] = []
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
        ids.extend(encoding.ids)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.int64)


def training_texts(corpus_dir: Path, chat_copies: int, seed: int) -> list[str]:
    """Training files plus rendered chat examples, in a seeded shuffled order."""
    texts = [d["text"] for d in read_jsonl_gz(corpus_dir / "train.jsonl.gz")]
    chats = [render_chat(e["messages"]) for e in read_jsonl_gz(corpus_dir / "chat.jsonl.gz")]
    texts += chats * chat_copies
    random.Random(seed).shuffle(texts)
    return texts


def check_corpus(corpus_dir: Path) -> dict:
    """Verify the corpus files against their manifest checksums; return the manifest."""
    manifest = json.loads((corpus_dir / "manifest.json").read_text())
    for name in CORPUS_FILES:
        if sha256_file(corpus_dir / name) != manifest["sha256"][name]:
            raise SystemExit(f"{corpus_dir / name}: checksum differs from manifest.json")
    return manifest


def evaluation_windows(stream: torch.Tensor, seq_len: int, count: int) -> torch.Tensor:
    """Up to ``count`` windows of ``seq_len + 1`` tokens, evenly spaced over the stream."""
    available = (len(stream) - 1) // seq_len
    picks = np.linspace(0, available - 1, num=min(count, available)).round().astype(int)
    return torch.stack([stream[i * seq_len: i * seq_len + seq_len + 1] for i in picks])


def sample_batch(stream: torch.Tensor, batch_size: int, seq_len: int,
                 generator: torch.Generator) -> torch.Tensor:
    """Random windows of ``seq_len + 1`` tokens (starts drawn from a seeded CPU generator)."""
    starts = torch.randint(0, len(stream) - seq_len - 1, (batch_size,), generator=generator)
    offsets = torch.arange(seq_len + 1)
    return stream[(starts[:, None] + offsets).to(stream.device)]


# --------------------------------------------------------------------------------------------
# Model and optimisation
# --------------------------------------------------------------------------------------------


def build_config(settings: TrainSettings, tokenizer):
    """A Qwen3 config for the settings; special-token ids come from the tokenizer."""
    from transformers import Qwen3Config

    eos = tokenizer.token_to_id(ENDOFTEXT)
    return Qwen3Config(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size, num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads, num_key_value_heads=settings.kv_heads,
        head_dim=settings.head_dim, max_position_embeddings=settings.seq_len,
        rope_parameters={"rope_type": "default", "rope_theta": settings.rope_theta},
        tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)


def build_model(settings: TrainSettings, tokenizer, device: str):
    """A freshly initialised Qwen3ForCausalLM in float32 (initialised on the CPU, then moved)."""
    from transformers import Qwen3ForCausalLM

    torch.manual_seed(settings.seed)
    config = build_config(settings, tokenizer)
    config._attn_implementation = "sdpa"
    model = Qwen3ForCausalLM(config)
    if settings.dropout > 0:
        add_residual_dropout(model, settings.dropout)
    return model.to(device)


def add_residual_dropout(model, p: float) -> None:
    """Dropout on each attention and MLP output before the residual add, in training only.

    Qwen3 has no hidden-dropout setting, so this is added with forward hooks: the saved model is
    the plain architecture, and in eval mode the hooks do nothing. The corpus is small and is
    seen many times, so this regularises against memorising it.
    """
    def drop_attention(module, inputs, output):
        return (F.dropout(output[0], p, module.training), *output[1:])

    def drop_mlp(module, inputs, output):
        return F.dropout(output, p, module.training)

    for layer in model.model.layers:
        layer.self_attn.register_forward_hook(drop_attention)
        layer.mlp.register_forward_hook(drop_mlp)


def build_optimizer(model: torch.nn.Module, settings: TrainSettings, device: str):
    """AdamW with weight decay on matrices only, and its warm-up + cosine schedule."""
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    vectors = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": matrices, "weight_decay": settings.weight_decay},
              {"params": vectors, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=settings.lr, betas=(settings.beta1, settings.beta2),
                                  fused=device.startswith("cuda"))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, settings))
    return optimizer, schedule


def lr_factor(step: int, settings: TrainSettings) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_lr_ratio`` at the last step."""
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return settings.min_lr_ratio + (1 - settings.min_lr_ratio) * cosine


def autocast(device: str):
    """bf16 autocast on CUDA; plain float32 elsewhere."""
    enabled = device.startswith("cuda")
    return torch.autocast("cuda" if enabled else "cpu", dtype=torch.bfloat16, enabled=enabled)


def lm_loss(model, windows: torch.Tensor, device: str) -> torch.Tensor:
    """Mean next-token cross-entropy of windows of ``seq_len + 1`` tokens."""
    inputs, targets = windows[:, :-1], windows[:, 1:]
    with autocast(device):
        logits = model(input_ids=inputs, use_cache=False).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


@torch.no_grad()
def mean_loss(model, windows: torch.Tensor, device: str, batch_size: int) -> float:
    """Token-weighted mean loss over evaluation windows (the model is put in eval mode)."""
    was_training = model.training
    model.eval()
    total = 0.0
    for chunk in windows.split(batch_size):
        total += lm_loss(model, chunk.to(device), device).item() * len(chunk)
    model.train(was_training)
    return total / len(windows)


def train(model, stream: torch.Tensor, eval_sets: dict, settings: TrainSettings,
          device: str) -> dict:
    """Run the training loop; log progress; return timing and loss history."""
    optimizer, schedule = build_optimizer(model, settings, device)
    step_fn = torch.compile(model) if settings.compile and device.startswith("cuda") else model
    generator = torch.Generator().manual_seed(settings.seed)
    tokens_per_step = settings.batch_size * settings.seq_len
    history, recent, start = [], [], time.perf_counter()
    timed_from, timed_tokens = start, 0
    model.train()
    for step in range(settings.steps):
        batch = sample_batch(stream, settings.batch_size, settings.seq_len, generator)
        loss = lm_loss(step_fn, batch, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        schedule.step()
        recent.append(loss.detach())
        if step == 9:  # throughput excludes the first steps (allocator, compilation)
            synchronize(device)
            timed_from, timed_tokens = time.perf_counter(), 0
        elif step > 9:
            timed_tokens += tokens_per_step
        if (step + 1) % settings.eval_interval == 0 or step + 1 == settings.steps:
            record = log_progress(step, recent, eval_sets, settings, device, start,
                                  timed_tokens, timed_from, model)
            history.append(record)
            recent = []
    synchronize(device)
    elapsed = time.perf_counter() - start
    tokens_per_s = timed_tokens / max(1e-9, time.perf_counter() - timed_from - sum(
        r["eval_s"] for r in history))
    return {"train_seconds": elapsed, "tokens_per_second": tokens_per_s, "history": history}


def synchronize(device: str) -> None:
    """Wait for queued device work (so host clocks measure it)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def log_progress(step, recent, eval_sets, settings, device, start, timed_tokens, timed_from,
                 model) -> dict:
    """Evaluate on the fixed windows and print one JSON line of progress."""
    synchronize(device)
    eval_start = time.perf_counter()
    losses = {name: mean_loss(model, windows, device, settings.batch_size)
              for name, windows in eval_sets.items()}
    record = {
        "step": step + 1,
        "train_loss_recent": torch.stack(recent).mean().item(),
        **{f"{name}_loss": round(value, 4) for name, value in losses.items()},
        "lr": settings.lr * lr_factor(step, settings),
        "elapsed_s": round(time.perf_counter() - start, 1),
        "tokens_per_s": round(timed_tokens / max(1e-9, eval_start - timed_from)),
        "eval_s": round(time.perf_counter() - eval_start, 2),
    }
    print(json.dumps(record), flush=True)
    return record


# --------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------


def save_model(model, tokenizer, out: Path, summary: dict) -> None:
    """Write the Hugging Face layout with bfloat16 weights, tokenizer files and settings."""
    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu", dtype=torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.save_pretrained(out)
    add_legacy_config_keys(out / "config.json", model.config)
    tokenizer.save(str(out / "tokenizer.json"))
    write_json(out / "tokenizer_config.json", tokenizer_config(tokenizer, model.config))
    write_json(out / "generation_config.json", generation_config(tokenizer))
    write_json(out / "train_settings.json", summary)


def add_legacy_config_keys(path: Path, config) -> None:
    """Add ``torch_dtype`` and ``rope_theta`` beside transformers 5's ``dtype``/``rope_parameters``.

    Readers written for transformers 4.x configs (and other runtimes) look for the old keys.
    """
    data = json.loads(path.read_text())
    data["torch_dtype"] = "bfloat16"
    data["dtype"] = "bfloat16"
    data["rope_theta"] = config.rope_parameters["rope_theta"]
    write_json(path, dict(sorted(data.items())))


def tokenizer_config(tokenizer, config) -> dict:
    """``tokenizer_config.json``: a fast tokenizer, ChatML template, eos/pad = <|endoftext|>."""
    added = {str(tokenizer.token_to_id(t)): {
        "content": t, "lstrip": False, "normalized": False, "rstrip": False,
        "single_word": False, "special": True} for t in SPECIAL_TOKENS}
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": None,
        "eos_token": ENDOFTEXT,
        "pad_token": ENDOFTEXT,
        "unk_token": None,
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": config.max_position_embeddings,
        "chat_template": CHAT_TEMPLATE,
    }


def generation_config(tokenizer) -> dict:
    """``generation_config.json``: stop at end of text or end of a chat turn."""
    eos, im_end = tokenizer.token_to_id(ENDOFTEXT), tokenizer.token_to_id(IM_END)
    return {"bos_token_id": eos, "eos_token_id": [eos, im_end], "pad_token_id": eos}


def write_json(path: Path, data: dict) -> None:
    """Write indented JSON with a trailing newline."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def environment() -> dict:
    """Versions and device that produced a run."""
    import tokenizers
    import transformers

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "device_name": device}


def run_training(args: argparse.Namespace) -> None:
    """Train on the corpus in ``args.corpus_dir`` and save the model to ``args.out``."""
    settings = settings_from_args(args)
    manifest = check_corpus(args.corpus_dir)
    seed_everything(settings.seed)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tokenizer = load_tokenizer(args.corpus_dir)
    stream = encode_stream(tokenizer, training_texts(args.corpus_dir, settings.chat_copies,
                                                     settings.seed)).to(args.device)
    val_stream = encode_stream(tokenizer, [d["text"] for d in
                                           read_jsonl_gz(args.corpus_dir / "val.jsonl.gz")])
    eval_sets = {"train": evaluation_windows(stream.cpu(), settings.seq_len, settings.eval_windows),
                 "val": evaluation_windows(val_stream, settings.seq_len, settings.eval_windows)}
    model = build_model(settings, tokenizer, args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"parameters": n_params, "train_tokens": len(stream),
                      "val_tokens": len(val_stream), "settings": dataclasses.asdict(settings)}),
          flush=True)
    result = train(model, stream, eval_sets, settings, args.device)
    final = {name: mean_loss(model, windows, args.device, settings.batch_size)
             for name, windows in eval_sets.items()}
    bf16 = {name: mean_loss(model.to(torch.bfloat16), windows, args.device, settings.batch_size)
            for name, windows in eval_sets.items()}
    summary = {
        "settings": dataclasses.asdict(settings), "parameters": n_params,
        "corpus": {k: manifest[k] for k in ("source", "python_version", "holdout_every",
                                            "train_files", "train_bytes", "val_bytes")}
        | {"sha256": manifest["sha256"], "train_tokens": len(stream),
           "val_tokens": len(val_stream), "val_files": len(manifest["val_files"])},
        "final_train_loss": final["train"], "final_val_loss": final["val"],
        "final_train_loss_bf16_weights": bf16["train"], "final_val_loss_bf16_weights": bf16["val"],
        "train_seconds": result["train_seconds"], "tokens_per_second": result["tokens_per_second"],
        "environment": environment(), "history": result["history"],
        "command": " ".join(["python", "scripts/train_demo_model.py", *sys.argv[1:]]),
    }
    print(json.dumps({k: v for k, v in summary.items() if k not in ("history", "corpus")}),
          flush=True)
    save_model(model, tokenizer, args.out, summary)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def heldout_perplexity(model, tokenizer, text: str, window: int) -> tuple[float, int]:
    """Perplexity of ``text`` tokenized whole (no special tokens), in consecutive windows.

    The token stream is cut into non-overlapping windows of ``window`` tokens (the last may be
    shorter); each window is scored on its own, predicting its tokens 1..n-1. Returns
    ``(exp(mean negative log-likelihood), number of predicted tokens)``.
    """
    ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])
    total_nll, count = 0.0, 0
    for chunk in ids.split(window):
        if len(chunk) < 2:
            continue
        logits = model(input_ids=chunk[None]).logits[0].float()
        total_nll += F.cross_entropy(logits[:-1], chunk[1:], reduction="sum").item()
        count += len(chunk) - 1
    return math.exp(total_nll / count), count


@torch.no_grad()
def greedy_complete(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """Greedy continuation of a prompt (decoded, special tokens kept visible)."""
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:])


def run_evaluation(model_dir: Path, heldout: Path, out_json: Path | None) -> dict:
    """Held-out perplexity and greedy samples of a saved model, in float32 with transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    perplexity, tokens = heldout_perplexity(model, tokenizer, heldout.read_text(encoding="utf-8"),
                                            model.config.max_position_embeddings)
    chat_prompt = tokenizer.apply_chat_template([{"role": "user", "content": SAMPLE_CHAT}],
                                                tokenize=False, add_generation_prompt=True)
    samples = [{"prompt": p, "completion": greedy_complete(model, tokenizer, p, 80)}
               for p in (*SAMPLE_PROMPTS, chat_prompt)]
    report = {"heldout_file": heldout.name, "heldout_bytes": heldout.stat().st_size,
              "heldout_tokens_scored": tokens, "heldout_perplexity": perplexity,
              "heldout_mean_nll": math.log(perplexity), "samples": samples}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if out_json:
        write_json(out_json, report)
    return report


def main(argv: list[str] | None = None) -> None:
    """Build the corpus, train, and/or evaluate, as the flags ask."""
    args = parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.build_corpus:
        build_corpus(args.stdlib, args.corpus_dir, args.holdout_every, args.vocab_size)
    if args.out:
        run_training(args)
    if args.evaluate:
        heldout = args.heldout or args.corpus_dir / HELDOUT_FILE
        run_evaluation(args.evaluate, heldout, args.eval_out)
    if not (args.build_corpus or args.out or args.evaluate):
        raise SystemExit("nothing to do: give --build-corpus, --out and/or --evaluate")


if __name__ == "__main__":
    main()
