"""Weight loading (safetensors only), config reading, and tensor-parallel weight slicing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from llmrt.attention.torch_paged import TorchPagedAttention
from llmrt.model.architectures import ARCHITECTURES, decoder_factory, decoder_spec
from llmrt.model.context import LayerContext
from llmrt.model.hf_config import (
    config_dtype,
    layer_windows,
    load_generation_defaults,
    load_hf_config,
    max_model_len_from_config,
    resolve_dtype,
    rope_parameters,
)
from llmrt.model.layers.embedding import VocabParallelEmbedding
from llmrt.model.layers.linear import (
    MergedColumnParallelLinear,
    QKVParallelLinear,
    RowParallelLinear,
)
from llmrt.model.loader import SafetensorsFile, WeightLoadError, load_model
from llmrt.ops.torch_ops import reference_ops
from llmrt.testing.tiny_models import build_tiny_model
from safetensors.torch import load_file, save_file


def _ctx(dtype=torch.float32, tp_rank=0, tp_size=1) -> LayerContext:
    return LayerContext(
        reference_ops(), TorchPagedAttention, None, dtype, torch.device("cpu"), tp_rank, tp_size
    )


def _load(model_dir: Path, dtype=torch.float32):
    hf_config = load_hf_config(model_dir)
    factory = decoder_factory(ARCHITECTURES[hf_config.architectures[0]])
    return load_model(model_dir, hf_config, _ctx(dtype), factory)


def _checkpoint(model_dir: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        tensors.update(load_file(path))
    return tensors


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return build_tiny_model("llama", tmp_path_factory.mktemp("llama"))


@pytest.fixture
def llama_copy(llama_dir, tmp_path) -> Path:
    return Path(shutil.copytree(llama_dir, tmp_path / "copy"))


def _assert_matches_checkpoint(model, tensors: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for i in range(model.spec.num_layers):
        prefix = f"model.layers.{i}"
        qkv = torch.cat([tensors[f"{prefix}.self_attn.{p}_proj.weight"] for p in "qkv"])
        assert torch.equal(params[f"{prefix}.self_attn.qkv_proj.weight"], qkv.to(qkv.dtype))
        gate_up = torch.cat([tensors[f"{prefix}.mlp.{p}_proj.weight"] for p in ("gate", "up")])
        assert torch.equal(params[f"{prefix}.mlp.gate_up_proj.weight"], gate_up)
    for name in (
        "model.embed_tokens.weight",
        "model.norm.weight",
        "model.layers.1.mlp.down_proj.weight",
    ):
        assert torch.equal(params[name], tensors[name])


# -- checkpoints -----------------------------------------------------------------------------------


def test_single_file_load_copies_every_tensor(llama_dir):
    model = _load(llama_dir)
    tensors = _checkpoint(llama_dir)
    _assert_matches_checkpoint(model, tensors)
    assert torch.equal(model.lm_head.weight, tensors["lm_head.weight"])
    assert not model.training


def test_sharded_checkpoint_with_index(tmp_path, llama_dir):
    sharded = build_tiny_model("llama", tmp_path / "sharded", max_shard_size="30KB")
    assert (sharded / "model.safetensors.index.json").exists()
    assert len(list(sharded.glob("*.safetensors"))) > 2
    model = _load(sharded)
    _assert_matches_checkpoint(model, _checkpoint(llama_dir))  # same seed: same values


def test_tied_embeddings_share_one_parameter(tmp_path):
    model_dir = build_tiny_model("qwen2", tmp_path / "qwen2")
    assert "lm_head.weight" not in _checkpoint(model_dir)
    model = _load(model_dir)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert "lm_head.weight" not in dict(model.named_parameters())
    assert model.model.layers[0].self_attn.qkv_proj.bias is not None  # Qwen2's q/k/v biases


def test_missing_shard_names_the_file(tmp_path):
    sharded = build_tiny_model("llama", tmp_path / "sharded", max_shard_size="30KB")
    victim = sorted(sharded.glob("model-*.safetensors"))[1]
    victim.unlink()
    with pytest.raises(WeightLoadError, match=f"names missing file.*{victim.name}"):
        _load(sharded)


def test_corrupt_file_names_the_file(llama_copy):
    path = llama_copy / "model.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(WeightLoadError, match="cannot read safetensors file .*model.safetensors"):
        _load(llama_copy)


def test_truncated_file_is_an_error(llama_copy):
    path = llama_copy / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightLoadError, match="model.safetensors"):
        _load(llama_copy)


def test_missing_tensor_is_reported(llama_copy):
    path = llama_copy / "model.safetensors"
    tensors = load_file(path)
    del tensors["model.norm.weight"], tensors["model.layers.1.self_attn.k_proj.weight"]
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(WeightLoadError, match="missing") as info:
        _load(llama_copy)
    assert "model.norm.weight" in str(info.value)
    assert "model.layers.1.self_attn.qkv_proj.weight" in str(info.value)


def test_unexpected_tensor_names_tensor_and_file(llama_copy):
    path = llama_copy / "model.safetensors"
    tensors = load_file(path)
    tensors["model.layers.0.mlp.extra_proj.weight"] = torch.zeros(2, 2)
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(
        WeightLoadError,
        match=r"model\.layers\.0\.mlp\.extra_proj\.weight \(in model\.safetensors\)",
    ):
        _load(llama_copy)


def test_shape_mismatch_names_the_tensor(llama_copy):
    path = llama_copy / "model.safetensors"
    tensors = load_file(path)
    tensors["model.norm.weight"] = torch.zeros(3)
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(WeightLoadError, match="'model.norm.weight' from .*shape mismatch"):
        _load(llama_copy)


def test_safetensors_reader_matches_the_library(tmp_path):
    tensors = {
        "bf16": torch.randn(3, 5).bfloat16(),
        "f16": torch.randn(7).half(),
        "i64": torch.arange(6).view(2, 3),
        "flags": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.empty(0, 4),
        "u8": torch.arange(9, dtype=torch.uint8),
    }
    path = tmp_path / "all.safetensors"
    save_file(tensors, path, metadata={"format": "pt"})
    with SafetensorsFile(path) as handle:
        assert sorted(handle.keys()) == sorted(tensors)
        for name, expected in tensors.items():
            got = handle.get_tensor(name)
            assert got.dtype == expected.dtype and got.shape == expected.shape, name
            assert torch.equal(got, expected), name


def test_unknown_dtype_in_header_is_an_error(tmp_path):
    header = json.dumps({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}}).encode()
    path = tmp_path / "odd.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"xx")
    with pytest.raises(WeightLoadError, match="odd.safetensors: bad header entry for tensor 'w'"):
        SafetensorsFile(path)


def test_pickle_only_directory_is_refused(llama_copy):
    (llama_copy / "model.safetensors").rename(llama_copy / "pytorch_model.bin")
    with pytest.raises(WeightLoadError, match="pickle-based weights \\(pytorch_model.bin\\)"):
        _load(llama_copy)


def test_bfloat16_checkpoint_loads_in_bf16_and_fp32(tmp_path):
    model_dir = build_tiny_model("gemma2", tmp_path / "bf16", dtype="bfloat16")
    tensors = _checkpoint(model_dir)
    assert tensors["model.norm.weight"].dtype == torch.bfloat16
    model = _load(model_dir, torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.model.embed_scale.dtype == torch.bfloat16
    _assert_matches_checkpoint(model, tensors)
    upcast = _load(model_dir, torch.float32)
    _assert_matches_checkpoint(upcast, {k: v.float() for k, v in tensors.items()})


def test_unknown_config_directory_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_hf_config(tmp_path)
    with pytest.raises(WeightLoadError, match="does not exist"):
        load_model(tmp_path / "nope", None, _ctx(), lambda cfg, ctx: None)


_PEAK_SCRIPT = """
import json, sys, types, torch
from llmrt.attention.torch_paged import TorchPagedAttention
from llmrt.model.architectures import ARCHITECTURES, decoder_factory
from llmrt.model.context import LayerContext
from llmrt.model.loader import load_model
from llmrt.ops.torch_ops import reference_ops
def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
config = types.SimpleNamespace(**json.load(open(sys.argv[1] + "/config.json")))
ctx = LayerContext(reference_ops(), TorchPagedAttention, None, torch.float32, torch.device("cpu"))
open("/proc/self/clear_refs", "w").write("5")  # reset the peak-RSS counter (VmHWM)
before = peak_kib()
model = load_model(sys.argv[1], config, ctx, decoder_factory(ARCHITECTURES["LlamaForCausalLM"]))
grown = (peak_kib() - before) * 1024
print(grown, sum(p.numel() * p.element_size() for p in model.parameters()))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_peak_memory_close_to_one_copy_of_the_weights(tmp_path):
    """Loading a 60 MiB single-file checkpoint grows peak RSS by the weights plus a few MiB.

    (A memory-mapped reader would add a second copy: mapped pages stay resident until close.)
    """
    big = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 4, "head_dim": 64}
    model_dir = build_tiny_model("llama", tmp_path / "big", num_attention_heads=8, **big)
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(model_dir)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": src, "OMP_NUM_THREADS": "1"},
    )
    grown, weights = (int(v) for v in out.stdout.split())
    assert weights > 50 * 2**20
    # Two copies (a memory-mapped reader) would be 2x; allocator and read-buffer slack varies
    # with the machine's load, so the bound sits between one copy and two.
    assert 0.8 * weights < grown < 1.75 * weights, f"peak RSS +{grown}, weights {weights}"


def test_layer_range_loads_only_its_layers(llama_dir):
    """A pipeline stage holding layers [1, 2) takes only those layers' tensors."""
    from llmrt.model.decoder import DecoderForCausalLM

    spec = decoder_spec(load_hf_config(llama_dir), ARCHITECTURES["LlamaForCausalLM"])
    stage = DecoderForCausalLM(spec, _ctx(), start_layer=1, end_layer=2)
    loaded = stage.load_weights(_checkpoint(llama_dir).items())
    assert loaded == {name for name, _ in stage.named_parameters()}
    assert not any(name.startswith("model.layers.0.") for name in loaded)
    assert len(stage.attention_layers()) == 1 and stage.attention_layers()[0].layer_index == 1


# -- config reading --------------------------------------------------------------------------------


def test_resolve_dtype():
    assert resolve_dtype(torch.bfloat16, "auto") is torch.bfloat16
    assert resolve_dtype("float16", "auto") is torch.float16
    assert resolve_dtype(None, "auto") is torch.float32
    assert resolve_dtype(torch.bfloat16, "float32") is torch.float32
    assert resolve_dtype(None, "half") is torch.float16
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        resolve_dtype(None, "int8")


def test_config_reading_for_gemma3_and_generation_defaults(tmp_path):
    model_dir = build_tiny_model("gemma3", tmp_path / "g3", dtype="bfloat16")
    cfg = load_hf_config(model_dir)
    assert config_dtype(cfg) is torch.bfloat16
    assert max_model_len_from_config(cfg) == 512
    assert rope_parameters(cfg, "sliding_attention")["rope_theta"] == 10000.0
    assert rope_parameters(cfg, "full_attention")["rope_theta"] == 1000000.0
    assert layer_windows(cfg) == [32, 32, None, 32]
    spec = decoder_spec(cfg, ARCHITECTURES["Gemma3ForCausalLM"])
    assert spec.qk_norm and spec.gemma_norms and spec.attn_scale == 16**-0.5
    assert spec.attn_softcap is None  # HF's Gemma 3 attention never soft-caps
    assert load_generation_defaults(model_dir) == {"eos_token_id": [1, 4]}
    (model_dir / "generation_config.json").write_text(
        json.dumps(
            {
                "temperature": 0.7,
                "top_k": 20,
                "max_new_tokens": 99,
                "eos_token_id": 5,
                "do_sample": True,
            }
        )
    )
    assert load_generation_defaults(model_dir) == {
        "temperature": 0.7,
        "top_k": 20,
        "max_tokens": 99,
        "eos_token_id": [5],
    }
    assert load_generation_defaults(tmp_path) == {}


def test_layer_windows_per_family(tmp_path):
    gemma2 = load_hf_config(build_tiny_model("gemma2", tmp_path / "g2"))
    assert layer_windows(gemma2) == [32, None]
    mistral = load_hf_config(build_tiny_model("mistral", tmp_path / "m"))
    assert layer_windows(mistral) == [32, 32]
    llama3 = load_hf_config(build_tiny_model("llama3", tmp_path / "l3"))
    assert layer_windows(llama3) == [None, None]
    assert rope_parameters(llama3)["rope_type"] == "llama3"
    spec = decoder_spec(llama3, ARCHITECTURES["LlamaForCausalLM"])
    assert spec.layer_rope[0]["factor"] == 8.0 and not spec.qkv_bias


# -- tensor-parallel slicing -----------------------------------------------------------------------


def _shards(make, full: torch.Tensor, tp_size: int, shard_id=None, attr: str = "weight"):
    """Load ``full`` into each rank's layer; return each rank's parameter."""
    out = []
    for rank in range(tp_size):
        layer = make(_ctx(tp_rank=rank, tp_size=tp_size))
        param = getattr(layer, attr)
        if shard_id is None:
            param.weight_loader(param, full)
        else:
            param.weight_loader(param, full, shard_id)
        out.append((layer, param))
    return out


def test_row_and_merged_column_parallel_slicing():
    full = torch.randn(6, 8)
    rows = _shards(lambda c: RowParallelLinear(8, 6, False, c), full, 2)
    assert torch.equal(torch.cat([p for _, p in rows], dim=1), full)
    gate, up = torch.randn(4, 6), torch.randn(4, 6)
    ranks = [
        MergedColumnParallelLinear(6, [4, 4], True, _ctx(tp_rank=r, tp_size=2)) for r in range(2)
    ]
    for layer in ranks:
        layer.weight.weight_loader(layer.weight, gate, 0)
        layer.weight.weight_loader(layer.weight, up, 1)
    assert torch.equal(ranks[0].weight, torch.cat([gate[:2], up[:2]]))
    assert torch.equal(ranks[1].weight, torch.cat([gate[2:], up[2:]]))


def test_qkv_slicing_replicates_kv_heads_when_fewer_than_ranks():
    q, k, v = (
        torch.randn(4 * 2, 6),
        torch.randn(1 * 2, 6),
        torch.randn(1 * 2, 6),
    )  # 4 heads, 1 kv head, D=2
    ranks = [QKVParallelLinear(6, 2, 4, 1, False, _ctx(tp_rank=r, tp_size=2)) for r in range(2)]
    for layer in ranks:
        for shard, tensor in zip("qkv", (q, k, v), strict=True):
            layer.weight.weight_loader(layer.weight, tensor, shard)
    assert torch.equal(ranks[0].weight, torch.cat([q[:4], k, v]))
    assert torch.equal(ranks[1].weight, torch.cat([q[4:], k, v]))


def test_vocab_parallel_embedding_pads_the_last_rank():
    full = torch.randn(5, 3)
    ranks = _shards(lambda c: VocabParallelEmbedding(5, 3, c), full, 2)
    assert ranks[0][1].shape == (3, 3) and ranks[1][0].vocab_start == 3
    assert torch.equal(ranks[0][1], full[:3])
    assert torch.equal(ranks[1][1][:2], full[3:]) and not ranks[1][1][2].any()
