"""``/tokenize`` and ``/detokenize``: the model's tokenizer over HTTP (vLLM's extension)."""

from __future__ import annotations

from llmrt.server.context import ServerContext
from llmrt.server.errors import bad_request
from llmrt.server.limits import MAX_TOKENIZE_IDS
from llmrt.server.protocol.tokenize import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
)
from llmrt.server.serving_chat import template_messages


async def tokenize(ctx: ServerContext, request: TokenizeRequest) -> TokenizeResponse:
    """Token ids of a prompt, or of a conversation rendered with the chat template."""
    ctx.check_model(request.model)
    ctx.check_ready()
    if (request.prompt is None) == (request.messages is None):
        raise bad_request("give exactly one of prompt and messages", "prompt")
    if request.messages is not None:
        _, ids = await ctx.tokenizer.render_chat(
            template_messages(request.messages),
            add_generation_prompt=request.add_generation_prompt
            and not request.continue_final_message,
            continue_final_message=request.continue_final_message,
            tools=request.tools,
            chat_template_kwargs=request.chat_template_kwargs,
            add_special_tokens=bool(request.add_special_tokens),
        )
    else:
        add_special = True if request.add_special_tokens is None else request.add_special_tokens
        ids = await ctx.tokenizer.encode(request.prompt or "", add_special)
    strs = await ctx.tokenizer.token_strings(ids) if request.return_token_strs else None
    return TokenizeResponse(
        count=len(ids), max_model_len=ctx.max_model_len, tokens=ids, token_strs=strs
    )


async def detokenize(ctx: ServerContext, request: DetokenizeRequest) -> DetokenizeResponse:
    """The text of token ids; 400 for ids outside the vocabulary."""
    ctx.check_model(request.model)
    ctx.check_ready()
    if len(request.tokens) > MAX_TOKENIZE_IDS:
        raise bad_request(f"at most {MAX_TOKENIZE_IDS} tokens", "tokens")
    vocab = ctx.engine.info.vocab_size if ctx.engine.info is not None else 0
    bad = next((t for t in request.tokens if not 0 <= t < vocab), None)
    if bad is not None:
        raise bad_request(f"token id {bad} is outside the vocabulary (size {vocab})", "tokens")
    return DetokenizeResponse(prompt=await ctx.tokenizer.decode(request.tokens))
