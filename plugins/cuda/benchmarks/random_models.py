"""Random-weight checkpoints of real architectures (the compute is the same as trained weights).

``python random_models.py qwen3-0.6b DIR`` writes config.json, sharded bf16 safetensors drawn on
the GPU (std 0.02; norm weights 1), and the tiny offline tokenizer (benchmarks pass token ids and
do not detokenize). Both llmrt and Hugging Face transformers load the result.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ARCHITECTURES = {
    "qwen3-0.6b": (
        "Qwen3Config",
        "Qwen3ForCausalLM",
        dict(
            hidden_size=1024,
            intermediate_size=3072,
            num_hidden_layers=28,
            num_attention_heads=16,
            num_key_value_heads=8,
            head_dim=128,
            vocab_size=151936,
            max_position_embeddings=40960,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
        ),
    ),
    "llama3-8b": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            vocab_size=128256,
            max_position_embeddings=8192,
            rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
        ),
    ),
}
SHARD_BYTES = 4 << 30


def build(arch: str, out: Path) -> Path:
    """Write the ``arch`` checkpoint into ``out`` (skipped when ``out/config.json`` exists)."""
    import transformers
    from llmrt.testing.tiny_tokenizer import save_tiny_tokenizer, train_tiny_tokenizer
    from safetensors.torch import save_file

    if (out / "config.json").exists():
        return out
    config_name, model_name, values = ARCHITECTURES[arch]
    config = getattr(transformers, config_name)(
        **values, bos_token_id=None, eos_token_id=None, pad_token_id=None
    )
    config.architectures = [model_name]
    config.dtype = torch.bfloat16
    with torch.device("meta"):
        shapes = {
            n: t.shape for n, t in getattr(transformers, model_name)(config).state_dict().items()
        }
    if config.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)
    out.mkdir(parents=True, exist_ok=True)
    shard, size, index, number = {}, 0, {}, 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator(device).manual_seed(0)
    for name, shape in shapes.items():
        if len(shape) == 1:
            tensor = torch.ones(shape, dtype=torch.bfloat16)
        else:
            tensor = (
                (torch.randn(shape, device=device, generator=generator) * 0.02)
                .to(torch.bfloat16)
                .cpu()
            )
        shard[name] = tensor
        size += tensor.numel() * 2
        if size >= SHARD_BYTES:
            number = _flush(shard, out, number, index, save_file)
            shard, size = {}, 0
    if shard:
        _flush(shard, out, number, index, save_file)
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": index})
    )
    config.save_pretrained(out)
    save_tiny_tokenizer(train_tiny_tokenizer(), out)
    return out


def _flush(shard: dict, out: Path, number: int, index: dict, save_file) -> int:
    name = f"model-{number:05d}.safetensors"
    save_file(shard, str(out / name), metadata={"format": "pt"})
    index.update({key: name for key in shard})
    return number + 1


if __name__ == "__main__":
    print(build(sys.argv[1], Path(sys.argv[2])))
