"""Small Triton device functions shared by several kernels (portable across Triton versions)."""

import triton
import triton.language as tl


@triton.jit
def tanh(x):
    """``tanh`` in float32 from ``exp`` alone (no libdevice, so it also runs in the interpreter).

    Written as ``sign(x) * (1 - e) / (1 + e)`` with ``e = exp(-2|x|)``, which never overflows.
    """
    e = tl.exp(-2.0 * tl.abs(x))
    y = (1.0 - e) / (1.0 + e)
    return tl.where(x >= 0, y, -y)


def num_warps_for(width: int) -> int:
    """Warps for a kernel that keeps one row of ``width`` elements in registers."""
    if width <= 1024:
        return 4
    if width <= 4096:
        return 8
    return 16
