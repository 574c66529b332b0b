"""Constrained field types: the bounds show in the OpenAPI schema and are checked while decoding."""

from __future__ import annotations

from typing import Annotated

import msgspec

from llmrt.sampling_params import MAX_LOGIT_BIAS_ENTRIES, MAX_LOGPROBS, MAX_N, MAX_STOP_STRINGS

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
N = Annotated[
    int, msgspec.Meta(ge=1, le=MAX_N, description=f"sequences per prompt (at most {MAX_N})")
]
Logprobs = Annotated[int, msgspec.Meta(ge=0, le=MAX_LOGPROBS, description=f"0 to {MAX_LOGPROBS}")]
Penalty = Annotated[float, msgspec.Meta(ge=-2.0, le=2.0)]
Temperature = Annotated[float, msgspec.Meta(ge=0.0)]
TopP = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0.0)]
TokenCount = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
TokenId = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
TopK = Annotated[int, msgspec.Meta(ge=-1)]
StopString = Annotated[str, msgspec.Meta(min_length=1)]
Stop = StopString | Annotated[list[StopString], msgspec.Meta(max_length=MAX_STOP_STRINGS)]
BiasKey = Annotated[str, msgspec.Meta(pattern=r"^[0-9]+$")]
LogitBias = Annotated[
    dict[BiasKey, Annotated[float, msgspec.Meta(ge=-100.0, le=100.0)]],
    msgspec.Meta(
        max_length=MAX_LOGIT_BIAS_ENTRIES,
        description="token id (as a string) -> bias added to its logit",
    ),
]
