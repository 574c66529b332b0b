"""llmrt and its Hugging Face transformers peer on the workloads of issue 7, one JSON line each.

    python bench.py llmrt-nano MODEL            # DESIGN.md §5 "nano": 256 requests, in/out 100-1024
    python bench.py llmrt-latency MODEL         # batch 1, 128 in / 256 out (vllm bench latency)
    python bench.py llmrt-throughput MODEL      # 1000 x 256 in / 256 out (vllm bench throughput)
    python bench.py llmrt-startup MODEL         # process start to a ready engine
    python bench.py hf-nano|hf-latency|hf-throughput MODEL   # the same through transformers

Every run prints ``RESULT {...}`` with its numbers. Requests are token ids with EOS ignored and
no detokenization (as nano-vllm's benchmark); sampling is nano-vllm's (temperature 0.6) for
"nano", greedy elsewhere. Transformers runs its continuous batching (``generate_batch``) on a
prefix of the requests (it is ~30x slower) and plain ``generate`` for batch-1 latency.
"""

from __future__ import annotations

import time

PROCESS_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402


def nano_workload() -> tuple[list[list[int]], list[int]]:
    """The 256 prompts, then the 256 output lengths, drawn as DESIGN.md §5 says."""
    rng = random.Random(0)
    prompts = [[rng.randint(0, 10000) for _ in range(rng.randint(100, 1024))] for _ in range(256)]
    outputs = [rng.randint(100, 1024) for _ in range(256)]
    return prompts, outputs


def fixed_workload(count: int, input_len: int, seed: int = 0) -> list[list[int]]:
    """``count`` random prompts of ``input_len`` token ids."""
    rng = random.Random(seed)
    return [[rng.randint(0, 10000) for _ in range(input_len)] for _ in range(count)]


def report(**numbers) -> None:
    print("RESULT " + json.dumps(numbers), flush=True)


# -- llmrt -------------------------------------------------------------------------------------


def _llm(args):
    from llmrt import LLM
    from llmrt.engine.llm_engine import freeze_startup_heap

    llm = LLM(
        model=args.model,
        backend=args.backend,
        dtype="bfloat16",
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        block_size=args.block_size,
        enforce_eager=args.enforce_eager,
        gpu_memory_utilization=0.9,
        **({} if args.async_scheduling is None else {"async_scheduling": args.async_scheduling}),
    )
    freeze_startup_heap()  # as the server's engine process does
    return llm


def _run(llm, prompts, params) -> tuple[float, int]:
    _sync()
    start = time.perf_counter()
    outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    _sync()
    return time.perf_counter() - start, sum(len(o.outputs[0].token_ids) for o in outputs)


def _traced(llm, prompts, params, label: str) -> None:
    """One more run of the workload under the GPU tracer (``--trace``): prints ``TRACE {...}``."""
    from gpu_trace import gpu_trace

    with gpu_trace(label):
        _run(llm, prompts, params)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def llmrt_nano(args) -> None:
    import torch
    from llmrt import SamplingParams

    start = time.perf_counter()
    llm = _llm(args)
    startup = time.perf_counter() - start
    reserved_gib = round(torch.cuda.memory_reserved() / 2**30, 2) if torch.cuda.is_available() else None
    prompts, lengths = nano_workload()
    if args.num_prompts:
        prompts, lengths = prompts[: args.num_prompts], lengths[: args.num_prompts]
    _run(llm, [[1, 2, 3]], SamplingParams(max_tokens=8, ignore_eos=True))  # warm-up
    profiler = StepProfiler(llm) if args.profile else None
    params = [
        SamplingParams(temperature=0.6, ignore_eos=True, max_tokens=n, detokenize=False)
        for n in lengths
    ]
    loaded = _triton_variants()
    allocator = _allocator_counts()
    if args.sync_debug:
        _report_synchronizations()
    timeline = HostTimeline(llm, stalls=args.host_stalls) if args.host_timeline or args.host_stalls else None
    if args.trace_first:  # where the first run's extra time goes (timed under the tracer)
        from gpu_trace import gpu_trace

        with gpu_trace("nano-first-run"):
            elapsed, generated = _run(llm, prompts, params)
    else:
        elapsed, generated = _run(llm, prompts, params)
    if timeline is not None:
        timeline.print()
    again = [round(_run(llm, prompts, params)[0], 3) for _ in range(args.repeat - 1)]
    report(
        bench="nano",
        engine="llmrt",
        requests=len(prompts),
        prompt_tokens=sum(map(len, prompts)),
        output_tokens=generated,
        seconds=round(elapsed, 3),
        output_tok_s=round(generated / elapsed, 1),
        engine_startup_s=round(startup, 2),
        reserved_gib_at_ready=reserved_gib,
        eager=args.enforce_eager,
        async_scheduling=llm.llm_engine.async_scheduling,
        profile=_profile(profiler),
        later_runs_s=again,
        triton_variants_loaded_by_first_run=_triton_variants() - loaded,
        allocator_during_runs={k: v - allocator[k] for k, v in _allocator_counts().items()},
    )
    if args.trace:
        _traced(llm, prompts, params, "nano")


ALLOCATOR_COUNTS = {
    "segments": "segment.all.allocated",  # new cudaMalloc'd segments
    "retries": "num_alloc_retries",  # frees of the whole cache then a retry: a device sync each
    "syncs": "num_sync_all_streams",  # the allocator waited for every stream
}


def _allocator_counts() -> dict[str, int]:
    """PyTorch's CUDA allocator counters whose growth during a run means the host waited."""
    import torch

    stats = torch.cuda.memory_stats()
    return {name: stats.get(key, 0) for name, key in ALLOCATOR_COUNTS.items()}


def _report_synchronizations() -> None:
    """``--sync-debug``: print where the host waits for the GPU (PyTorch's sync debug mode),
    once per call site, with the engine frames that led there."""
    import traceback
    import warnings

    import torch

    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        stack = [f for f in traceback.extract_stack()[:-1] if "llmrt" in f.filename]
        key = "|".join(f"{f.filename}:{f.lineno}" for f in stack[-4:])
        if key not in seen:
            seen.add(key)
            frames = " <- ".join(f"{f.filename.split('/src/')[-1]}:{f.lineno}" for f in reversed(stack[-4:]))
            print(f"SYNC {message} at {frames}", flush=True)

    warnings.showwarning = show
    warnings.simplefilter("always")
    torch.cuda.set_sync_debug_mode("warn")


def _triton_variants() -> int:
    """Compiled specializations of llmrt-triton's kernels loaded in this process so far."""
    import llmrt_triton
    import pkgutil
    from importlib import import_module

    import triton

    total = 0
    for info in pkgutil.iter_modules(llmrt_triton.__path__):
        module = import_module(f"llmrt_triton.{info.name}")
        for value in vars(module).values():
            if isinstance(value, triton.runtime.jit.JITFunction):
                for cache in getattr(value, "device_caches", {}).values():
                    total += len(cache[0]) if isinstance(cache, tuple) else 0
    return total


class HostTimeline:
    """``--host-timeline``: host time of each part of the first engine steps, without waiting for
    the GPU (so the run behaves as usual); prints one line per step.

    ``--host-stalls``: the same parts for every step, and the slowest steps by host time outside
    the wait for the previous step's tokens (``resolve``), with what happened to the process
    meanwhile (``_counters``): where the GPU waited for the host mid-run.
    """

    PARTS = (
        ("schedule", "scheduler", "schedule"),
        ("prepare", "runner", "_prepare"),
        ("forward", "runner", "_run_model"),
        ("logits", "model", "compute_logits"),
        ("sample", "runner", "_sample"),
        ("to_host", "transfers", "to_host"),
        ("record", "engine", "_record_pending"),
        ("resolve", "pending", "resolve"),
        ("update", "scheduler", "update_from_output"),
        ("outputs", "outputs", "update"),
    )

    def __init__(self, llm, steps: int = 40, stalls: bool = False) -> None:
        from llmrt.engine.pending_step import PendingStep

        engine = llm.llm_engine
        owners = {"scheduler": engine.scheduler, "runner": engine.runner, "model": engine.runner.model,
                  "transfers": engine.runner.transfers, "engine": engine, "pending": PendingStep,
                  "outputs": engine.output_processor}
        self.steps: list[dict[str, float]] = []
        self.limit = 1 << 30 if stalls else steps
        self.stalls = stalls
        self.sampler = StackSampler() if stalls and os.environ.get("HOST_STACKS") else None
        for part, owner, name in self.PARTS:
            self._wrap(owners[owner], name, part)
        step = engine.step

        def timed_step(*args, **kwargs):
            if len(self.steps) < self.limit:
                self.steps.append({"start": time.perf_counter(), **self._counters()})
            result = step(*args, **kwargs)
            if len(self.steps) <= self.limit and "end" not in self.steps[-1]:
                current = self.steps[-1]
                current["end"] = time.perf_counter()
                for name, value in self._counters().items():
                    current[name] = value - current[name]
            return result

        engine.step = timed_step

    def _counters(self) -> dict[str, float]:
        """What can slow a whole step: new CUDA segments, garbage collections, page faults,
        context switches (involuntary: the process was preempted), and the process's CPU time."""
        if not self.stalls:
            return {}
        import gc
        import resource

        import torch

        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"segments": torch.cuda.memory_stats().get("segment.all.allocated", 0),
                "gcs": sum(s["collections"] for s in gc.get_stats()), "faults": usage.ru_minflt + usage.ru_majflt,
                "preempted": usage.ru_nivcsw, "waits": usage.ru_nvcsw, "cpu_ms": time.process_time() * 1e3}

    def _wrap(self, owner, name: str, part: str) -> None:
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = inner(*args, **kwargs)
            if self.steps and "end" not in self.steps[-1]:
                current = self.steps[-1]
                current[part] = current.get(part, 0.0) + time.perf_counter() - start
            return result

        setattr(owner, name, timed)

    def print(self) -> None:
        steps = list(enumerate(self.steps))
        if self.sampler is not None:
            self.sampler.running = False
        if self.stalls:
            exposed = lambda item: item[1]["end"] - item[1]["start"] - item[1].get("resolve", 0.0)
            totals = {p: round(sum(s.get(p, 0.0) for s in self.steps), 3) for p, _, _ in self.PARTS}
            print(f"HOST {len(steps)} steps, seconds per part: {totals}", flush=True)
            self._print_buckets()
            if os.environ.get("HOST_STEPS_JSON"):
                with open(os.environ["HOST_STEPS_JSON"], "w") as f:
                    json.dump(self.steps, f)
            if self.sampler is not None:
                print("HOST the whole run's samples:", flush=True)
                self.sampler.print_between(0.0, float("inf"), top=8)
            steps = sorted(steps, key=exposed, reverse=True)[:25]
        for index, step in steps:
            parts = " ".join(f"{p}={step.get(p, 0.0) * 1e3:.2f}" for p, _, _ in self.PARTS)
            counters = " ".join(f"{name}={round(step[name], 2)}" for name in self._counters() if name in step)
            print(f"HOST step {index} total={(step['end'] - step['start']) * 1e3:.2f} ms {parts} {counters}",
                  flush=True)
            if self.sampler is not None:
                self.sampler.print_between(step["start"], step["end"])


    def _print_buckets(self, size: int = 100) -> None:
        """Per ``size`` steps: host time outside the wait for tokens, and the wait itself."""
        for first in range(0, len(self.steps), size):
            steps = self.steps[first:first + size]
            wait = sum(s.get("resolve", 0.0) for s in steps)
            busy = sum(s["end"] - s["start"] for s in steps) - wait
            print(f"HOST steps {first}-{first + len(steps) - 1}: host {busy * 1e3:.0f} ms "
                  f"({busy / len(steps) * 1e3:.2f} a step), waiting for tokens {wait * 1e3:.0f} ms", flush=True)


class StackSampler:
    """A thread that samples the main thread's Python stack every ``interval`` seconds (the
    GIL switch interval is lowered to match), so the slow steps of ``--host-stalls`` show the
    code they spent their time in. Perturbs the run a little; use it for where, not how long."""

    def __init__(self, interval: float = 0.0005) -> None:
        import sys
        import threading

        self.samples: list[tuple[float, tuple[str, ...]]] = []
        self.main = threading.main_thread().ident
        self.interval = interval
        self.running = True
        sys.setswitchinterval(interval)
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        import sys

        import threading

        me = threading.get_ident()
        while self.running:
            frames = sys._current_frames()
            main = self._stack(frames.get(self.main), 6)
            # other threads too: one that holds the GIL stalls the main thread
            others = tuple(f"thread {ident % 10000}: " + " < ".join(self._stack(frame, 2))
                           for ident, frame in frames.items() if ident not in (self.main, me))
            self.samples.append((time.perf_counter(), main, others))
            time.sleep(self.interval)

    @staticmethod
    def _stack(frame, depth: int) -> tuple[str, ...]:
        stack = []
        while frame is not None and len(stack) < depth:
            code = frame.f_code
            stack.append(f"{code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}:{code.co_name}")
            frame = frame.f_back
        return tuple(stack)

    def print_between(self, start: float, end: float, top: int = 4) -> None:
        """The most frequent main-thread stacks sampled in ``[start, end]``, and other threads'."""
        from collections import Counter

        window = [(main, others) for t, main, others in self.samples if start <= t <= end]
        for stack, count in Counter(main for main, _ in window).most_common(top):
            print(f"HOST   {count} samples: {' < '.join(stack)}", flush=True)
        for other, count in Counter(o for _, others in window for o in others).most_common(top):
            print(f"HOST   other {count} samples: {other}", flush=True)


class StepProfiler:
    """Wall time per part of the engine step (``--profile``), synchronizing the GPU after each part.

    Parts: schedule (scheduler), prepare (flattening the batch, metadata, host->device copies),
    forward (the model, graph replays or eager), logits (LM head), sample (sampler and the
    device->host copy of the tokens), update (scheduler bookkeeping, output processing).
    """

    def __init__(self, llm) -> None:
        self.seconds: dict[str, float] = {}
        self.forwards = {"all": 0, "graph": 0}
        engine, runner = llm.llm_engine, llm.llm_engine.runner
        self._wrap(engine.scheduler, "schedule", "schedule")
        self._wrap(runner, "_prepare", "prepare")
        self._wrap(runner.model, "compute_logits", "logits")
        self._wrap(runner, "_sample", "sample")
        self._wrap(engine.scheduler, "update_from_output", "update")
        self._wrap(engine.output_processor, "update", "update")
        forward = self._wrap(runner, "_run_model", "forward")
        graphs = getattr(runner, "graphs", None)
        replay = graphs.run if graphs is not None else None

        def replayed(*args):  # counts actual replays, not steps a graph could have covered
            self.forwards["graph"] += 1
            return replay(*args)

        def counted(ids, positions, metadata, rows=None):
            self.forwards["all"] += 1
            return forward(ids, positions, metadata, rows)

        if graphs is not None:
            graphs.run = replayed
        runner._run_model = counted

    def summary_steps(self) -> dict:
        """Graph replays and eager forward passes."""
        return {"graph": self.forwards["graph"], "eager": self.forwards["all"] - self.forwards["graph"]}

    def _wrap(self, owner, name: str, part: str):
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = inner(*args, **kwargs)
            _sync()
            self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start
            return result

        setattr(owner, name, timed)
        return timed

    def summary(self) -> dict:
        total = sum(self.seconds.values())
        return {
            "steps": self.summary_steps(),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "share": {k: round(v / total, 3) for k, v in self.seconds.items()} if total else {},
        }


def _profile(profiler) -> dict:
    return profiler.summary() if profiler is not None else {}


def llmrt_latency(args) -> None:
    from llmrt import SamplingParams

    llm = _llm(args)
    prompts = fixed_workload(args.batch_size, args.input_len)
    params = SamplingParams(
        temperature=0.0, ignore_eos=True, max_tokens=args.output_len, detokenize=False
    )
    _run(llm, prompts, params)  # warm-up
    times = sorted(_run(llm, prompts, params)[0] for _ in range(args.iters))
    median = times[len(times) // 2]
    report(
        bench="latency",
        engine="llmrt",
        batch=args.batch_size,
        input_len=args.input_len,
        output_len=args.output_len,
        median_s=round(median, 4),
        all_s=[round(t, 4) for t in times],
        ms_per_token=round(1000 * median / args.output_len, 3),
        tok_s=round(args.output_len / median, 1),
        eager=args.enforce_eager,
    )
    if args.trace:
        _traced(llm, prompts, params, "latency")


def llmrt_throughput(args) -> None:
    from llmrt import SamplingParams

    llm = _llm(args)
    prompts = fixed_workload(args.num_prompts, args.input_len, seed=1)
    params = SamplingParams(
        temperature=0.0, ignore_eos=True, max_tokens=args.output_len, detokenize=False
    )
    _run(llm, prompts[:4], SamplingParams(max_tokens=4, ignore_eos=True))  # warm-up
    profiler = StepProfiler(llm) if args.profile else None
    elapsed, generated = _run(llm, prompts, params)
    total = args.num_prompts * args.input_len + generated
    report(
        bench="throughput",
        engine="llmrt",
        requests=args.num_prompts,
        input_len=args.input_len,
        output_len=args.output_len,
        seconds=round(elapsed, 3),
        total_tok_s=round(total / elapsed, 1),
        output_tok_s=round(generated / elapsed, 1),
        eager=args.enforce_eager,
        profile=_profile(profiler),
    )


def llmrt_startup(args) -> None:
    _llm(args)
    report(
        bench="startup",
        engine="llmrt",
        seconds_from_process_start=round(time.perf_counter() - PROCESS_START, 2),
        eager=args.enforce_eager,
    )


# -- Hugging Face transformers -------------------------------------------------------------------


def _hf_model(model_dir: str):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.bfloat16, device_map="cuda"
    ).eval()


def _hf_batch(model, prompts, max_new_tokens: int, sample: bool) -> tuple[float, int]:
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=sample,
        temperature=0.6 if sample else None,
        top_k=None,
        top_p=None,
        eos_token_id=None,
        pad_token_id=0,
    )
    _sync()
    start = time.perf_counter()
    results = model.generate_batch(inputs=prompts, generation_config=config)
    _sync()
    return time.perf_counter() - start, sum(len(r.generated_tokens) for r in results.values())


def hf_nano(args) -> None:
    prompts, lengths = nano_workload()
    count = args.num_prompts or 32
    prompts = prompts[:count]
    # generate_batch takes one max_new_tokens for all: the mean of these requests' lengths.
    mean_out = round(sum(lengths[:count]) / count)
    model = _hf_model(args.model)
    elapsed, generated = _hf_batch(model, prompts, mean_out, sample=True)
    report(
        bench="nano",
        engine="transformers generate_batch",
        requests=count,
        max_new_tokens=mean_out,
        output_tokens=generated,
        seconds=round(elapsed, 3),
        output_tok_s=round(generated / elapsed, 1),
    )


def hf_throughput(args) -> None:
    count = args.num_prompts
    prompts = fixed_workload(count, args.input_len, seed=1)
    model = _hf_model(args.model)
    elapsed, generated = _hf_batch(model, prompts, args.output_len, sample=False)
    report(
        bench="throughput",
        engine="transformers generate_batch",
        requests=count,
        input_len=args.input_len,
        output_len=args.output_len,
        seconds=round(elapsed, 3),
        total_tok_s=round((count * args.input_len + generated) / elapsed, 1),
        output_tok_s=round(generated / elapsed, 1),
    )


def hf_latency(args) -> None:
    import torch

    model = _hf_model(args.model)
    ids = torch.tensor(fixed_workload(1, args.input_len), device="cuda")
    kwargs = dict(
        max_new_tokens=args.output_len,
        min_new_tokens=args.output_len,
        do_sample=False,
        attention_mask=torch.ones_like(ids),
        pad_token_id=0,
    )
    model.generate(ids, **{**kwargs, "max_new_tokens": 8, "min_new_tokens": 8})  # warm-up
    _sync()
    start = time.perf_counter()
    out = model.generate(ids, **kwargs)
    _sync()
    elapsed = time.perf_counter() - start
    generated = out.shape[1] - ids.shape[1]
    report(
        bench="latency",
        engine="transformers generate",
        batch=1,
        input_len=args.input_len,
        output_len=generated,
        median_s=round(elapsed, 4),
        ms_per_token=round(1000 * elapsed / generated, 3),
        tok_s=round(generated / elapsed, 1),
    )


COMMANDS = {
    "llmrt-nano": llmrt_nano,
    "llmrt-latency": llmrt_latency,
    "llmrt-throughput": llmrt_throughput,
    "llmrt-startup": llmrt_startup,
    "hf-nano": hf_nano,
    "hf-latency": hf_latency,
    "hf-throughput": hf_throughput,
}


def main() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    for noisy in ("httpx", "transformers", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("model")
    parser.add_argument("--backend", default="cuda")
    parser.add_argument("--enforce-eager", action="store_true")
    parser.add_argument("--async-scheduling", action=argparse.BooleanOptionalAction, default=None,
                        help="override the engine's default (on for CUDA)")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--max-num-seqs", type=int, default=256)
    parser.add_argument("--max-num-batched-tokens", type=int, default=8192)
    parser.add_argument("--block-size", type=int, default=None, help="KV cache block size (default: the backend's)")
    parser.add_argument("--num-prompts", type=int, default=0)
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1, help="nano: timed runs in the process")
    parser.add_argument("--profile", action="store_true", help="time each part of the engine step")
    parser.add_argument("--host-timeline", action="store_true",
                        help="nano: host time of each part of the first 40 steps (no GPU waits)")
    parser.add_argument("--host-stalls", action="store_true",
                        help="nano: the steps with the most host time outside waiting for tokens")
    parser.add_argument("--sync-debug", action="store_true",
                        help="nano: print each place the timed run waits for the GPU")
    parser.add_argument("--no-warm-up", action="store_true",
                        help="skip the CUDA runner's startup warm-up step (to measure what it saves)")
    parser.add_argument("--trace-first", action="store_true",
                        help="nano: run the timed (first) run under the GPU tracer")
    parser.add_argument("--trace", action="store_true",
                        help="after the timed run, run once more under the GPU tracer (gpu_trace.py)")
    parser.add_argument(
        "--decode-config", help="BLOCK_N,WARPS,STAGES of the decode attention launch (tuning runs)"
    )
    parser.add_argument("--prompt-config",
                        help="BLOCK_M,BLOCK_N,WARPS,STAGES of the prompt attention launch (tuning runs)")
    parser.add_argument("--prompt-tiles-last-first", action="store_true",
                        help="launch each prompt step's attention tiles in reverse (longest work first)")
    args = parser.parse_args()
    if args.prompt_config or args.prompt_tiles_last_first:
        _override_prompt_launch(args.prompt_config, args.prompt_tiles_last_first)
    if args.no_warm_up:
        from llmrt_cuda.model_runner import CudaModelRunner

        CudaModelRunner._warm_up = lambda self, num_blocks: None
    if args.decode_config:
        _override_decode_config(*map(int, args.decode_config.split(",")))
    COMMANDS[args.command](args)


def _override_decode_config(block_n: int, warps: int, stages: int) -> None:
    """Replace the decode launch parameters of llmrt-triton (for measuring alternatives)."""
    from llmrt_triton import attention_plan

    default = attention_plan.decode_config
    attention_plan.decode_config = lambda group, head_size: attention_plan.LaunchConfig(
        default(group, head_size).block_m, block_n, warps, stages
    )


def _override_prompt_launch(config: str | None, last_first: bool) -> None:
    """Replace the prompt attention launch of llmrt-triton (for measuring alternatives)."""
    from llmrt_triton import attention_plan

    if config:
        launch = attention_plan.LaunchConfig(*map(int, config.split(",")))
        attention_plan.prompt_config = lambda group, head_size: launch
    if last_first:
        tiles = attention_plan.prompt_tiles
        attention_plan.prompt_tiles = lambda *args: tuple(t.flip(0) for t in tiles(*args))


if __name__ == "__main__":
    main()
