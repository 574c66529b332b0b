"""``llmrt generate``: complete one prompt offline and print the text."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llmrt.cli.engine_args import add_engine_arguments, engine_config_from_args


def add_parser(subparsers: Any) -> tuple[str, Any]:
    """Register the sub-command; returns its name and runner."""
    parser = subparsers.add_parser("generate", help="complete a prompt offline and print it")
    parser.add_argument("--prompt", required=True, help="the prompt text")
    parser.add_argument("--chat", action="store_true", help="send the prompt as a user chat message")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    add_engine_arguments(parser)
    return "generate", run


def run(args: argparse.Namespace) -> int:
    """Build an engine, generate, print the completion."""
    from llmrt.engine.llm_engine import LLMEngine
    from llmrt.entrypoints.llm import default_model
    from llmrt.sampling_params import SamplingParams

    engine = LLMEngine(engine_config_from_args(args, args.model or default_model()))
    params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                            top_k=args.top_k, seed=args.seed)
    prompt: Any = args.prompt
    if args.chat:
        ids = engine.tokenizer.apply_chat_template([{"role": "user", "content": args.prompt}],
                                                   add_generation_prompt=True, tokenize=True)
        prompt = {"prompt_token_ids": list(ids["input_ids"] if isinstance(ids, dict) else ids)}
    engine.add_request("generate", prompt, params)
    text = ""
    while engine.has_unfinished_requests():
        for output in engine.step():
            text = output.outputs[0].text
    sys.stdout.write(text + "\n")
    engine.shutdown()
    return 0
