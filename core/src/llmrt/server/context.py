"""ServerContext: what every route handler needs, built once per server."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from llmrt.engine.validation import RequestValidator
from llmrt.server.engine_client import EngineClient, EnginePrompt
from llmrt.server.errors import OpenAIError, from_request_error
from llmrt.server.limits import ServerLimits
from llmrt.server.metrics import ServerMetrics
from llmrt.server.sampling import build_sampling_params
from llmrt.server.tokenizer_service import TokenizerService

logger = logging.getLogger("llmrt.server")


@dataclass
class ServerContext:
    """The engine client, tokenizer, limits and metrics of one server."""

    engine: EngineClient
    tokenizer: TokenizerService
    served_model_names: list[str]
    limits: ServerLimits = field(default_factory=ServerLimits)
    api_key: str | None = None
    metrics: ServerMetrics | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    _validator: RequestValidator | None = None

    def __post_init__(self) -> None:
        if self.metrics is None:
            self.metrics = ServerMetrics(self.model_name)

    @property
    def model_name(self) -> str:
        """The name responses carry (the first served name)."""
        return self.served_model_names[0]

    @property
    def is_ready(self) -> bool:
        """True when the engine runs and the tokenizer is loaded."""
        return self.engine.ready.is_set() and self.engine.dead is None

    def check_ready(self) -> None:
        """Raise 503 unless requests can be served now."""
        self.engine.check_available()

    def check_model(self, model: str | None) -> None:
        """Raise 404 if ``model`` is given and is not served here."""
        if model is not None and model not in self.served_model_names:
            raise OpenAIError(
                404, f"The model `{model}` does not exist.", "model", "model_not_found"
            )

    @property
    def max_model_len(self) -> int:
        """The engine's context length (0 while it starts)."""
        return self.engine.info.max_model_len if self.engine.info is not None else 0

    @property
    def validator(self) -> RequestValidator:
        """The engine's request checks, run in the front end to answer 400s early."""
        if self._validator is None:
            info = self.engine.info
            assert info is not None
            self._validator = RequestValidator(
                self.tokenizer.tokenizer,
                SimpleNamespace(vocab_size=info.vocab_size),
                info.max_model_len,
                info.generation_defaults,
                info.eos_token_id,
                max_num_seqs=info.max_num_seqs,
            )
        return self._validator

    def prepare(
        self,
        token_ids: list[int],
        sampling: dict[str, Any],
        priority: int = 0,
        cache_salt: str | None = None,
    ) -> EnginePrompt:
        """Check a tokenized prompt and its sampling keywords as the engine will; 400 if invalid.

        Returns the prompt as it will run (truncated if ``truncate_prompt_tokens`` asks).
        """
        try:
            params = build_sampling_params(sampling)
            _, ids = self.validator.tokenize({"prompt_token_ids": token_ids})
            prepared = self.validator.prepare_params(params, ids)
            ids = self.validator.truncate(ids, prepared)
            self.validator.max_tokens(ids, prepared)
        except (ValueError, TypeError) as exc:
            raise from_request_error(exc) from exc
        return EnginePrompt(ids, sampling, priority, cache_salt)
