"""Eager steps padded to a few row counts, and the startup run of every linear layer at each:
the parts that need no GPU (the arithmetic, and the warm-up on a tiny model on the CPU)."""

import torch
from llmrt_cuda.model_runner import EAGER_ROW_BUCKET, _warm_up_linear, eager_row_buckets, padded_rows


def test_padded_rows_round_up_to_the_bucket_within_the_budget():
    assert EAGER_ROW_BUCKET == 256
    assert [padded_rows(n, 8192) for n in (1, 255, 256, 257, 3891, 8191, 8192)] == [
        256, 256, 256, 512, 4096, 8192, 8192]
    assert padded_rows(1000, 1000) == 1000  # a budget that is not a multiple is its own bucket
    assert padded_rows(900, 1000) == 1000
    assert padded_rows(1200, 1000) == 1200  # never fewer rows than tokens


def test_every_padded_row_count_is_warmed():
    for budget in (8192, 1000, 2048, 200):
        buckets = eager_row_buckets(budget)
        assert {padded_rows(n, budget) for n in range(1, budget + 1)} == set(buckets)
    assert len(eager_row_buckets(8192)) == 32


def test_warm_up_runs_each_distinct_linear_shape_at_every_row_count(tmp_path):
    from llmrt.model.layers.linear import LinearBase

    class Counting:
        def __init__(self, inner):
            self.inner, self.rows = inner, []

        def apply(self, layer, x, bias):
            self.rows.append((layer.in_features, layer.out_features, x.shape[0]))
            return self.inner.apply(layer, x, bias)

    model = _tiny_model(tmp_path)
    methods = {}
    for module in model.modules():
        if isinstance(module, LinearBase):
            module.quant_method = methods.setdefault(id(module.quant_method), Counting(module.quant_method))
    weight = next(model.parameters())
    _warm_up_linear(model, [256, 512], weight.dtype, weight.device)
    calls = sorted(c for m in methods.values() for c in m.rows)
    shapes = {(m.in_features, m.out_features) for m in model.modules() if isinstance(m, LinearBase)}
    assert calls == sorted((i, o, rows) for i, o in shapes for rows in (256, 512))


def _tiny_model(tmp_path):
    from llmrt import LLM
    from llmrt.testing import build_tiny_model

    path = build_tiny_model("qwen3", tmp_path / "m", num_hidden_layers=2)
    llm = LLM(model=str(path), dtype="float32", kv_cache_memory=1 << 24, max_num_seqs=4, enforce_eager=True)
    return llm.llm_engine.runner.model
