"""Tokenization in the front end, off the event loop.

The tokenizer is loaded before the engine process is forked, so the engine inherits the
imported transformers modules instead of importing them a second time (this halves the
time to a healthy server). Every encode, decode and chat-template rendering runs in a
one-thread pool: the event loop never blocks on it, and the fast tokenizer (which is not
safe to call from several threads at once) is used by one thread only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

from llmrt.server.chat_template import ChatRenderer

T = TypeVar("T")


def load_tokenizer(path: str) -> Any:
    """The Hugging Face tokenizer at ``path``, loaded exactly as the engine loads it."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, trust_remote_code=False)


class TokenizerService:
    """The front end's tokenizer and chat-template renderer."""

    def __init__(self, tokenizer: Any, chat_template: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.renderer = ChatRenderer(tokenizer, chat_template)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="tokenizer"
        )

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the tokenizer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text``."""
        return await self.run(self._encode, text, add_special_tokens)

    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=add_special_tokens))

    async def decode(self, token_ids: list[int], skip_special_tokens: bool = False) -> str:
        """The text of ``token_ids``."""
        return await self.run(self._decode, token_ids, skip_special_tokens)

    def _decode(self, token_ids: list[int], skip_special_tokens: bool) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens)

    async def token_strings(self, token_ids: list[int]) -> list[str]:
        """The vocabulary entry of each token id."""
        return await self.run(
            lambda: [str(t) for t in self.tokenizer.convert_ids_to_tokens(token_ids)]
        )

    async def render_chat(
        self, messages: list[dict[str, Any]], **options: Any
    ) -> tuple[str, list[int]]:
        """The chat-templated prompt text and its token ids (see :class:`ChatRenderer`)."""
        return await self.run(lambda: self.renderer.render(messages, **options))

    def close(self) -> None:
        """Stop the thread pool (pending work is cancelled)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
