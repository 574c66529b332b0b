"""Queues of waiting requests: ``"fcfs"`` (arrival order) and ``"priority"`` (a heap).

Both accept a preempted request back with :meth:`RequestQueue.push_front`: FCFS puts it at the
very front so it does not starve; the priority heap files it under its original key (priority,
arrival time, sequence number), which is ahead of every later arrival of equal priority.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from llmrt.engine.request import Request

SortKey = Callable[[Request], tuple[Any, ...]]


class RequestQueue(ABC):
    """Waiting requests in the order they should be admitted."""

    @abstractmethod
    def add(self, request: Request) -> None:
        """Queue a newly arrived request."""

    @abstractmethod
    def push_front(self, request: Request) -> None:
        """Queue a preempted request ahead of later arrivals."""

    @abstractmethod
    def peek(self) -> Request:
        """The next request to admit (``IndexError`` when empty)."""

    @abstractmethod
    def pop(self) -> Request:
        """Remove and return the next request to admit."""

    @abstractmethod
    def remove_requests(self, requests: Iterable[Request]) -> None:
        """Remove the given requests (those not queued are ignored)."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __iter__(self) -> Iterator[Request]:
        """Requests in admission order."""

    def __bool__(self) -> bool:
        return len(self) > 0


class FCFSRequestQueue(RequestQueue):
    """First come, first served: a deque."""

    def __init__(self) -> None:
        self._queue: deque[Request] = deque()

    def add(self, request: Request) -> None:
        """Append at the back."""
        self._queue.append(request)

    def push_front(self, request: Request) -> None:
        """Insert at the front."""
        self._queue.appendleft(request)

    def peek(self) -> Request:
        """The front request."""
        return self._queue[0]

    def pop(self) -> Request:
        """Remove the front request."""
        return self._queue.popleft()

    def remove_requests(self, requests: Iterable[Request]) -> None:
        """Filter the given requests out (one pass)."""
        gone = {id(r) for r in requests}
        self._queue = deque(r for r in self._queue if id(r) not in gone)

    def __len__(self) -> int:
        return len(self._queue)

    def __iter__(self) -> Iterator[Request]:
        return iter(self._queue)


class PriorityRequestQueue(RequestQueue):
    """Lowest sort key first; the key is ``(priority, arrival_time, sequence)`` by default."""

    def __init__(self, key: SortKey) -> None:
        self._key = key
        self._heap: list[tuple[tuple[Any, ...], Request]] = []

    def add(self, request: Request) -> None:
        """Push under the request's key."""
        heapq.heappush(self._heap, (self._key(request), request))

    def push_front(self, request: Request) -> None:
        """Push under the request's original key (its place among equals is kept)."""
        self.add(request)

    def peek(self) -> Request:
        """The request with the smallest key."""
        return self._heap[0][1]

    def pop(self) -> Request:
        """Remove the request with the smallest key."""
        return heapq.heappop(self._heap)[1]

    def remove_requests(self, requests: Iterable[Request]) -> None:
        """Filter the given requests out and restore the heap (one pass)."""
        gone = {id(r) for r in requests}
        self._heap = [entry for entry in self._heap if id(entry[1]) not in gone]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Iterator[Request]:
        return (entry[1] for entry in sorted(self._heap, key=lambda e: e[0]))


def create_request_queue(policy: str, key: SortKey) -> RequestQueue:
    """The waiting queue for a scheduling policy (``"fcfs"`` or ``"priority"``).

    :param policy: the policy name from ``SchedulerConfig.policy``.
    :param key: the policy's sort key (unique per request); the priority heap orders by it.
    """
    if policy == "fcfs":
        return FCFSRequestQueue()
    if policy == "priority":
        return PriorityRequestQueue(key)
    raise ValueError(f"unknown scheduling policy {policy!r}; choose 'fcfs' or 'priority'")
