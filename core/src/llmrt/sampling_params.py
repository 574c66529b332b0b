"""SamplingParams: every decoding control of a request, validated on construction.

Field names and meanings follow vLLM's ``SamplingParams`` so that code written for vLLM runs
unchanged. Invalid values raise :class:`ValueError` naming the field before any work is queued.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import Any

# Upper bounds checked before anything is allocated (DESIGN.md section 6).
MAX_N = 128
MAX_LOGPROBS = 20
MAX_STOP_STRINGS = 64
MAX_STOP_STRING_CHARS = 1024
MAX_LOGIT_BIAS_ENTRIES = 1024
MAX_BAD_WORDS = 256


class SamplingType(IntEnum):
    """How the next token is drawn."""

    GREEDY = 0
    RANDOM = 1
    RANDOM_SEED = 2


class LogprobsMode:
    """Which distribution reported logprobs come from."""

    RAW = "raw_logprobs"
    """Log-softmax of the model's logits, before any processing."""
    PROCESSED = "processed_logprobs"
    """Log-softmax after penalties, bias, temperature and top-k/top-p/min-p filtering."""


@dataclass
class SamplingParams:
    """Decoding controls for one request (see vLLM's documentation of the same fields)."""

    n: int = 1
    best_of: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    bad_words: list[str] | None = None
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    logprobs_mode: str = LogprobsMode.RAW
    detokenize: bool = True
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    truncate_prompt_tokens: int | None = None
    logit_bias: dict[int, float] | None = None
    allowed_token_ids: list[int] | None = None
    logits_processors: list[str] | None = None
    use_beam_search: bool = False
    beam_width: int | None = None
    length_penalty: float = 1.0
    # Filled by the engine, not by users.
    eos_token_id: int | None = field(default=None, repr=False)
    all_stop_token_ids: set[int] = field(default_factory=set, repr=False)
    bad_words_token_ids: list[list[int]] = field(default_factory=list, repr=False)
    _explicit: frozenset[str] | None = field(default=None, repr=False, compare=False)
    """Fields the user set, when built by :meth:`from_optional`; ``None`` means all of them."""

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        self.stop_token_ids = list(self.stop_token_ids or [])
        if self.top_k == -1:
            self.top_k = 0
        if self.logit_bias is not None:
            self.logit_bias = {int(k): float(v) for k, v in self.logit_bias.items()}
        self._validate()

    @classmethod
    def from_optional(cls, **kwargs: Any) -> SamplingParams:
        """Build from keyword arguments where ``None`` means "use the default".

        Remembers which fields were given, so :meth:`apply_generation_defaults` only fills
        the others.
        """
        given = {k: v for k, v in kwargs.items() if v is not None}
        params = cls(**given)
        params._explicit = frozenset(given)
        return params

    # -- validation ------------------------------------------------------------------------

    def _validate(self) -> None:
        _check(1 <= self.n <= MAX_N, "n", f"must be between 1 and {MAX_N}, got {self.n}")
        if self.best_of is not None:
            _check(self.best_of >= self.n, "best_of", f"must be >= n ({self.n}), got {self.best_of}")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            _check(-2.0 <= value <= 2.0, name, f"must be in [-2, 2], got {value}")
        _check(self.repetition_penalty > 0, "repetition_penalty", f"must be > 0, got {self.repetition_penalty}")
        _check(
            self.temperature >= 0 and math.isfinite(self.temperature),
            "temperature",
            f"must be a finite number >= 0, got {self.temperature}",
        )
        _check(0.0 < self.top_p <= 1.0, "top_p", f"must be in (0, 1], got {self.top_p}")
        _check(self.top_k >= 0, "top_k", f"must be -1 (disable), 0 or a positive integer, got {self.top_k}")
        _check(0.0 <= self.min_p <= 1.0, "min_p", f"must be in [0, 1], got {self.min_p}")
        if self.max_tokens is not None:
            _check(self.max_tokens >= 1, "max_tokens", f"must be at least 1, got {self.max_tokens}")
        _check(self.min_tokens >= 0, "min_tokens", f"must be >= 0, got {self.min_tokens}")
        if self.max_tokens is not None:
            _check(
                self.min_tokens <= self.max_tokens,
                "min_tokens",
                f"must be <= max_tokens ({self.max_tokens}), got {self.min_tokens}",
            )
        self._validate_counts()
        self._validate_beam_search()

    def _validate_counts(self) -> None:
        for name in ("logprobs", "prompt_logprobs"):
            value = getattr(self, name)
            if value is not None:
                _check(0 <= value <= MAX_LOGPROBS, name, f"must be between 0 and {MAX_LOGPROBS}, got {value}")
        _check(len(self.stop) <= MAX_STOP_STRINGS, "stop", f"at most {MAX_STOP_STRINGS} stop strings")
        for text in self.stop:
            _check(isinstance(text, str) and 0 < len(text) <= MAX_STOP_STRING_CHARS, "stop",
                   f"stop strings must be non-empty and at most {MAX_STOP_STRING_CHARS} characters")
        if self.logit_bias is not None:
            _check(len(self.logit_bias) <= MAX_LOGIT_BIAS_ENTRIES, "logit_bias",
                   f"at most {MAX_LOGIT_BIAS_ENTRIES} entries")
            for value in self.logit_bias.values():
                _check(-100.0 <= value <= 100.0, "logit_bias", f"values must be in [-100, 100], got {value}")
        if self.bad_words is not None:
            _check(len(self.bad_words) <= MAX_BAD_WORDS, "bad_words", f"at most {MAX_BAD_WORDS} entries")
        if self.allowed_token_ids is not None:
            _check(len(self.allowed_token_ids) > 0, "allowed_token_ids", "must not be empty")
        if self.truncate_prompt_tokens is not None:
            _check(self.truncate_prompt_tokens >= 1, "truncate_prompt_tokens", "must be at least 1")
        _check(self.logprobs_mode in (LogprobsMode.RAW, LogprobsMode.PROCESSED), "logprobs_mode",
               f"must be {LogprobsMode.RAW!r} or {LogprobsMode.PROCESSED!r}")

    def _validate_beam_search(self) -> None:
        if not self.use_beam_search:
            return
        width = self.beam_width or self.n
        _check(width >= 1, "beam_width", "must be at least 1")
        _check(self.temperature == 0.0 or self.temperature == 1.0, "temperature",
               "beam search is deterministic; leave temperature unset or 0")

    @property
    def num_sequences(self) -> int:
        """Sequences the request runs at once: ``n``, or a beam search's width (at least ``n``)."""
        return max(self.beam_width or self.n, self.n) if self.use_beam_search else self.n

    def validate_token_ids(self, vocab_size: int) -> None:
        """Check every token id field against the model's vocabulary size."""
        for name in ("stop_token_ids", "allowed_token_ids"):
            for token in getattr(self, name) or []:
                _check(0 <= token < vocab_size, name, f"token id {token} is outside the vocabulary (size {vocab_size})")
        for token in self.logit_bias or {}:
            _check(0 <= token < vocab_size, "logit_bias", f"token id {token} is outside the vocabulary (size {vocab_size})")

    # -- derived -------------------------------------------------------------------------

    @property
    def sampling_type(self) -> SamplingType:
        """Greedy when temperature is (nearly) zero; seeded random when a seed is set."""
        if self.temperature < 1e-5:
            return SamplingType.GREEDY
        return SamplingType.RANDOM if self.seed is None else SamplingType.RANDOM_SEED

    def apply_generation_defaults(self, defaults: dict[str, Any]) -> None:
        """Fill fields the user did not set from the model's generation_config.json.

        Only parameters built with :meth:`from_optional` (or left to the engine) take defaults;
        an explicit ``SamplingParams(...)`` is used as given, as in vLLM.
        """
        if self._explicit is None:
            return
        names = {f.name for f in fields(self)}
        for key, value in defaults.items():
            if key in names and key not in self._explicit and value is not None:
                setattr(self, key, value)
        self._validate()

    def clone(self) -> SamplingParams:
        """A copy that can be modified independently."""
        copy = SamplingParams(**{f.name: getattr(self, f.name) for f in fields(self) if f.init})
        copy.all_stop_token_ids = set(self.all_stop_token_ids)
        copy.bad_words_token_ids = [list(word) for word in self.bad_words_token_ids]
        copy._explicit = self._explicit
        return copy


def _check(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise SamplingParamsError(field_name, message)


class SamplingParamsError(ValueError):
    """A sampling parameter is out of range; ``param`` names the field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
