"""DeviceTransfers: host<->device copies of one step's small tensors that never stall the host.

On a device that runs queued work asynchronously (``Backend.overlaps_host_and_device()``), a
plain ``tensor.to(device)`` from pageable host memory waits for every kernel already queued,
and ``tensor.tolist()`` of a device tensor waits for the device to drain: either would
serialize the host's preparation of the next step with the device's current one. Here copies
to the device go through pinned (page-locked) host memory with ``non_blocking=True``, and copies
to the host land in pinned memory with an event recorded behind them, so the host waits only
when it reads the values (:meth:`HostCopy.tolist`).

On a synchronous device (the CPU) the same calls are plain copies, or no copies at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class HostCopy:
    """A device tensor on its way to host memory; :meth:`tolist` waits for it to arrive."""

    tensor: torch.Tensor
    ready: Any = None
    """An event recorded after the copy, or ``None`` when the copy is already complete."""

    def tolist(self) -> list[Any]:
        """The values, once the copy has finished."""
        if self.ready is not None:
            self.ready.synchronize()
        return self.tensor.tolist()


class DeviceTransfers:
    """Copies between host and one device; asynchronous where ``overlapping`` is set.

    :param device: the model's device.
    :param overlapping: the backend queues device work asynchronously (stage copies through
        pinned memory and never wait for the device queue).
    """

    def __init__(self, device: torch.device, overlapping: bool) -> None:
        self.device = device
        self.overlapping = overlapping

    def to_device(
        self, values: np.ndarray | list[Any], dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """A device tensor of ``values`` (numpy array or flat list); never waits for the device."""
        host = (
            torch.from_numpy(np.ascontiguousarray(values))
            if isinstance(values, np.ndarray)
            else torch.tensor(values, dtype=dtype)
        )
        if dtype is not None and host.dtype != dtype:
            host = host.to(dtype)
        if self.overlapping:
            host = host.pin_memory()
        return host.to(self.device, non_blocking=self.overlapping)

    def to_host(self, tensor: torch.Tensor) -> HostCopy:
        """Start copying ``tensor`` to host memory; read it with :meth:`HostCopy.tolist`."""
        if not self.overlapping:
            return HostCopy(tensor.to("cpu"))
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        event = torch.Event(device=tensor.device)
        event.record()
        return HostCopy(host, event)
