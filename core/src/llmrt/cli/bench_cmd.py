"""``llmrt bench serve``: load-test a running server like ``vllm bench serve``."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

OFFLINE_BENCHMARKS = ("llmrt.bench.throughput", "llmrt.bench.latency")
"""Modules with ``add_parser(subparsers) -> (name, runner)``: in-process engine benchmarks."""
_OFFLINE_RUNNERS: dict[str, Any] = {}


def add_parser(subparsers: Any) -> tuple[str, Any]:
    """Register ``bench`` and its sub-commands; returns the name and runner."""
    from llmrt.bench.serve_args import add_serve_arguments

    parser = subparsers.add_parser("bench", help="benchmarks (serve: load-test a running server)")
    kinds = parser.add_subparsers(dest="bench_command", metavar="KIND")
    add_serve_arguments(
        kinds.add_parser("serve", help="send a request load to a server and report latencies")
    )
    for module_name in OFFLINE_BENCHMARKS:
        name, runner = importlib.import_module(module_name).add_parser(kinds)
        _OFFLINE_RUNNERS[name] = runner
    return "bench", run


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen benchmark."""
    if args.bench_command == "serve":
        from llmrt.bench.serve import main

        return main(args)
    if args.bench_command in _OFFLINE_RUNNERS:
        return _OFFLINE_RUNNERS[args.bench_command](args)
    print("llmrt bench: choose a benchmark: serve, throughput or latency")
    return 2
