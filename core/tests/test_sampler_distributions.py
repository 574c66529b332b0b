"""The sampler draws from exactly the distribution a request asks for (chi-square tests).

A small vocabulary, many draws with a fixed seed, and the expected probabilities computed
independently from the definitions (temperature, top-k, top-p, min-p, penalties).
"""

import math

import pytest
import torch

from llmrt.engine.request import Request
from llmrt.sample.logits_processing import build_logits_processing
from llmrt.sample.sampler import Sampler, SamplingBatch
from llmrt.sampling_params import SamplingParams

DRAWS = 40_000
# Chi-square critical values at p = 0.001 by degrees of freedom.
CRITICAL = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52, 6: 22.46, 7: 24.32}
LOGITS = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0])


def _draw(params: SamplingParams, logits=LOGITS, request: Request | None = None) -> torch.Tensor:
    """Counts of each token over DRAWS rows of the same logits and parameters."""
    torch.manual_seed(1234)
    rows = logits.unsqueeze(0).repeat(DRAWS, 1)
    if request is not None:
        rows = build_logits_processing([request] * DRAWS, len(logits), torch.device("cpu")).apply(rows)
    batch = SamplingBatch.build([params] * DRAWS, [None] * DRAWS, torch.device("cpu"))
    tokens, _ = Sampler()(rows, batch)
    return torch.bincount(tokens, minlength=len(logits)).float()


def _assert_matches(counts: torch.Tensor, expected: torch.Tensor) -> None:
    expected = expected / expected.sum()
    assert torch.all(counts[expected == 0] == 0), "sampled a token with zero probability"
    support = expected > 0
    observed, wanted = counts[support], expected[support] * DRAWS
    statistic = float(((observed - wanted) ** 2 / wanted).sum())
    df = int(support.sum()) - 1
    if df == 0:
        return
    assert statistic < CRITICAL[df], f"chi-square {statistic:.1f} over {df} df; counts {counts.tolist()}"


@pytest.mark.parametrize("temperature", [0.5, 1.0, 1.7])
def test_temperature(temperature):
    _assert_matches(_draw(SamplingParams(temperature=temperature)), torch.softmax(LOGITS / temperature, 0))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_k(k):
    expected = torch.softmax(LOGITS, 0)
    expected[k:] = 0  # LOGITS are sorted
    _assert_matches(_draw(SamplingParams(temperature=1.0, top_k=k)), expected)


@pytest.mark.parametrize("p", [0.3, 0.6, 0.9])
def test_top_p(p):
    probs = torch.softmax(LOGITS, 0)
    keep = (torch.cumsum(probs, 0) - probs) < p  # smallest prefix whose mass reaches p
    _assert_matches(_draw(SamplingParams(temperature=1.0, top_p=p)), probs * keep)


@pytest.mark.parametrize("min_p", [0.1, 0.3])
def test_min_p(min_p):
    probs = torch.softmax(LOGITS, 0)
    _assert_matches(_draw(SamplingParams(temperature=1.0, min_p=min_p)), probs * (probs >= min_p * probs.max()))


def test_combined_temperature_top_k_top_p():
    params = SamplingParams(temperature=0.8, top_k=4, top_p=0.8)
    probs = torch.softmax(LOGITS / 0.8, 0)
    probs[4:] = 0
    probs = probs / probs.sum()
    keep = (torch.cumsum(probs, 0) - probs) < 0.8
    _assert_matches(_draw(params), probs * keep)


def _request_with_history(params: SamplingParams, prompt, output) -> Request:
    request = Request("r", list(prompt), params)
    request.output_token_ids = list(output)
    return request


def test_presence_and_frequency_penalties():
    params = SamplingParams(temperature=1.0, presence_penalty=0.5, frequency_penalty=0.3)
    request = _request_with_history(params, [7], [0, 0, 1])
    expected_logits = LOGITS.clone()
    expected_logits[0] -= 0.5 + 0.3 * 2
    expected_logits[1] -= 0.5 + 0.3 * 1
    _assert_matches(_draw(params, request=request), torch.softmax(expected_logits, 0))


def test_repetition_penalty_counts_prompt_and_output():
    params = SamplingParams(temperature=1.0, repetition_penalty=1.5)
    request = _request_with_history(params, [0, 6], [7])
    expected_logits = LOGITS.clone()
    expected_logits[0] /= 1.5          # positive: divided
    expected_logits[6] *= 1.5          # negative: multiplied
    expected_logits[7] *= 1.5
    _assert_matches(_draw(params, request=request), torch.softmax(expected_logits, 0))


def test_logit_bias_and_allowed_tokens():
    params = SamplingParams(temperature=1.0, logit_bias={7: 3.0}, allowed_token_ids=[0, 3, 7])
    request = _request_with_history(params, [1], [])
    expected_logits = LOGITS.clone()
    expected_logits[7] += 3.0
    probs = torch.softmax(expected_logits, 0)
    mask = torch.zeros(8, dtype=torch.bool)
    mask[[0, 3, 7]] = True
    _assert_matches(_draw(params, request=request), probs * mask)


def test_greedy_never_samples():
    counts = _draw(SamplingParams(temperature=0.0))
    assert counts[0] == DRAWS


def test_seeded_rows_ignore_their_neighbours():
    params = [SamplingParams(temperature=1.0, seed=5), SamplingParams(temperature=1.0)]

    def first_row_tokens(neighbour_logits):
        tokens = []
        generator = torch.Generator().manual_seed(5)
        for _ in range(50):
            logits = torch.stack([LOGITS, neighbour_logits])
            batch = SamplingBatch.build(params, [generator, None], torch.device("cpu"))
            tokens.append(int(Sampler()(logits, batch)[0][0]))
        return tokens

    assert first_row_tokens(LOGITS) == first_row_tokens(torch.randn(8) * 5)
    assert not math.isnan(sum(first_row_tokens(LOGITS)))
