"""Collectives for tensor and pipeline parallelism, behind the device-communicator hook."""

from llmrt.distributed.communicator import DeviceCommunicator, TorchDistributedCommunicator, WorldInfo

__all__ = ["DeviceCommunicator", "TorchDistributedCommunicator", "WorldInfo"]
