"""Incremental detokenization: text deltas that never split a UTF-8 character.

Each step decodes only a short window of tokens: from ``prefix_offset`` (a few tokens before
the text already emitted, for context such as SentencePiece's leading spaces) to the end. The
new text is what that window decodes to beyond what its first part decoded to; a window whose
text ends in U+FFFD is an incomplete character and waits for more tokens.
"""

from __future__ import annotations

from typing import Any

INITIAL_CONTEXT_TOKENS = 5
REPLACEMENT_CHAR = "\ufffd"


class IncrementalDetokenizer:
    """Turns one sequence's new token ids into new text, step by step."""

    def __init__(
        self,
        tokenizer: Any,
        prompt_token_ids: list[int],
        skip_special_tokens: bool = True,
        spaces_between_special_tokens: bool = True,
    ) -> None:
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.spaces_between_special_tokens = spaces_between_special_tokens
        # A fast tokenizer's Rust backend decodes the same text without transformers' per-call
        # Python layers (about 20 us a call, twice per token); it has no
        # spaces_between_special_tokens option, which fast tokenizers ignore anyway.
        self._backend = getattr(tokenizer, "backend_tokenizer", None)
        context = prompt_token_ids[-4 * INITIAL_CONTEXT_TOKENS :]
        if skip_special_tokens:  # skipped tokens give no context: look further back instead
            special = set(getattr(tokenizer, "all_special_ids", ()))
            context = [token for token in context if token not in special]
        context = context[-INITIAL_CONTEXT_TOKENS:]
        self.token_ids: list[int] = list(context)
        self.prefix_offset = 0
        self.read_offset = len(context)
        self.output_text = ""

    def _decode(self, ids: list[int]) -> str:
        if self._backend is not None:
            return self._backend.decode(ids, skip_special_tokens=self.skip_special_tokens)
        return self.tokenizer.decode(
            ids,
            skip_special_tokens=self.skip_special_tokens,
            spaces_between_special_tokens=self.spaces_between_special_tokens,
            clean_up_tokenization_spaces=False,
        )

    def update(self, new_token_ids: list[int]) -> str:
        """Add generated tokens; return the text they complete (possibly empty)."""
        self.token_ids.extend(new_token_ids)
        prefix_text = self._decode(self.token_ids[self.prefix_offset : self.read_offset])
        full_text = self._decode(self.token_ids[self.prefix_offset :])
        if len(full_text) <= len(prefix_text) or full_text.endswith(REPLACEMENT_CHAR):
            return ""
        delta = full_text[len(prefix_text) :]
        self.prefix_offset = self.read_offset
        self.read_offset = len(self.token_ids)
        self.output_text += delta
        return delta

    def flush(self) -> str:
        """At the end of generation, emit what is held back (even an incomplete character)."""
        if self.read_offset >= len(self.token_ids):
            return ""
        prefix_text = self._decode(self.token_ids[self.prefix_offset : self.read_offset])
        full_text = self._decode(self.token_ids[self.prefix_offset :])
        delta = full_text[len(prefix_text) :]
        self.prefix_offset = self.read_offset = len(self.token_ids)
        self.output_text += delta
        return delta
