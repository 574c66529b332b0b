"""Engine startup: fast for tiny models, every phase logged, clear errors for bad checkpoints."""

import json
import logging
import shutil

import pytest

from llmrt import LLM
from llmrt.engine.model_setup import UnsupportedModelError
from llmrt.model.hub import ModelNotFoundError
from llmrt.testing import build_tiny_model

PHASES = ("select backend", "resolve model", "load tokenizer", "load weights", "profile and allocate KV cache")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model("qwen3", tmp_path_factory.mktemp("startup") / "qwen3")


def test_tiny_model_is_ready_in_under_three_seconds_and_logs_each_phase(model_dir, caplog):
    with caplog.at_level(logging.INFO, logger="llmrt"):
        llm = LLM(model=str(model_dir), backend="cpu")
    timings = llm.llm_engine.timings
    assert tuple(timings) == PHASES
    assert sum(timings.values()) < 3.0, timings
    ready = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("ready in"))
    for phase in PHASES:
        assert phase in ready
    assert any("KV cache:" in r.getMessage() and "blocks" in r.getMessage() for r in caplog.records)
    assert any("backend 'cpu'" in r.getMessage() for r in caplog.records)


def _copy(model_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def test_unknown_architecture_lists_the_supported_ones(model_dir, tmp_path):
    target = _copy(model_dir, tmp_path)
    config = json.loads((target / "config.json").read_text())
    config["architectures"] = ["FooForCausalLM"]
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match="FooForCausalLM.*LlamaForCausalLM"):
        LLM(model=str(target), backend="cpu")


def test_missing_weights_are_named(model_dir, tmp_path):
    target = _copy(model_dir, tmp_path)
    (target / "model.safetensors").unlink()
    with pytest.raises(Exception, match="safetensors"):
        LLM(model=str(target), backend="cpu")


def test_corrupt_weights_are_named(model_dir, tmp_path):
    target = _copy(model_dir, tmp_path)
    (target / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(Exception, match="model.safetensors"):
        LLM(model=str(target), backend="cpu")


def test_missing_model_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        LLM(model=str(tmp_path / "nope"), backend="cpu")


def test_trust_remote_code_is_refused(model_dir):
    with pytest.raises(ValueError, match="trust_remote_code"):
        LLM(model=str(model_dir), trust_remote_code=True)
