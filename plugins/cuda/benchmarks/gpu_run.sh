#!/usr/bin/env bash
# One device call: set up, then run the phases named as arguments (tests nano nano-llmrt host-stalls ab-env prompt prompt-ab tune
# small-kernels block-size llama latency throughput throughput-512 startup kernels native nano-native gemv splits layout ab-nano
# ab-latency), logging everything to $OUT and ending with the
# RESULT lines. From the repository root:
#   bash plugins/cuda/benchmarks/gpu_run.sh tests nano llama startup
# The machine has every dependency but importlib_metadata: carry its wheel in .whl/ (pip download
# importlib_metadata==8.7.0 -d .whl), and the transformers wheel the CPU suite uses beside it
# (pip download --no-deps transformers==5.24.0 -d .whl). Random models go to /dev/shm/models.
set -uo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/whl .whl/*.whl || exit 1
# A transformers wheel in .whl/ (the version the CPU suite uses) replaces the image's as the
# reference, unless it cannot import there.
if ! PYTHONPATH=/tmp/whl python3 -c "import transformers.models.gemma2.modeling_gemma2" 2>/dev/null; then
  echo "the carried transformers does not import here: using the image's" | tee "$OUT/transformers.txt"
  rm -rf /tmp/whl/transformers /tmp/whl/transformers-*
fi
PYTHONPATH=/tmp/whl:$(python3 plugins/cuda/benchmarks/dev_env.py /tmp/llmrt-site core plugins/triton plugins/cuda plugins/rocm)
export PYTHONPATH
BENCH="python3 plugins/cuda/benchmarks/bench.py"
MODELS=/dev/shm/models
model() { # model NAME: write the random checkpoint once per machine
  [ -f "$MODELS/$1/config.json" ] || python3 plugins/cuda/benchmarks/random_models.py "$1" "$MODELS/$1" >/dev/null
}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/results.txt"; }
tag() { sed "s/^RESULT {/RESULT {\"$1\": \"$2\", /"; }  # tag KEY VALUE: label an A/B side's RESULT lines
bench() { # bench SECONDS ARGS...: one benchmark process, its RESULT line kept
  local limit=$1; shift
  log "bench $*"
  timeout "$limit" $BENCH "$@" 2>&1 | tee -a "$OUT/bench.log" | grep -E "^RESULT|^TRACE|Error|error:|CUDA memory|CUDA graphs|LM head warmed|Linear layers warmed|KV cache: [0-9]|ready in|attention backend" | tee -a "$OUT/results.txt"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/results.txt"
python3 - <<'PY' 2>&1 | tee -a "$OUT/results.txt"
import torch, triton, transformers
from transformers import GenerationMixin
print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__,
      "transformers", transformers.__version__, "generate_batch:", hasattr(GenerationMixin, "generate_batch"))
PY

# The CUDA C++ kernels (llmrt_cuda._C), built in place unless a build was carried along.
if ! ls plugins/cuda/src/llmrt_cuda/_C*.so >/dev/null 2>&1; then
  start=$(date +%s)
  (cd plugins/cuda && TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=8 python3 setup.py build_ext --inplace) > "$OUT/build.log" 2>&1
  find plugins/cuda -name "_C*.so" -not -path "*/src/*" -exec cp {} plugins/cuda/src/llmrt_cuda/ \;
  cp plugins/cuda/src/llmrt_cuda/_C*.so "$OUT/" 2>/dev/null
  echo "built llmrt_cuda._C in $(( $(date +%s) - start )) s" | tee -a "$OUT/results.txt"
fi
python3 -c "from llmrt_cuda.native import native_kernels; print('CUDA C++ kernels:', native_kernels().reason)" 2>&1 | tail -1 | tee -a "$OUT/results.txt"

for phase in "$@"; do
  case $phase in
    tests)
      log "tests"
      timeout 120 python3 -m pytest -q -n 4 -p no:cacheprovider plugins/triton/tests plugins/cuda/tests 2>&1 | tee "$OUT/tests.log" | tail -25 | tee -a "$OUT/results.txt" ;;
    tests-native)  # the CUDA C++ kernels' tests alone
      log "tests-native"
      timeout 120 python3 -m pytest -q -n 4 -p no:cacheprovider plugins/cuda/tests/test_native_attention.py 2>&1 | tail -5 | tee -a "$OUT/results.txt" ;;
    nano)
      model qwen3-0.6b
      bench 150 llmrt-nano $MODELS/qwen3-0.6b --repeat 2 --trace
      bench 150 hf-nano $MODELS/qwen3-0.6b --num-prompts 16 ;;
    nano-llmrt)  # llmrt alone (no peer), three runs in one process, the last traced
      model qwen3-0.6b
      bench 150 llmrt-nano $MODELS/qwen3-0.6b --repeat 2 --trace ;;
    host-timeline)  # host time of each part of nano's first 40 steps
      model qwen3-0.6b
      log "host-timeline"
      timeout 120 $BENCH llmrt-nano $MODELS/qwen3-0.6b --host-timeline 2>&1 | grep -E "^HOST|^RESULT" | tee -a "$OUT/results.txt" ;;
    host-stalls)  # the nano steps whose host work (not waiting for tokens) took longest
      model qwen3-0.6b
      log "host-stalls"
      timeout 120 $BENCH llmrt-nano $MODELS/qwen3-0.6b --host-stalls 2>&1 | grep -E "^HOST|^RESULT" | tee -a "$OUT/results.txt" ;;
    sync-debug)  # where a nano run (64 requests) waits for the GPU
      model qwen3-0.6b
      log "sync-debug"
      timeout 120 $BENCH llmrt-nano $MODELS/qwen3-0.6b --num-prompts 64 --sync-debug 2>&1 | grep -E "^SYNC|^RESULT" | sort | uniq -c | sort -rn | head -30 | tee -a "$OUT/results.txt" ;;
    ab-env)  # nano as it is and with the environment assignments in AB_ENV, alternating
      model qwen3-0.6b
      for round in ${AB_ROUNDS:-1 2}; do
        bench 150 llmrt-nano $MODELS/qwen3-0.6b ${NANO_ARGS:-} | tag env default
        env ${AB_ENV:?set AB_ENV} $BENCH llmrt-nano $MODELS/qwen3-0.6b ${NANO_ARGS:-} 2>&1 | grep "^RESULT" \
          | tag env "$AB_ENV" | tee -a "$OUT/results.txt"
      done ;;
    block-size)  # nano with each KV cache block size in BLOCK_SIZES, alternating
      model qwen3-0.6b
      for round in ${AB_ROUNDS:-1 2}; do
        for size in ${BLOCK_SIZES:-16 32 64}; do
          bench 150 llmrt-nano $MODELS/qwen3-0.6b --block-size $size | tag block_size $size
        done
      done ;;
    nano-first)  # the first run traced (where its extra time goes), then a second run
      model qwen3-0.6b
      bench 150 llmrt-nano $MODELS/qwen3-0.6b --repeat 2 --trace-first ;;
    tune)  # nano with each decode-attention launch configuration (BLOCK_N,WARPS,STAGES)
      model qwen3-0.6b
      for config in ${DECODE_CONFIGS:-128,4,3 64,4,3 128,8,3}; do
        bench 150 llmrt-nano $MODELS/qwen3-0.6b --decode-config $config
      done ;;
    latency)  # 8B batch 1, llmrt alone, traced
      model llama3-8b
      bench 90 llmrt-latency $MODELS/llama3-8b --input-len 128 --output-len 256 --trace ;;
    throughput)  # 8B 1000 x 256/256, llmrt alone
      model llama3-8b
      bench 140 llmrt-throughput $MODELS/llama3-8b --num-prompts 1000 --input-len 256 --output-len 256 ;;
    throughput-512)  # the same with decode batches of up to 512 and 16k-token steps
      model llama3-8b
      bench 140 llmrt-throughput $MODELS/llama3-8b --num-prompts 1000 --input-len 256 --output-len 256 \
        --max-num-seqs 512 --max-num-batched-tokens 16384 ;;
    warm-up)  # the startup warm-up step on and off (graph vs eager steps, batch-1 latency)
      model qwen3-0.6b
      model llama3-8b
      for flag in "" --no-warm-up; do
        bench 100 llmrt-nano $MODELS/qwen3-0.6b --num-prompts 32 --profile $flag
        bench 90 llmrt-latency $MODELS/llama3-8b --input-len 128 --output-len 256 $flag
      done ;;
    native)  # the CUDA C++ decode kernel against Triton's, kernel alone
      log "native"
      timeout 200 python3 plugins/cuda/benchmarks/decode_attention_bench.py --native 2>&1 | tee -a "$OUT/results.txt" ;;
    prompt)  # prompt attention (one nano prompt step) by launch configuration and tile order
      log "prompt"
      timeout 200 python3 plugins/cuda/benchmarks/decode_attention_bench.py --prompt 2>&1 | tee -a "$OUT/results.txt" ;;
    prompt-ab)  # the prompt sweep, then nano with its fastest launch against the default, alternating
      model qwen3-0.6b
      log "prompt-ab"
      timeout 200 python3 plugins/cuda/benchmarks/decode_attention_bench.py --prompt 2>&1 | tee -a "$OUT/results.txt" > "$OUT/prompt.txt"
      best=$(python3 - "$OUT/prompt.txt" <<'PY'
import re, sys
rows = [l.split("|") for l in open(sys.argv[1]) if l.startswith("| (")]
rows = [r for r in rows if re.match(r"\s*[0-9.]+\s*$", r[3])]
config, order, _ = min(((r[1], r[2], float(r[3])) for r in rows), key=lambda r: r[2])
flags = "--prompt-config " + ",".join(re.findall(r"\d+", config))
print(flags + (" --prompt-tiles-last-first" if "last" in order else ""))
PY
)
      log "fastest prompt launch: $best"
      for round in ${AB_ROUNDS:-1 2}; do
        bench 150 llmrt-nano $MODELS/qwen3-0.6b | tag prompt default
        bench 150 llmrt-nano $MODELS/qwen3-0.6b $best | tag prompt "$best"
      done ;;
    nano-native)  # nano with the CUDA C++ decode kernel and without it (LLMRT_CUDA_NATIVE=0), alternating
      model qwen3-0.6b
      for round in ${AB_ROUNDS:-1 2}; do
        bench 150 llmrt-nano $MODELS/qwen3-0.6b ${NANO_ARGS:-} | tag decode cuda
        LLMRT_CUDA_NATIVE=0 bench 150 llmrt-nano $MODELS/qwen3-0.6b ${NANO_ARGS:-} | tag decode triton
      done ;;
    small-kernels)  # the per-layer norm, rotary and activation kernels of a decode step by launch configuration
      log "small-kernels"
      for rows in ${SMALL_ROWS:-256 64}; do
        timeout 200 python3 plugins/cuda/benchmarks/small_kernels_bench.py --rows $rows 2>&1 | tee -a "$OUT/results.txt"
      done ;;
    kernels)
      timeout 120 python3 plugins/cuda/benchmarks/decode_attention_bench.py 2>&1 | tee -a "$OUT/results.txt" ;;
    layout)  # decode attention over token-major and head-major cache blocks
      log "layout"
      timeout 200 python3 plugins/cuda/benchmarks/decode_attention_bench.py --layout 2>&1 | tee -a "$OUT/results.txt" ;;
    splits)  # decode attention by batch size and forced KV splits, and over a spread-out cache
      log "splits"
      timeout 200 python3 plugins/cuda/benchmarks/decode_attention_bench.py --splits 2>&1 | tee -a "$OUT/results.txt"
      timeout 200 python3 plugins/cuda/benchmarks/decode_attention_bench.py --spread 2>&1 | tee -a "$OUT/results.txt" ;;
    ab-nano|ab-latency)  # the working tree against .whl/base.tar (git archive of a commit), alternating
      if [ "$phase" = ab-nano ]; then model qwen3-0.6b; args="llmrt-nano $MODELS/qwen3-0.6b"
      else model llama3-8b; args="llmrt-latency $MODELS/llama3-8b --input-len 128 --output-len 256"; fi
      mkdir -p /tmp/base && tar -xf .whl/base.tar -C /tmp/base
      # the base runs the tree's CUDA C++ build (git archive has none): compare csrc-free changes only
      [ -f /tmp/base/plugins/cuda/src/llmrt_cuda/_C*.so ] || cp plugins/cuda/src/llmrt_cuda/_C*.so /tmp/base/plugins/cuda/src/llmrt_cuda/
      base_path=/tmp/whl:$(cd /tmp/base && python3 plugins/cuda/benchmarks/dev_env.py /tmp/base-site core plugins/triton plugins/cuda plugins/rocm)
      for round in ${AB_ROUNDS:-1 2}; do
        bench 150 $args | tag tree new
        log "base: $args"
        (cd /tmp/base && PYTHONPATH=$base_path timeout 150 python3 plugins/cuda/benchmarks/bench.py $args 2>&1 \
          | grep -E "^RESULT|Error" | tag tree base | tee -a "$OUT/results.txt")
      done ;;
    gemv)  # few-row products: cuBLAS against the Triton GEMV configurations
      log "gemv"
      timeout 300 python3 plugins/cuda/benchmarks/gemv_bench.py --rows ${GEMV_ROWS:-1,4,8} 2>&1 | tee -a "$OUT/results.txt" ;;
    startup)
      model qwen3-0.6b
      bench 45 llmrt-startup $MODELS/qwen3-0.6b ;;
    llama)
      model llama3-8b
      bench 90 llmrt-latency $MODELS/llama3-8b --input-len 128 --output-len 256 --trace
      bench 60 hf-latency $MODELS/llama3-8b --input-len 128 --output-len 256
      bench 140 llmrt-throughput $MODELS/llama3-8b --num-prompts 1000 --input-len 256 --output-len 256
      bench 80 hf-throughput $MODELS/llama3-8b --num-prompts 32 --input-len 256 --output-len 256 ;;
  esac
done
log "summary"
grep -h "^RESULT" "$OUT/results.txt" | cut -c8- | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line); r.pop("profile", None) if not r.get("profile") else None
    print(" | ".join(f"{k}={v}" for k, v in r.items()))
'
