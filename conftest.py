"""Settings for every test in the repository.

Tests run in parallel (pytest-xdist, one worker per core): each worker computes on one thread,
since OpenMP workers that oversubscribe two cores spin at barriers and run many times slower.
"""

import os

import torch

os.environ.setdefault("LLMRT_CPU_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["LLMRT_CPU_NUM_THREADS"]))
