"""Finding a model's files: a local directory or a Hugging Face hub id (offline when cached)."""

from __future__ import annotations

from pathlib import Path

WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "tokenizer*"]


class ModelNotFoundError(FileNotFoundError):
    """The model is neither a local directory nor a resolvable hub id."""


def resolve_model_dir(model: str, revision: str | None = None) -> Path:
    """A local directory holding the model's config, weights and tokenizer.

    A hub id is resolved through the Hugging Face cache; with ``HF_HUB_OFFLINE=1`` or without
    network, a cached snapshot is used. Only safetensors and text files are fetched.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"{path} has no config.json; is it a Hugging Face model folder?")
        return path
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ModelNotFoundError(f"model folder {model!r} does not exist")
    return _from_hub(model, revision)


def _from_hub(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=WEIGHT_PATTERNS,
                                      local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached; try the network next
        pass
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=WEIGHT_PATTERNS))
    except Exception as exc:  # noqa: BLE001 - hub errors vary by version; report them all alike
        raise ModelNotFoundError(
            f"model {repo_id!r} is not a local folder, not in the Hugging Face cache, and could not be "
            f"downloaded: {exc}") from exc
