"""Running the server: start the engine process, then serve the app with uvicorn until told to stop.

Exit status: 0 after SIGTERM/SIGINT (graceful: stop accepting, let requests in flight finish
within ``--shutdown-timeout``, then stop the engine); 1 if the engine failed to start or died.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from llmrt.server.chat_template import load_chat_template
from llmrt.server.context import ServerContext
from llmrt.server.engine_client import EngineClient
from llmrt.server.engine_process import launch_engine_process
from llmrt.server.limits import ServerLimits
from llmrt.server.metrics import ServerMetrics
from llmrt.server.tokenizer_service import TokenizerService, load_tokenizer

logger = logging.getLogger("llmrt.server")

ENGINE_DEATH_EXIT_STATUS = 1


@dataclass
class ServeOptions:
    """The server's own options (the engine's are an ``EngineConfig``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    served_model_names: list[str] | None = None
    chat_template: str | None = None
    limits: ServerLimits = ServerLimits()
    shutdown_timeout: float = 10.0
    engine_start_method: str | None = None
    uvicorn_log_level: str = "warning"
    access_log: bool = False


def _config_payload(config: Any) -> dict[str, Any]:
    payload = msgspec.to_builtins(config)
    options = payload.get("plugin_options", {})
    options.pop("api_key", None)  # the engine has no use for the key
    payload["plugin_options"] = {k: v for k, v in options.items() if _is_plain(v)}
    return payload  # type: ignore[no-any-return]


def _is_plain(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, (str, int, float, bool))
        or (isinstance(value, list) and all(isinstance(v, (str, int, float, bool)) for v in value))
    )


def build_context(config: Any, tokenizer_path: str, options: ServeOptions) -> ServerContext:
    """Load the tokenizer, start the engine process, build what the app needs.

    Call before any thread starts: the engine process is forked from this one by default.
    """
    template = load_chat_template(options.chat_template)
    names = options.served_model_names or [config.model.served_model_name or config.model.model]
    metrics = ServerMetrics(names[0])
    started = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer_path)
    logger.info("front end: tokenizer loaded in %.2f s", time.perf_counter() - started)
    process, sock = launch_engine_process(options.engine_start_method)
    engine = EngineClient(
        process,
        sock,
        _config_payload(config),
        options.limits.max_pending_sequences,
        on_stats=metrics.update_engine_stats,
        on_abort=metrics.count_aborted,
    )
    return ServerContext(
        engine,
        TokenizerService(tokenizer, template),
        names,
        options.limits,
        options.api_key,
        metrics,
    )


def serve(config: Any, tokenizer_path: str, options: ServeOptions) -> int:
    """Serve until a signal or the engine's death; returns the exit status."""
    import uvicorn

    from llmrt.server.app import create_app

    ctx = build_context(config, tokenizer_path, options)
    try:
        app = create_app(ctx)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=options.host,
                port=options.port,
                log_level=options.uvicorn_log_level,
                access_log=options.access_log,
                timeout_graceful_shutdown=options.shutdown_timeout,
                lifespan="on",
            )
        )
        status = _ExitStatus()
        ctx.engine.on_death.append(lambda reason: status.fail(server))
        _keep_running_after_uvicorn_signals()
        logger.info(
            "serving %s on http://%s:%d (engine process %d)",
            ctx.model_name,
            options.host,
            options.port,
            ctx.engine.process.pid,
        )
        asyncio.run(server.serve())
        if not server.started:
            return 1
        return status.code
    finally:
        if ctx.engine.process.poll() is None:
            ctx.engine.process.kill()


@dataclass
class _ExitStatus:
    code: int = 0

    def fail(self, server: Any) -> None:
        self.code = ENGINE_DEATH_EXIT_STATUS
        server.should_exit = True


def _keep_running_after_uvicorn_signals() -> None:
    """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown: ignore them, then exit 0."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    """The server options of ``llmrt serve``'s parsed arguments."""
    return ServeOptions(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        served_model_names=args.served_model_name,
        chat_template=args.chat_template,
        limits=ServerLimits(
            max_body_bytes=args.max_request_body_bytes,
            max_queued_requests=args.max_queued_requests,
            max_num_seqs=args.max_num_seqs,
        ),
        shutdown_timeout=args.shutdown_timeout,
        engine_start_method=args.engine_start_method,
        uvicorn_log_level=args.uvicorn_log_level,
        access_log=args.uvicorn_access_log,
    )
