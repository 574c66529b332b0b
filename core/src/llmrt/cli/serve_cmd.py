"""``llmrt serve [MODEL]``: the OpenAI-compatible server, with flags named like ``vllm serve``'s."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from llmrt.cli.engine_args import add_engine_arguments, engine_config_from_args
from llmrt.server.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_QUEUED_REQUESTS


def add_parser(subparsers: Any) -> tuple[str, Any]:
    """Register the sub-command; returns its name and runner."""
    parser = subparsers.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API")
    parser.add_argument(
        "model_tag",
        nargs="?",
        metavar="MODEL",
        help="model folder or hub id (default: --model, else the installed demo model)",
    )
    group = parser.add_argument_group("server")
    group.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: loopback only)"
    )
    group.add_argument("--port", type=int, default=8000)
    group.add_argument(
        "--api-key",
        default=os.environ.get("LLMRT_API_KEY"),
        help="require 'Authorization: Bearer KEY' on every route but /health, /ping, /metrics "
        "(default: $LLMRT_API_KEY)",
    )
    group.add_argument(
        "--served-model-name",
        nargs="+",
        metavar="NAME",
        help="model name(s) clients use; the first is reported (default: MODEL)",
    )
    group.add_argument(
        "--chat-template", help="chat template file (or template text) instead of the tokenizer's"
    )
    group.add_argument(
        "--max-queued-requests",
        type=int,
        default=DEFAULT_MAX_QUEUED_REQUESTS,
        help="sequences that may wait beyond --max-num-seqs running ones; past it, 429",
    )
    group.add_argument(
        "--max-request-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="larger request bodies get 413",
    )
    group.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="seconds requests in flight may take to finish after SIGTERM",
    )
    group.add_argument(
        "--engine-start-method",
        choices=["fork", "spawn"],
        help="how the engine process starts (default: fork on Linux, else spawn)",
    )
    group.add_argument(
        "--uvicorn-log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
    )
    group.add_argument("--uvicorn-access-log", action="store_true", help="log every HTTP request")
    add_engine_arguments(parser)
    return "serve", run


DEFAULT_MODEL_NAME = "default"
"""The name the default model (served when none is named) answers to in requests."""


def run(args: argparse.Namespace) -> int:
    """Resolve the model, start the engine process and serve until stopped."""
    from llmrt.entrypoints.llm import NoModelError, default_model
    from llmrt.model.hub import resolve_model_dir
    from llmrt.server.api_server import options_from_args, serve

    model = args.model_tag or args.model
    if model is None:
        try:
            model = default_model()
        except NoModelError as exc:
            print(f"llmrt serve: {exc}", file=sys.stderr)
            return 2
        args.served_model_name = args.served_model_name or [DEFAULT_MODEL_NAME]
    config = engine_config_from_args(args, model)
    if args.served_model_name:
        config.model.served_model_name = args.served_model_name[0]
    tokenizer_path = args.tokenizer or str(resolve_model_dir(model, args.revision))
    return serve(config, tokenizer_path, options_from_args(args))
