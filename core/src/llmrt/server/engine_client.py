"""The front end's asyncio client of the engine process.

:meth:`EngineClient.submit` sends one ``AddRequest`` per prompt and returns a
:class:`RequestGroup`: an async iterator over ``(prompt_index, RequestDelta)`` that ends when
every sequence has finished. Closing a group early (the client went away) aborts what is
left, which frees its KV blocks in the engine at once. If the engine process dies, every open
group raises a 503 error and the ``on_death`` callbacks run.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from llmrt.server import messages as m
from llmrt.server.errors import OpenAIError, bad_request, service_unavailable
from llmrt.server.framing import ChannelClosed, frame, read_frame

logger = logging.getLogger("llmrt.server")

SHUTDOWN_KILL_GRACE_S = 5.0
"""How long the engine process may take to exit after ``Shutdown`` before it is killed."""


@dataclass
class EnginePrompt:
    """One tokenized prompt to run."""

    token_ids: list[int]
    sampling: dict[str, Any]
    priority: int = 0
    cache_salt: str | None = None


def _add_frame(request_id: str, prompt: EnginePrompt) -> bytes:
    """The encoded ``AddRequest``; 400 if a value cannot travel (e.g. an int beyond 64 bits)."""
    message = m.AddRequest(
        request_id, prompt.token_ids, prompt.sampling, prompt.priority, prompt.cache_salt
    )
    try:
        return frame(m.encode(message))
    except (OverflowError, TypeError, ValueError) as exc:
        raise bad_request(f"the request holds a value that cannot be represented: {exc}") from exc


def _log_ready(info: m.EngineReady) -> None:
    phases = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in info.timings.items())
    logger.info(
        "engine ready: backend %r, %d KV blocks, max_model_len %d (%s)",
        info.backend,
        info.num_blocks,
        info.max_model_len,
        phases,
    )


class EngineDeadError(OpenAIError):
    """The engine process is gone; requests in flight cannot complete."""

    def __init__(self, reason: str) -> None:
        super().__init__(503, f"the engine process died: {reason}", code="engine_dead")


class RequestGroup:
    """The engine requests of one HTTP request (one per prompt, ``n`` sequences each)."""

    def __init__(self, client: EngineClient, request_ids: list[str], n: int) -> None:
        self.client = client
        self.request_ids = request_ids
        self.n = n
        self.prompt_index = {request_id: i for i, request_id in enumerate(request_ids)}
        self.queue: asyncio.Queue[m.RequestDelta | OpenAIError] = asyncio.Queue()
        self.remaining = len(request_ids) * n
        self._unfinished = {request_id: n for request_id in request_ids}
        self.arrival = time.monotonic()

    async def __aiter__(self) -> AsyncIterator[tuple[int, m.RequestDelta]]:
        while self.remaining > 0:
            item = await self.queue.get()
            if isinstance(item, OpenAIError):
                self.close()
                raise item
            if item.finish_reason is not None:
                self._sequence_finished(item.request_id)
            yield self.prompt_index[item.request_id], item

    def _sequence_finished(self, request_id: str) -> None:
        self.remaining -= 1
        self._unfinished[request_id] -= 1
        if self._unfinished[request_id] == 0:
            del self._unfinished[request_id]
            self.client._release(request_id)

    @property
    def finished(self) -> bool:
        """True once every sequence has finished."""
        return self.remaining == 0

    def close(self) -> None:
        """Abort whatever has not finished (idempotent); called when the client goes away."""
        if self._unfinished:
            ids = list(self._unfinished)
            self._unfinished.clear()
            self.remaining = 0
            self.client.abort(ids)


class EngineClient:
    """Talks to one engine process over a socket; tracks the requests in flight."""

    def __init__(
        self,
        process: Any,
        sock: socket.socket,
        config: dict[str, Any],
        max_pending_sequences: int,
        on_stats: Callable[[m.EngineStats], None] | None = None,
        on_abort: Callable[[int], None] | None = None,
    ) -> None:
        self.process = process
        self._sock = sock
        self._config = config
        self.max_pending_sequences = max_pending_sequences
        self.on_stats = on_stats
        self.on_abort = on_abort
        self.on_death: list[Callable[[str], None]] = []
        self.info: m.EngineReady | None = None
        self.stats: m.EngineStats | None = None
        self.dead: str | None = None
        self.ready = asyncio.Event()
        self._groups: dict[str, RequestGroup] = {}
        self._pending_sequences = 0
        self._closing = False
        self._counter = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, send the engine its configuration and start reading its messages."""
        reader, self._writer = await asyncio.open_unix_connection(sock=self._sock)
        self._send(m.EngineStart(self._config))
        self._reader_task = asyncio.create_task(self._read_loop(reader), name="engine-reader")

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        decoder = m.from_engine_decoder()
        try:
            while True:
                self._dispatch(decoder.decode(await read_frame(reader)))
        except ChannelClosed:
            self._die("the engine process closed its connection" + self._exit_note())
        except (OSError, msgspec.DecodeError) as exc:
            self._die(f"engine channel failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - any failure here means the engine is unusable
            logger.exception("engine reader failed")
            self._die(f"engine reader failed: {exc}")

    def _exit_note(self) -> str:
        code = self.process.poll() if self.process is not None else None
        return "" if code is None else f" (exit status {code})"

    def _dispatch(self, message: Any) -> None:
        if isinstance(message, m.Outputs):
            for delta in message.deltas:
                group = self._groups.get(delta.request_id)
                if group is not None:
                    group.queue.put_nowait(delta)
            self.stats = message.stats
            if self.on_stats is not None:
                self.on_stats(message.stats)
        elif isinstance(message, m.RequestFailed):
            group = self._groups.get(message.request_id)
            if group is not None:
                group.queue.put_nowait(
                    OpenAIError(message.status, message.message, message.param, message.code)
                )
        elif isinstance(message, m.EngineReady):
            self.info = message
            self.ready.set()
            _log_ready(message)
        elif isinstance(message, m.EngineFailed):
            self._die(message.message)

    def _die(self, reason: str) -> None:
        if self.dead is not None:
            return
        self.dead = reason
        if self._closing:
            return
        if self.ready.is_set():
            logger.error("engine is dead: %s", reason)
        else:
            logger.error("engine failed to start: %s", reason)
        error = EngineDeadError(reason)
        for group in set(self._groups.values()):
            group.queue.put_nowait(error)
        for callback in list(self.on_death):
            callback(reason)

    async def shutdown(self, timeout: float = SHUTDOWN_KILL_GRACE_S) -> None:
        """Ask the engine to stop and wait for its process (killed after ``timeout``)."""
        self._closing = True
        if self.dead is None and self._writer is not None:
            self._send(m.Shutdown())
        if self.process is not None:
            try:
                await asyncio.to_thread(self.process.wait, timeout)
            except Exception:  # noqa: BLE001 - TimeoutError, or subprocess.TimeoutExpired for spawn
                logger.warning("engine process did not exit within %.0f s; killing it", timeout)
                self.process.kill()
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()

    # -- requests ---------------------------------------------------------------------------------

    def check_available(self) -> None:
        """Raise 503 unless the engine is ready and alive."""
        if self.dead is not None:
            raise EngineDeadError(self.dead)
        if self._closing:
            raise service_unavailable("the server is shutting down")
        if not self.ready.is_set():
            raise service_unavailable("the engine is still starting; retry shortly")

    def submit(self, prompts: list[EnginePrompt], n: int) -> RequestGroup:
        """Send ``prompts`` to the engine; 503 if it is unavailable, 429 if the queue is full."""
        self.check_available()
        needed = len(prompts) * n
        if self._pending_sequences + needed > self.max_pending_sequences:
            raise OpenAIError(
                429,
                f"the server is at capacity ({self._pending_sequences} sequences in flight, "
                f"limit {self.max_pending_sequences}); retry later",
                code="queue_full",
            )
        ids = [self._next_id() for _ in prompts]
        frames = [_add_frame(i, p) for i, p in zip(ids, prompts, strict=True)]
        group = RequestGroup(self, ids, n)
        for request_id, add_frame in zip(ids, frames, strict=True):
            self._groups[request_id] = group
            self._write(add_frame)
        self._pending_sequences += needed
        return group

    def abort(self, request_ids: list[str]) -> None:
        """Abort engine requests (their KV blocks are freed) and forget them here."""
        sequences = 0
        for request_id in request_ids:
            group = self._groups.get(request_id)
            sequences += group.n if group is not None else 0
            self._release(request_id)
        if self.on_abort is not None and sequences:
            self.on_abort(sequences)
        if self.dead is None and self._writer is not None and not self._writer.is_closing():
            self._send(m.AbortRequests(request_ids))

    def _release(self, request_id: str) -> None:
        group = self._groups.pop(request_id, None)
        if group is not None:
            self._pending_sequences -= group.n

    def _next_id(self) -> str:
        self._counter += 1
        return f"r{self._counter}"

    def _send(self, message: msgspec.Struct) -> None:
        self._write(frame(m.encode(message)))

    def _write(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    @property
    def num_in_flight(self) -> int:
        """Sequences sent to the engine that have not finished."""
        return self._pending_sequences
