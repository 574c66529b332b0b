"""Core's DeviceTransfers on a GPU: several arrays in one pinned copy come back intact."""

import numpy as np
import pytest
import torch
from llmrt.engine.transfers import DeviceTransfers

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


@needs_gpu
def test_to_device_many_packs_arrays_of_every_dtype_and_shape():
    transfers = DeviceTransfers(torch.device("cuda"), overlapping=True)
    arrays = [np.arange(5, dtype=np.int64), np.array([], dtype=np.int64), np.arange(12, dtype=np.int32).reshape(3, 4),
              np.array([1.5, -2.0, 3.25], dtype=np.float32), np.array([[7, 8], [9, 10]], dtype=np.int64).T,
              np.array([True, False, True])]
    tensors = transfers.to_device_many(arrays)
    torch.cuda.synchronize()
    for array, tensor in zip(arrays, tensors, strict=True):
        assert tensor.device.type == "cuda" and tuple(tensor.shape) == array.shape
        assert tensor.cpu().numpy().tolist() == array.tolist()
    tensors[0][tensors[1]] = 0  # views of one buffer still take in-place writes
    tensors[0][torch.tensor([1], device="cuda")] = 99
    assert tensors[0].tolist() == [0, 99, 2, 3, 4] and tensors[2].cpu().numpy().tolist() == arrays[2].tolist()


def test_to_device_many_without_overlap_is_plain_copies():
    transfers = DeviceTransfers(torch.device("cpu"), overlapping=False)
    out = transfers.to_device_many([np.arange(3), np.ones((2, 2), dtype=np.int32)])
    assert out[0].tolist() == [0, 1, 2] and out[1].dtype == torch.int32 and out[1].shape == (2, 2)
