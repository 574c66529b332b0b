"""``/v1/models``, ``/health``, ``/ping`` and ``/version``: what is served and whether it is up."""

from __future__ import annotations

from llmrt.server.context import ServerContext
from llmrt.server.protocol.models import ModelCard, ModelList, VersionResponse
from llmrt.version import __version__


def list_models(ctx: ServerContext) -> ModelList:
    """One card per served name, each with the context length."""
    info = ctx.engine.info
    root = info.model_dir if info is not None else None
    cards = [
        ModelCard(id=name, created=ctx.created, root=root, max_model_len=ctx.max_model_len or None)
        for name in ctx.served_model_names
    ]
    return ModelList(data=cards)


def health(ctx: ServerContext) -> None:
    """Return if the server can serve requests now; raises 503 otherwise."""
    ctx.check_ready()


def version() -> VersionResponse:
    """The llmrt version."""
    return VersionResponse(__version__)
