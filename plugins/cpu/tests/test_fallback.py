"""Without native kernels the CPU backend still installs and still runs, on PyTorch ops.

Two ways to lose them are checked: the kernels turned off at run time ($LLMRT_CPU_NATIVE=0,
the same code path as a build that was skipped), and a build with no working compiler, which
must finish successfully with a clear message and no extension.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[1]

FALLBACK_SCRIPT = textwrap.dedent("""
    import sys
    from llmrt import LLM, SamplingParams
    from llmrt.backends.selection import backend_report
    from llmrt.engine.model_setup import resolve_attention
    from llmrt.plugins import get_plugin_host
    from llmrt.testing import build_tiny_model, random_prompts
    from llmrt.testing.hf_reference import hf_greedy

    host = get_plugin_host()
    cpu = {s.name: s for s in backend_report(host)}["cpu"]
    assert "disabled" in cpu.availability.reason, cpu.availability.reason
    assert resolve_attention(host, "cpu", None)[0] == "torch"
    model = str(build_tiny_model("qwen3", sys.argv[1]))
    prompts = random_prompts(500, 3, 5, 30, seed=3)
    llm = LLM(model=model, backend="cpu", dtype="float32")
    params = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True)
    outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in outputs] == hf_greedy(model, prompts, 6)
    print("fallback ok")
""")


def test_backend_runs_on_pytorch_ops_when_native_kernels_are_off(tmp_path):
    env = {**os.environ, "LLMRT_CPU_NATIVE": "0"}
    result = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT, str(tmp_path / "qwen3")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fallback ok" in result.stdout


def test_build_without_a_compiler_succeeds_with_a_message(tmp_path):
    source = tmp_path / "plugin"
    shutil.copytree(PLUGIN_DIR, source, ignore=shutil.ignore_patterns("build", "*.so", "__pycache__", "*.egg-info"))
    env = {**os.environ, "CC": "/nonexistent/cc", "CXX": "/nonexistent/c++"}
    result = subprocess.run([sys.executable, "setup.py", "build_ext", "--build-lib", str(tmp_path / "lib"),
                             "--build-temp", str(tmp_path / "tmp")],
                            cwd=source, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "native kernels NOT built" in output
    assert not list((tmp_path / "lib").rglob("*.so"))
