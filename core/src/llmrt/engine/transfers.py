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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


_TORCH_DTYPES = {np.dtype(np.int64): torch.int64, np.dtype(np.int32): torch.int32,
                 np.dtype(np.float32): torch.float32, np.dtype(np.bool_): torch.bool}
"""The array dtypes :meth:`DeviceTransfers.to_device_many` carries."""


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

    def to_device_many(self, arrays: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Device tensors of several host arrays, in one copy where the device queues work.

        Every small copy to a GPU is its own operation on the stream, and the stream pays a few
        microseconds at each switch between copies and kernels: a decode step's dozen inputs cost
        ~0.1 ms that way on an H100. Here they travel together, packed into one pinned buffer
        (each at a 16-byte boundary), and come back as views of one device buffer.
        """
        arrays = [np.ascontiguousarray(a) for a in arrays]
        if not self.overlapping:
            return [torch.from_numpy(a).to(self.device) for a in arrays]
        offsets, total = [], 0
        for array in arrays:
            offsets.append(total)
            total += -(-array.nbytes // 16) * 16
        host = torch.empty(max(total, 16), dtype=torch.uint8, pin_memory=True)
        packed = host.numpy()
        for array, offset in zip(arrays, offsets):
            packed[offset:offset + array.nbytes] = array.reshape(-1).view(np.uint8)
        device = host.to(self.device, non_blocking=True)
        return [device[offset:offset + array.nbytes].view(_TORCH_DTYPES[array.dtype]).view(array.shape)
                for array, offset in zip(arrays, offsets)]

    def to_host(self, tensor: torch.Tensor) -> HostCopy:
        """Start copying ``tensor`` to host memory; read it with :meth:`HostCopy.tolist`."""
        if not self.overlapping:
            return HostCopy(tensor.to("cpu"))
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        event = torch.Event(device=tensor.device)
        event.record()
        return HostCopy(host, event)
