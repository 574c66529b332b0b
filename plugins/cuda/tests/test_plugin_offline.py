"""Parts of the CUDA plugin that need no GPU: registration, capture sizes, the memory arithmetic."""

import pytest
from llmrt.plugins import get_plugin_host
from llmrt_cuda.decode_graphs import capture_sizes
from llmrt_cuda.memory_budget import GIB, CudaOutOfMemoryAtStartup, MemoryBudget


def test_capture_sizes_end_at_max_num_seqs():
    assert capture_sizes(256) == [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 160, 192, 224, 256]
    assert capture_sizes(5) == [1, 2, 4, 5]
    assert capture_sizes(1) == [1]


def test_budget_subtracts_every_term():
    budget = MemoryBudget(
        total=int(80 * GIB),
        utilization=0.9,
        peak_torch=int(10 * GIB),
        non_torch=int(1 * GIB),
        graphs=int(0.5 * GIB),
        free_now=int(69 * GIB),
    )
    assert budget.budget == int(72 * GIB) - int(11.5 * GIB)
    assert (
        "72.00 GiB usable" in budget.explain() and "60.50 GiB for the KV cache" in budget.explain()
    )


def test_budget_is_limited_by_free_memory():
    budget = MemoryBudget(
        total=int(80 * GIB),
        utilization=0.9,
        peak_torch=int(10 * GIB),
        non_torch=0,
        graphs=0,
        free_now=int(20 * GIB),
    )
    assert budget.budget == int(20 * GIB)


def test_no_room_says_which_flag_to_change():
    budget = MemoryBudget(
        total=int(16 * GIB),
        utilization=0.5,
        peak_torch=int(10 * GIB),
        non_torch=0,
        graphs=0,
        free_now=int(6 * GIB),
    )
    with pytest.raises(CudaOutOfMemoryAtStartup, match="--gpu-memory-utilization"):
        budget.check()


def test_triton_kernels_are_registered_for_cuda():
    pytest.importorskip("triton")
    host = get_plugin_host()
    ops = host.ops()
    backends = [b for b in ("cuda", "rocm") if host.backends().find(b) is not None]
    for backend in backends:
        for name in (
            "rms_norm",
            "fused_add_rms_norm",
            "rotary_embedding",
            "silu_and_mul",
            "gelu_tanh_and_mul",
        ):
            assert ops.find((name, backend)) is not None, (name, backend)
        assert host.attention_backends().get(f"triton-{backend}").meta["backends"] == (backend,)
    assert host.graph_capture().find("cuda") is not None
    assert host.linear_methods().find("cuda").value.__name__ == "GemvLinearMethod"


def test_warm_up_step_runs_on_any_runner(tmp_path):
    """The startup warm-up (a mixed prompt-chunk + decode batch, both samplers, the LM head at
    every row count) on the CPU runner."""
    pytest.importorskip("llmrt_cpu", reason="runs the warm-up on the CPU backend (llmrt-cpu)")
    from llmrt import LLM
    from llmrt.testing import build_tiny_model
    from llmrt_cuda.model_runner import CudaModelRunner

    llm = LLM(model=str(build_tiny_model("qwen3", tmp_path / "qwen3")), backend="cpu", dtype="float32")
    runner = llm.llm_engine.runner
    calls = []
    model = runner.model
    logit_rows = []

    class Recording:  # the model, recording each forward's metadata and each LM head's rows
        def __call__(self, *args):
            return calls.append((args[1], args[2])) or model(*args)

        def compute_logits(self, hidden):
            return logit_rows.append(len(hidden)) or model.compute_logits(hidden)

        def modules(self):
            return model.modules()

    runner.model = Recording()
    runner.graphs = None  # as with --enforce-eager
    runner._pads_rows = True  # as CudaModelRunner.load_model finds for core's attention
    CudaModelRunner._warm_up(runner, llm.llm_engine.num_blocks)
    ((positions, metadata),) = calls
    # the step budget (2048) exceeds the model's 512 positions: the chunk stops at the model's
    # length (the rotary table has that many rows, and GPU kernels do not check their indices)
    scheduler = llm.llm_engine.config.scheduler
    assert scheduler.max_num_batched_tokens - 3 > scheduler.max_model_len
    chunk = scheduler.max_model_len - 21
    assert metadata.query_start_loc_cpu == [0, chunk, chunk + 1, chunk + 2, chunk + 3]
    assert int(positions.max()) == scheduler.max_model_len - 1
    assert max(metadata.seq_lens_cpu) <= scheduler.max_model_len
    assert logit_rows == [4]  # no graphs here: the full-batch LM head is not in the memory profile
    # with graphs, then the LM head at every row count a step can sample, largest first
    # (cuBLAS loads kernels per shape; falling sizes reuse the first one's cached block)
    logit_rows.clear()
    runner.graphs = object()
    CudaModelRunner._warm_up(runner, llm.llm_engine.num_blocks)
    max_num_seqs = llm.llm_engine.config.scheduler.max_num_seqs
    assert logit_rows == [4, *range(max_num_seqs, 0, -1)]


def test_steps_a_graph_covers_replay_it_and_eager_steps_are_padded():
    from types import SimpleNamespace

    import torch
    from llmrt_cuda.model_runner import CudaModelRunner

    decode, prompt = SimpleNamespace(max_query_len=1), SimpleNamespace(max_query_len=4)
    replayed, seen = [], []
    graphs = SimpleNamespace(can_run=lambda metadata: metadata is decode,
                             run=lambda *args: replayed.append(args) or "graph")

    def model(ids, positions, metadata):
        seen.append((ids.clone(), positions.clone()))
        return torch.stack([ids, positions], dim=1)

    runner = SimpleNamespace(graphs=graphs, model=model, _pads_rows=True,
                             config=SimpleNamespace(scheduler=SimpleNamespace(max_num_batched_tokens=8192)))
    ids, positions = torch.arange(5, 10), torch.arange(3, 8)
    assert CudaModelRunner._run_model(runner, ids, positions, decode) == "graph"
    assert replayed == [(ids, positions, decode)]
    out = CudaModelRunner._run_model(runner, ids, positions, prompt)
    assert out.tolist() == [[i, p] for i, p in zip(ids.tolist(), positions.tolist())]  # the real rows only
    padded_ids, padded_positions = seen[-1]
    assert len(padded_ids) == 256 and not padded_ids[5:].any() and not padded_positions[5:].any()
    sampled = CudaModelRunner._run_model(runner, ids, positions, prompt, torch.tensor([4, 1]))
    assert sampled.tolist() == [[9, 7], [6, 4]] and len(seen[-1][0]) == 256  # every row ran, two returned
    runner.graphs = None  # --enforce-eager: a decode-only step keeps its rows (one-row products)
    CudaModelRunner._run_model(runner, ids, positions, decode)
    assert len(seen[-1][0]) == 5
    runner._pads_rows = False  # an attention implementation that does not take padding rows
    CudaModelRunner._run_model(runner, ids, positions, prompt)
    assert len(seen[-1][0]) == 5


def test_loaded_runner_pads_only_with_attention_that_takes_padding(tmp_path, monkeypatch):
    """``CudaModelRunner.load_model`` (run here on the CPU backend) finds whether every attention
    layer accepts padded rows: core's reference does; an implementation that does not turns it off."""
    pytest.importorskip("llmrt_cpu", reason="loads the model on the CPU backend (llmrt-cpu)")
    from llmrt import LLM
    from llmrt.testing import build_tiny_model
    from llmrt_cuda.model_runner import CudaModelRunner

    llm = LLM(model=str(build_tiny_model("qwen3", tmp_path / "qwen3")), backend="cpu", dtype="float32",
              attention_backend="torch")
    engine = llm.llm_engine
    runner = CudaModelRunner(engine.config, engine.backend, engine.host, engine.model_dir)
    runner.load_model()
    assert runner._pads_rows
    monkeypatch.setattr(type(runner.model.attention_layers()[0].impl), "accepts_padded_rows", False)
    runner.load_model()
    assert not runner._pads_rows
