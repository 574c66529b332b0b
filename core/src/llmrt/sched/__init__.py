"""Scheduling: which tokens of which requests run each step, and when requests stop."""

from llmrt.sched.output import ScheduledRequest, SchedulerOutput
from llmrt.sched.request_queue import (
    FCFSRequestQueue,
    PriorityRequestQueue,
    RequestQueue,
    create_request_queue,
)
from llmrt.sched.scheduler import Scheduler
from llmrt.sched.stop import check_stop

__all__ = [
    "FCFSRequestQueue",
    "PriorityRequestQueue",
    "RequestQueue",
    "ScheduledRequest",
    "Scheduler",
    "SchedulerOutput",
    "check_stop",
    "create_request_queue",
]
