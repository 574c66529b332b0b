"""The Gumbel-max ``sample_categorical`` kernel: greedy rows, masked entries, the distribution."""

import pytest
import torch


@pytest.fixture(scope="module")
def sampling(device):
    from llmrt_triton import sampling

    return sampling


def test_greedy_rows_take_the_first_argmax(sampling, device):
    logits = torch.randn(6, 9000, device=device)
    logits[2, 100] = logits[2, 8999] = logits[2].max() + 1  # a tie across chunks: lowest wins
    logits[3, 5000] = logits[3, 5001] = logits[3].max() + 1  # a tie inside one block
    tokens = sampling.sample_categorical(logits, torch.zeros(6, device=device))
    assert tokens.dtype == torch.long
    assert tokens.tolist() == logits.argmax(dim=1).tolist()
    assert tokens[2] == 100 and tokens[3] == 5000


def test_draws_follow_softmax_over_temperature(sampling, device):
    logits = torch.tensor([2.0, 1.0, float("-inf"), 0.0, -1.0], device=device)
    rows = 20_000 if device.type == "cuda" else 1_000  # the interpreter runs one program at a time
    tokens = sampling.sample_categorical(logits.repeat(rows, 1), torch.full((rows,), 0.8, device=device))
    counts = torch.bincount(tokens.cpu(), minlength=5).double()
    assert counts[2] == 0
    expected = torch.softmax(logits.cpu().double() / 0.8, 0) * rows
    support = expected > 0
    statistic = float(((counts[support] - expected[support]) ** 2 / expected[support]).sum())
    assert statistic < 16.27, f"chi-square {statistic:.1f} over 3 df: {counts.tolist()}"


def test_global_seed_repeats_the_draw(sampling, device):
    logits = torch.randn(4, 3000, device=device)
    temperature = torch.ones(4, device=device)
    torch.manual_seed(5)
    first = sampling.sample_categorical(logits, temperature)
    torch.manual_seed(5)
    assert torch.equal(sampling.sample_categorical(logits, temperature), first)
