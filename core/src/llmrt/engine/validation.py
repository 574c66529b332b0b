"""Request validation: every check runs before anything is queued or allocated."""

from __future__ import annotations

from typing import Any

from llmrt.sampling_params import SamplingParams


class InvalidRequestError(ValueError):
    """A request is malformed; ``param`` names the offending field when there is one."""

    code: str | None = None

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ContextLengthExceededError(InvalidRequestError):
    """Prompt plus completion would not fit the model's context (OpenAI's wording)."""

    code = "context_length_exceeded"


class RequestValidator:
    """Tokenizes prompts and checks them and their sampling parameters against the model."""

    def __init__(self, tokenizer: Any, hf_config: Any, max_model_len: int,
                 generation_defaults: dict[str, Any], tokenizer_eos: int | None,
                 logits_processors: set[str] = frozenset(), max_num_seqs: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.max_num_seqs = max_num_seqs
        self.logits_processors = logits_processors
        self.vocab_size = int(hf_config.vocab_size)
        self.max_model_len = max_model_len
        self.defaults = dict(generation_defaults)
        eos = self.defaults.pop("eos_token_id", None)
        eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos_token_id = tokenizer_eos if tokenizer_eos is not None else (eos_ids[0] if eos_ids else None)
        self.extra_stop_ids = {t for t in eos_ids if t != self.eos_token_id}

    def tokenize(self, prompt: str | list[int] | dict[str, Any]) -> tuple[str | None, list[int]]:
        """The prompt text (if given as text) and its token ids, checked against the vocabulary."""
        text: str | None = None
        if isinstance(prompt, dict):
            if "prompt_token_ids" in prompt:
                ids = list(prompt["prompt_token_ids"])
            elif "prompt" in prompt:
                text = prompt["prompt"]
                ids = self._encode(text)
            else:
                raise InvalidRequestError("a prompt dict needs 'prompt' or 'prompt_token_ids'", "prompt")
        elif isinstance(prompt, str):
            text, ids = prompt, self._encode(prompt)
        else:
            ids = list(prompt)
        self._check_ids(ids)
        return text, ids

    def _encode(self, text: str) -> list[int]:
        if self.tokenizer is None:
            raise InvalidRequestError("this engine has no tokenizer; pass prompt_token_ids", "prompt")
        return list(self.tokenizer.encode(text))

    def _check_ids(self, ids: list[int]) -> None:
        if not ids:
            raise InvalidRequestError("the prompt is empty", "prompt")
        if not all(isinstance(t, int) for t in ids):
            raise InvalidRequestError("prompt token ids must be integers", "prompt")
        bad = [t for t in ids if not 0 <= t < self.vocab_size]
        if bad:
            raise InvalidRequestError(
                f"prompt token id {bad[0]} is outside the vocabulary (size {self.vocab_size})", "prompt")

    def prepare_params(self, params: SamplingParams, prompt_ids: list[int]) -> SamplingParams:
        """A per-request copy with generation_config defaults and stop ids filled in."""
        params = params.clone()
        params.apply_generation_defaults(self.defaults)
        try:
            params.validate_token_ids(self.vocab_size)
        except ValueError as exc:
            raise InvalidRequestError(str(exc), getattr(exc, "param", None)) from exc
        params.eos_token_id = self.eos_token_id
        params.all_stop_token_ids = set(params.stop_token_ids) | self.extra_stop_ids
        self._check_sequences(params)
        unknown = set(params.logits_processors or ()) - self.logits_processors
        if unknown:
            known = ", ".join(sorted(self.logits_processors)) or "none"
            raise InvalidRequestError(f"unknown logits processor(s) {sorted(unknown)}; installed: {known}",
                                      "logits_processors")
        if params.bad_words:
            params.bad_words_token_ids = self._bad_word_ids(params.bad_words)
        return params

    def _check_sequences(self, params: SamplingParams) -> None:
        """A request runs ``n`` sequences at once (beam search: up to its width): never more than
        the engine's ``max_num_seqs``."""
        count = params.num_sequences
        if self.max_num_seqs is not None and count > self.max_num_seqs:
            name = "beam_width" if params.use_beam_search else "n"
            raise InvalidRequestError(
                f"{name}={count} needs {count} sequences at once, but this engine runs at most "
                f"max_num_seqs={self.max_num_seqs}", name)

    def _bad_word_ids(self, words: list[str]) -> list[list[int]]:
        """Token sequences to forbid: each word alone and after a space (as it appears mid-text)."""
        if self.tokenizer is None:
            raise InvalidRequestError("bad_words needs a tokenizer", "bad_words")
        sequences: list[list[int]] = []
        for word in words:
            for variant in (word, " " + word.lstrip()):
                ids = list(self.tokenizer.encode(variant, add_special_tokens=False))
                if ids and ids not in sequences:
                    sequences.append(ids)
        return sequences

    @staticmethod
    def truncate(ids: list[int], params: SamplingParams) -> list[int]:
        """Keep the last ``truncate_prompt_tokens`` tokens when asked."""
        keep = params.truncate_prompt_tokens
        return ids[-keep:] if keep is not None and keep < len(ids) else ids

    def max_tokens(self, ids: list[int], params: SamplingParams) -> int:
        """The number of tokens this request may generate; raises if the context is exceeded."""
        room = self.max_model_len - len(ids)
        requested = params.max_tokens
        if room <= 0 or (requested is not None and requested > room):
            completion = requested if requested is not None else 0
            raise ContextLengthExceededError(
                f"This model's maximum context length is {self.max_model_len} tokens. However, you "
                f"requested {len(ids) + completion} tokens ({len(ids)} in the messages, {completion} "
                "in the completion). Please reduce the length of the messages or completion.",
                "messages" if requested is None or room <= 0 else "max_tokens",
            )
        return room if requested is None else requested
