"""``GET /v1/models`` and the small informational endpoints."""

from __future__ import annotations

from typing import Literal

import msgspec


class ModelCard(msgspec.Struct, kw_only=True):
    """One served model."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llmrt"
    root: str | None = None
    parent: str | None = None
    max_model_len: int | None = None


class ModelList(msgspec.Struct, kw_only=True):
    """``object: "list"`` of model cards."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class VersionResponse(msgspec.Struct):
    """``GET /version``."""

    version: str
