"""Rendering conversations with a chat template, in a sandboxed Jinja environment.

The template is the tokenizer's own or the text given with ``--chat-template``. Rendering goes
through transformers' ``apply_chat_template``, which compiles templates in Jinja's
``ImmutableSandboxedEnvironment``: a template can neither reach Python internals nor mutate
its arguments. The rendered text is tokenized without adding special tokens (templates
write their own BOS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmrt.server.errors import bad_request

RESERVED_TEMPLATE_KWARGS = frozenset(
    {
        "conversation",
        "messages",
        "tools",
        "documents",
        "chat_template",
        "add_generation_prompt",
        "continue_final_message",
        "tokenize",
        "padding",
        "truncation",
        "max_length",
        "return_tensors",
        "return_dict",
        "return_assistant_tokens_mask",
        "tokenizer_kwargs",
    }
)
"""``chat_template_kwargs`` keys that would change how rendering works, not the template's input."""


def load_chat_template(value: str | None) -> str | None:
    """The text of ``--chat-template``: a file's contents, or the value if it is a template."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if path.is_file():
        return path.read_text(encoding="utf-8")
    if "{{" in value or "{%" in value:
        return value
    raise FileNotFoundError(f"--chat-template: {value!r} is neither a file nor a Jinja template")


class ChatRenderer:
    """Applies the chat template of one tokenizer (or an override) to conversations."""

    def __init__(self, tokenizer: Any, chat_template: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.chat_template = chat_template

    @property
    def has_template(self) -> bool:
        """True if a template is configured or the tokenizer has one."""
        return bool(self.chat_template or getattr(self.tokenizer, "chat_template", None))

    def render(
        self,
        messages: list[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        tools: list[dict[str, Any]] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        add_special_tokens: bool = False,
    ) -> tuple[str, list[int]]:
        """The prompt text and token ids; raises a 400 error for any template problem."""
        if not self.has_template:
            raise bad_request(
                "this model has no chat template; start the server with --chat-template FILE",
                "messages",
            )
        extra = dict(chat_template_kwargs or {})
        clash = RESERVED_TEMPLATE_KWARGS.intersection(extra)
        if clash:
            raise bad_request(
                f"chat_template_kwargs may not set {sorted(clash)}", "chat_template_kwargs"
            )
        try:
            text = self.tokenizer.apply_chat_template(
                messages,
                tools=tools,
                chat_template=self.chat_template,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=continue_final_message,
                **extra,
            )
        except Exception as exc:  # noqa: BLE001 - any template failure is the request's problem
            raise bad_request(
                f"chat template error: {type(exc).__name__}: {exc}", "messages"
            ) from exc
        if not isinstance(text, str):
            raise bad_request("the chat template did not render to text", "messages")
        ids = list(self.tokenizer.encode(text, add_special_tokens=add_special_tokens))
        return text, ids
