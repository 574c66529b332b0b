"""``llmrt bench throughput``: offline throughput, with the flags and output of ``vllm bench throughput``.

    llmrt bench throughput --model DIR --dataset-name random --input-len 128 --output-len 128 --num-prompts 32
    llmrt bench throughput --model DIR --dataset-name nano                  # the 256-request nano workload
    llmrt bench throughput --model DIR --dataset-name nano --num-prompts 32 --nano-len-range 16 256

Every request is queued at once and runs to its exact output length (EOS ignored), sampled as
vLLM's benchmark samples (temperature 1, top-p 1). Engine options are ``llmrt generate``'s
(``--backend`` is llmrt's hardware backend, where vLLM's names an engine). The clock runs from the first request to the
last output, after the engine is ready; startup time is reported separately.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from llmrt.bench.datasets import (
    NANO_LEN_RANGE,
    NANO_NUM_PROMPTS,
    NANO_TOTALS,
    SampleRequest,
    is_full_nano,
    nano_requests,
    random_requests,
)
from llmrt.cli.engine_args import add_engine_arguments, engine_config_from_args

DEFAULT_NUM_PROMPTS = 1000  # vLLM's default for the random dataset


@dataclass
class ThroughputResult:
    """What one run measured; written as JSON with ``--output-json``."""

    elapsed_time: float
    num_requests: int
    total_num_tokens: int
    total_prompt_tokens: int
    total_output_tokens: int
    requests_per_second: float
    tokens_per_second: float
    output_tokens_per_second: float
    startup_seconds: float
    ready_at: float  # wall-clock time (time.time()) when the engine was ready, for start-to-ready


def add_parser(subparsers: Any) -> tuple[str, Any]:
    """Register ``throughput`` on the ``bench`` sub-parsers; returns its name and runner."""
    parser = subparsers.add_parser("throughput", help="offline throughput of a batch of requests")
    add_dataset_arguments(parser)
    parser.add_argument("--disable-detokenize", action="store_true", help="skip detokenizing outputs")
    parser.add_argument("--output-json", help="also write the results to this JSON file")
    add_engine_arguments(parser)
    return "throughput", run


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The workload: ``random`` (fixed lengths, like vLLM's) or ``nano``."""
    group = parser.add_argument_group("dataset")
    group.add_argument("--dataset-name", default="random", choices=["random", "nano"])
    group.add_argument("--num-prompts", type=int,
                       help=f"requests (default: {DEFAULT_NUM_PROMPTS}; nano: {NANO_NUM_PROMPTS})")
    group.add_argument("--input-len", type=int, default=1024, help="prompt tokens (random)")
    group.add_argument("--output-len", type=int, default=128, help="output tokens (random)")
    group.add_argument("--random-range-ratio", type=float, default=0.0,
                       help="random lengths uniform in [len*(1-r), len*(1+r)]")
    group.add_argument("--nano-len-range", type=int, nargs=2, metavar=("MIN", "MAX"), default=list(NANO_LEN_RANGE),
                       help="prompt and output lengths of the nano workload (inclusive)")


def sample_requests(args: argparse.Namespace, tokenizer: Any) -> list[SampleRequest]:
    """The requests the dataset arguments describe (deterministic for a given ``--seed``)."""
    if args.dataset_name == "nano":
        return nano_requests(args.num_prompts or NANO_NUM_PROMPTS, tuple(args.nano_len_range), args.seed)
    return random_requests(tokenizer, args.num_prompts or DEFAULT_NUM_PROMPTS, args.input_len, args.output_len,
                           range_ratio=args.random_range_ratio, seed=args.seed)


def build_engine(args: argparse.Namespace) -> tuple[Any, float]:
    """The engine the engine arguments describe, and the seconds it took to be ready."""
    from llmrt.engine.llm_engine import LLMEngine, freeze_startup_heap
    from llmrt.entrypoints.llm import default_model

    start = time.perf_counter()
    engine = LLMEngine(engine_config_from_args(args, args.model or default_model()))
    ready = time.perf_counter() - start
    freeze_startup_heap()
    return engine, ready


def run_to_completion(engine: Any, requests: list[SampleRequest], detokenize: bool = True,
                      temperature: float = 1.0) -> tuple[float, int]:
    """Queue every request, step until all finish; returns (seconds, output tokens)."""
    from llmrt.sampling_params import SamplingParams

    start = time.perf_counter()
    for index, request in enumerate(requests):
        params = SamplingParams(temperature=temperature, top_p=1.0, ignore_eos=True,
                                max_tokens=request.expected_output_len, detokenize=detokenize)
        engine.add_request(f"bench-{index}", {"prompt_token_ids": list(request.prompt)}, params)
    generated = 0
    while engine.has_unfinished_requests():
        # Final outputs only, as LLM.generate (and vLLM's offline benchmark) collects them.
        for output in engine.step(finished_only=True):
            if output.finished:
                generated += sum(len(completion.token_ids) for completion in output.outputs)
    return time.perf_counter() - start, generated


def print_workload(requests: list[SampleRequest], args: argparse.Namespace) -> None:
    """The workload's token totals (and whether they are the published nano totals)."""
    prompt = sum(r.prompt_len for r in requests)
    output = sum(r.expected_output_len for r in requests)
    print(f"Workload: {len(requests)} requests, {prompt} prompt tokens, {output} output tokens")
    if args.dataset_name == "nano" and is_full_nano(len(requests), tuple(args.nano_len_range), args.seed):
        expected = NANO_TOTALS
        verdict = "as published" if (prompt, output) == expected else f"EXPECTED {expected[0]}/{expected[1]}"
        print(f"Nano workload totals: {prompt:,} prompt / {output:,} output tokens ({verdict})")


def run(args: argparse.Namespace) -> int:
    """Build the engine, run the workload, print (and optionally save) the results."""
    engine, startup = build_engine(args)
    ready_at = time.time()
    requests = sample_requests(args, engine.tokenizer)
    print_workload(requests, args)
    elapsed, generated = run_to_completion(engine, requests, detokenize=not args.disable_detokenize)
    engine.shutdown()
    prompt_tokens = sum(r.prompt_len for r in requests)
    result = ThroughputResult(
        elapsed, len(requests), prompt_tokens + generated, prompt_tokens, generated, len(requests) / elapsed,
        (prompt_tokens + generated) / elapsed, generated / elapsed, startup, ready_at)
    print(f"Throughput: {result.requests_per_second:.2f} requests/s, {result.tokens_per_second:.2f} total tokens/s, "
          f"{result.output_tokens_per_second:.2f} output tokens/s")
    print(f"Total num prompt tokens:  {prompt_tokens}")
    print(f"Total num output tokens:  {generated}")
    print(f"Startup (engine ready): {startup:.2f} s")
    if args.output_json:
        with open(args.output_json, "w", encoding="utf-8") as handle:
            json.dump(asdict(result), handle, indent=2)
    return 0
