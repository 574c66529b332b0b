"""The engine core in a process of its own: receive requests, step, send deltas.

The loop steps the engine while there is work and blocks on the socket when there is none.
A reader thread decodes incoming frames and a writer thread encodes and sends outgoing ones,
so socket I/O overlaps the model's forward pass. The process exits when the front end says
``Shutdown`` or closes the socket; if the engine raises, it sends ``EngineFailed`` and exits 1.

Start it with :func:`launch_engine_process`: ``"fork"`` (default on Linux) starts at once
with the front end's imports; ``"spawn"`` runs ``python -m llmrt.server.engine_process FD``.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import traceback
from typing import Any

import msgspec

from llmrt.config import EngineConfig
from llmrt.server import messages as m
from llmrt.server.framing import ChannelClosed, recv_frame, send_frame
from llmrt.server.output_deltas import DeltaTracker
from llmrt.server.sampling import build_sampling_params

logger = logging.getLogger("llmrt.engine_process")

_CLOSED = object()
"""Put on the inbox when the front end closed the socket."""


class SocketIO:
    """Reader and writer threads between a blocking socket and two queues."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.outbox: queue.Queue[msgspec.Struct | None] = queue.Queue()
        self._decoder = m.to_engine_decoder()
        self._reader = threading.Thread(target=self._read, name="engine-reader", daemon=True)
        self._writer = threading.Thread(target=self._write, name="engine-writer", daemon=True)

    def start(self) -> None:
        """Start both threads."""
        self._reader.start()
        self._writer.start()

    def _read(self) -> None:
        try:
            while True:
                self.inbox.put(self._decoder.decode(recv_frame(self.sock)))
        except (ChannelClosed, OSError, msgspec.DecodeError) as exc:
            if not isinstance(exc, ChannelClosed):
                logger.error("engine channel failed: %s", exc)
            self.inbox.put(_CLOSED)

    def _write(self) -> None:
        while (message := self.outbox.get()) is not None:
            try:
                send_frame(self.sock, m.encode(message))
            except OSError:
                return

    def send(self, message: msgspec.Struct) -> None:
        """Queue a message for the writer thread."""
        self.outbox.put(message)

    def close(self, timeout: float = 5.0) -> None:
        """Flush queued messages (bounded by ``timeout``) and stop the writer."""
        self.outbox.put(None)
        self._writer.join(timeout)


class EngineCoreLoop:
    """Drives one :class:`~llmrt.engine.llm_engine.LLMEngine` from socket messages."""

    def __init__(self, engine: Any, io: SocketIO) -> None:
        self.engine = engine
        self.io = io
        self.tracker = DeltaTracker(engine.tokenizer)

    def run(self) -> None:
        """Serve until ``Shutdown`` or the socket closes; exceptions of the engine propagate."""
        while True:
            busy = self.engine.has_unfinished_requests()
            changed = False
            for message in self._receive(block=not busy):
                if message is _CLOSED or isinstance(message, m.Shutdown):
                    self._abort_all()
                    return
                changed = self._handle(message) or changed
            if self.engine.has_unfinished_requests():
                self._step()
            elif changed:
                self.io.send(m.Outputs([], self.stats()))

    def _receive(self, block: bool) -> list[Any]:
        items = [self.io.inbox.get()] if block else []
        while True:
            try:
                items.append(self.io.inbox.get_nowait())
            except queue.Empty:
                return items

    def _handle(self, message: Any) -> bool:
        if isinstance(message, m.AddRequest):
            self._add(message)
            return True
        if isinstance(message, m.AbortRequests):
            self.engine.abort_request(message.request_ids)
            for request_id in message.request_ids:
                self.tracker.forget(request_id)
            return True
        logger.warning("ignoring unexpected message %s", type(message).__name__)
        return False

    def _add(self, message: m.AddRequest) -> None:
        try:
            params = build_sampling_params(message.sampling)
            self.engine.add_request(
                message.request_id,
                {"prompt_token_ids": message.prompt_token_ids},
                params,
                priority=message.priority,
                cache_salt=message.cache_salt,
            )
        except (ValueError, TypeError) as exc:
            self.io.send(
                m.RequestFailed(
                    message.request_id,
                    str(exc),
                    param=getattr(exc, "param", None),
                    code=getattr(exc, "code", None),
                )
            )
            return
        self.tracker.track(message.request_id, params)

    def _step(self) -> None:
        outputs = self.engine.step()
        deltas = [delta for output in outputs for delta in self.tracker.deltas(output)]
        self.io.send(m.Outputs(deltas, self.stats()))

    def _abort_all(self) -> None:
        live = self.tracker.live_ids()
        if live:
            self.engine.abort_request(live)

    def stats(self) -> m.EngineStats:
        """The engine's current load, KV cache use and prefix-cache counters."""
        engine = self.engine
        kv = engine.kv_cache_manager
        return m.EngineStats(
            num_running=engine.scheduler.num_running,
            num_waiting=engine.scheduler.num_waiting,
            kv_cache_usage=kv.usage,
            num_free_blocks=kv.num_free_blocks,
            num_blocks=kv.num_blocks,
            prefix_cache_queries=kv.stats.queries,
            prefix_cache_hits=kv.stats.hits,
        )


def ready_message(engine: Any) -> m.EngineReady:
    """What the front end learns about a started engine."""
    return m.EngineReady(
        model_dir=str(engine.model_dir),
        max_model_len=engine.max_model_len,
        vocab_size=int(engine.runner.hf_config.vocab_size),
        num_blocks=engine.num_blocks,
        backend=engine.backend.name,
        eos_token_id=engine.tokenizer_eos(),
        generation_defaults=dict(engine.generation_defaults),
        timings=dict(engine.timings),
        max_num_seqs=engine.config.scheduler.max_num_seqs,
    )


def run_engine_core(sock: socket.socket) -> int:
    """The engine process's main function; returns its exit status."""
    _ignore_terminal_signals()
    io = SocketIO(sock)
    io.start()
    first = io.inbox.get()
    if not isinstance(first, m.EngineStart):
        return 1
    engine = None
    try:
        from llmrt.engine.llm_engine import LLMEngine, freeze_startup_heap

        engine = LLMEngine(msgspec.convert(first.config, EngineConfig))
        freeze_startup_heap()
        io.send(ready_message(engine))
        EngineCoreLoop(engine, io).run()
        engine.shutdown("finished")
        return 0
    except Exception as exc:  # noqa: BLE001 - report any engine failure to the front end, then exit
        logger.error("engine failed:\n%s", traceback.format_exc())
        io.send(m.EngineFailed(f"{type(exc).__name__}: {exc}"))
        if engine is not None:
            engine.shutdown(f"error: {exc}")
        return 1
    finally:
        io.close()


def _ignore_terminal_signals() -> None:
    """Ctrl-C and SIGTERM go to the front end, which shuts the engine down in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


# -- launching ----------------------------------------------------------------------------------


class ForkedProcess:
    """A forked child, with the part of ``subprocess.Popen``'s interface the client uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit status if the child has exited, else ``None``."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child (polling, bounded by ``timeout``); raises ``TimeoutError``."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"engine process {self.pid} still running")
            time.sleep(0.02)
        return self.returncode  # type: ignore[return-value]

    def kill(self) -> None:
        """SIGKILL the child."""
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


def default_start_method() -> str:
    """``"fork"`` where it is safe and fast (Linux), else ``"spawn"``."""
    return "fork" if sys.platform.startswith("linux") else "spawn"


def launch_engine_process(method: str | None = None) -> tuple[Any, socket.socket]:
    """Start the engine process; returns its handle and the front end's end of the socket.

    Call before any thread is started in this process when ``method`` is ``"fork"``.
    """
    method = method or default_start_method()
    if method == "fork":
        import llmrt.engine.llm_engine  # noqa: F401 - imported once here, inherited by the child
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if method == "fork":
        process: Any = _fork(parent_sock, child_sock)
    elif method == "spawn":
        fd = child_sock.fileno()
        process = subprocess.Popen(
            [sys.executable, "-m", "llmrt.server.engine_process", str(fd)], pass_fds=[fd]
        )
    else:
        raise ValueError(f"unknown engine start method {method!r} (fork or spawn)")
    child_sock.close()
    return process, parent_sock


def _fork(parent_sock: socket.socket, child_sock: socket.socket) -> ForkedProcess:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return ForkedProcess(pid)
    code = 1
    try:
        parent_sock.close()
        code = run_engine_core(child_sock)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """``python -m llmrt.server.engine_process FD``: the engine side of a spawned process."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return run_engine_core(socket.socket(fileno=int(args[0])))


if __name__ == "__main__":
    sys.exit(main())
