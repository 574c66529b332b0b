"""Engine options shared by ``llmrt generate``, ``serve`` and ``bench``, named like vLLM's."""

from __future__ import annotations

import argparse

from llmrt.config import CacheConfig, EngineConfig, ModelConfig, SchedulerConfig

GIB = 1 << 30


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the model, backend, cache and scheduler options to ``parser``."""
    group = parser.add_argument_group("engine")
    group.add_argument("--model", help="model folder or Hugging Face hub id (default: the demo model)")
    group.add_argument("--tokenizer", help="tokenizer folder or hub id (default: the model's)")
    group.add_argument("--revision", help="hub revision of the model")
    group.add_argument("--backend", help="backend name (default: the highest-priority usable one)")
    group.add_argument("--attention-backend", help="attention implementation name")
    group.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16", "half"])
    group.add_argument("--max-model-len", type=int, help="context length (default: the model's)")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--quantization", help="quantization method (default: from the checkpoint)")
    group.add_argument("--block-size", type=int,
                       help="tokens per KV cache block (default: the backend's; 16 on GPUs, 128 on CPUs)")
    group.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=True)
    group.add_argument("--kv-cache-memory", type=float, metavar="GIB",
                       help="KV cache size in GiB (default: from free memory)")
    group.add_argument("--gpu-memory-utilization", type=float, default=0.9,
                       help="share of device memory llmrt may use in total")
    group.add_argument("--num-gpu-blocks-override", type=int, help="force this many KV blocks")
    group.add_argument("--max-num-seqs", type=int, default=256)
    group.add_argument("--max-num-batched-tokens", type=int, default=2048)
    group.add_argument("--scheduling-policy", default="fcfs", choices=["fcfs", "priority"])
    group.add_argument("--preemption-mode", default="recompute", choices=["recompute", "swap"],
                       help="when KV blocks run out: recompute the preempted request, or swap its KV to host memory")
    group.add_argument("--swap-space", type=float, default=0, metavar="GIB",
                       help="host memory for swapped-out KV blocks (with --preemption-mode swap)")
    group.add_argument("--num-threads", type=int, help="CPU threads (default: all allowed cores)")
    group.add_argument("--enforce-eager", action="store_true", help="disable graph capture")
    group.add_argument("--async-scheduling", action=argparse.BooleanOptionalAction, default=None,
                       help="schedule the next step while the device runs this one "
                            "(default: on where the backend overlaps host and device)")
    group.add_argument("--generation-config", default="auto",
                       help="'auto' (the model's generation_config.json), 'none', or a folder")


def engine_config_from_args(args: argparse.Namespace, model: str) -> EngineConfig:
    """Build an :class:`EngineConfig` from parsed options; ``model`` is already resolved."""
    dtype = "float16" if args.dtype == "half" else args.dtype
    return EngineConfig(
        model=ModelConfig(model=model, tokenizer=args.tokenizer, revision=args.revision, dtype=dtype,
                          max_model_len=args.max_model_len, seed=args.seed, quantization=args.quantization,
                          generation_config=args.generation_config),
        cache=CacheConfig(block_size=args.block_size, enable_prefix_caching=args.enable_prefix_caching,
                          kv_cache_bytes=int(args.kv_cache_memory * GIB) if args.kv_cache_memory else None,
                          memory_fraction=args.gpu_memory_utilization,
                          num_blocks_override=args.num_gpu_blocks_override,
                          swap_space_bytes=int(args.swap_space * GIB)),
        scheduler=SchedulerConfig(max_num_batched_tokens=args.max_num_batched_tokens,
                                  max_num_seqs=args.max_num_seqs, policy=args.scheduling_policy,
                                  preemption_mode=args.preemption_mode),
        backend=args.backend,
        attention_backend=args.attention_backend,
        num_threads=args.num_threads,
        enforce_eager=args.enforce_eager,
        async_scheduling=getattr(args, "async_scheduling", None),
        plugin_options=dict(vars(args)),
    )
