"""Hub ids resolve through the Hugging Face cache, offline, like a local folder."""

import shutil

import pytest

from llmrt import LLM, SamplingParams
from llmrt.model.hub import ModelNotFoundError, resolve_model_dir
from llmrt.testing import build_tiny_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A Hugging Face cache holding one tiny model as ``llmrt-test/tiny-qwen3``, network off."""
    source = build_tiny_model("qwen3", tmp_path / "source")
    repo = tmp_path / "hub" / "models--llmrt-test--tiny-qwen3"
    shutil.copytree(source, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return repo / "snapshots" / COMMIT


def test_cached_hub_id_resolves_offline_and_generates(hub_cache):
    assert resolve_model_dir("llmrt-test/tiny-qwen3") == hub_cache
    llm = LLM(model="llmrt-test/tiny-qwen3", backend="cpu")
    out = llm.generate([{"prompt_token_ids": [5, 6, 7]}], SamplingParams(max_tokens=3), use_tqdm=False)
    assert len(out[0].outputs[0].token_ids) == 3


def test_uncached_hub_id_offline_is_a_clear_error(hub_cache):
    with pytest.raises(ModelNotFoundError, match="llmrt-test/absent.*not in the Hugging Face cache"):
        resolve_model_dir("llmrt-test/absent")
