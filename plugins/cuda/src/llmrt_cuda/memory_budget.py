"""The KV cache budget on a GPU, from measured memory, with its arithmetic in words.

    usable   = total device memory x --gpu-memory-utilization
    budget   = usable - peak bytes PyTorch allocated while profiling (weights + activations of the
               largest batch, decode logits included) - memory outside PyTorch's allocator (CUDA
               context, cuBLAS and NCCL workspaces; other processes' use of the GPU shows up here
               too) - the memory CUDA graphs will hold (measured on a decode batch of the largest
               captured size, plus bookkeeping per graph)

The budget never exceeds what is actually free now. When it is not positive, startup stops with
what was asked, what is taken, and which flag to change.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = float(1 << 30)


class CudaOutOfMemoryAtStartup(RuntimeError):
    """The model, its activations and the graphs leave no room for a KV cache."""


@dataclass(frozen=True)
class MemoryBudget:
    """Measured numbers (bytes) and the KV cache budget they give."""

    total: int
    utilization: float
    peak_torch: int
    non_torch: int
    graphs: int
    free_now: int

    @property
    def usable(self) -> int:
        """The share of the device llmrt may take."""
        return int(self.total * self.utilization)

    @property
    def budget(self) -> int:
        """Bytes for the KV cache (may be negative: see :meth:`check`)."""
        return min(
            self.usable - self.peak_torch - self.non_torch - self.graphs,
            self.free_now - self.graphs,
        )

    def explain(self) -> str:
        """One line with every term, as logged at startup."""
        clamp = (
            " (limited by free memory)"
            if self.free_now < self.usable - self.peak_torch - self.non_torch
            else ""
        )
        return (
            f"{self.total / GIB:.2f} GiB x {self.utilization:.2f}"
            f" = {self.usable / GIB:.2f} GiB usable"
            f" - {self.peak_torch / GIB:.2f} GiB torch peak (weights + activations)"
            f" - {self.non_torch / GIB:.2f} GiB outside torch (CUDA context, libraries)"
            f" - {self.graphs / GIB:.2f} GiB CUDA graphs"
            f" = {self.budget / GIB:.2f} GiB for the KV cache{clamp}"
            f"; {self.free_now / GIB:.2f} GiB free now"
        )

    def check(self) -> None:
        """Raise :class:`CudaOutOfMemoryAtStartup` when no KV cache fits."""
        if self.budget <= 0:
            raise CudaOutOfMemoryAtStartup(
                f"no GPU memory is left for the KV cache: {self.explain()}. "
                "Raise --gpu-memory-utilization, lower --max-num-batched-tokens or --max-num-seqs "
                "(smaller activations), pass --enforce-eager "
                "(no CUDA graphs), or free the GPU from other processes"
            )


def measure_budget(device, utilization: float, peak_torch: int, graphs: int) -> MemoryBudget:
    """Read the device's memory now (after weights and the profiling pass) and build the budget."""
    import torch

    free, total = torch.cuda.mem_get_info(device)
    reserved = torch.cuda.memory_reserved(device)
    allocated = torch.cuda.memory_allocated(device)
    non_torch = max(0, total - free - reserved)
    # Memory the caching allocator holds but has not handed out is free for the KV cache too.
    return MemoryBudget(
        total=total,
        utilization=utilization,
        peak_torch=peak_torch,
        non_torch=non_torch,
        graphs=graphs,
        free_now=free + reserved - allocated,
    )
