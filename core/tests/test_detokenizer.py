"""Incremental detokenization and stop strings, property-tested with hypothesis."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrt.engine.detokenizer import IncrementalDetokenizer
from llmrt.engine.output_processor import OutputProcessor, ParentState
from llmrt.engine.request import Request, RequestStatus
from llmrt.sampling_params import SamplingParams
from llmrt.testing.tiny_tokenizer import train_tiny_tokenizer

TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="日本語中文한국어🙂🚀👍🏽é ", max_size=20),
    st.binary(max_size=30).map(lambda b: b.decode("utf-8", errors="replace")),
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sentencepiece_style():
    """A Metaspace (SentencePiece-style, leading-space marker) BPE tokenizer, trained offline."""
    from tokenizers import SentencePieceBPETokenizer
    from transformers import PreTrainedTokenizerFast

    from llmrt.testing.tiny_tokenizer import tiny_corpus

    raw = SentencePieceBPETokenizer(add_prefix_space=True)
    raw.train_from_iterator(tiny_corpus(), vocab_size=400, min_frequency=1,
                            special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


@pytest.fixture(scope="module", params=["byte-level BPE", "sentencepiece-style"])
def tokenizer(request):
    return train_tiny_tokenizer() if request.param == "byte-level BPE" else _sentencepiece_style()


def _stream(tokenizer, prompt_ids, ids):
    detok = IncrementalDetokenizer(tokenizer, prompt_ids)
    pieces = [detok.update([token]) for token in ids]
    pieces.append(detok.flush())
    return pieces


@SETTINGS
@given(text=TEXT, prompt=st.text(max_size=10))
def test_incremental_text_equals_decoding_everything(tokenizer, text, prompt):
    ids = tokenizer.encode(text, add_special_tokens=False)
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    pieces = _stream(tokenizer, prompt_ids, ids)
    # What the output adds to the prompt's text: for byte-level BPE this is decode(ids); for
    # SentencePiece it keeps the leading space a continuation has (decode(ids) alone drops it).
    before = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    expected = tokenizer.decode(prompt_ids + ids, skip_special_tokens=True)[len(before):]
    assert "".join(pieces) == expected, (prompt, prompt_ids, text, ids)
    for piece in pieces[:-1]:
        assert "\ufffd" not in piece or "\ufffd" in text  # never half a character mid-stream


@SETTINGS
@given(text=st.text(alphabet="ab日🙂 xyz", min_size=2, max_size=30), data=st.data())
def test_stop_string_at_every_split_point(tokenizer, text, data):
    start = data.draw(st.integers(0, len(text) - 1))
    stop = text[start : data.draw(st.integers(start + 1, len(text)))]
    include = data.draw(st.booleans())
    ids = tokenizer.encode(text, add_special_tokens=False)
    params = SamplingParams(stop=[stop], include_stop_str_in_output=include, max_tokens=len(ids) + 1)
    request = Request("r", [1], params)
    processor = OutputProcessor(tokenizer)
    processor.add(ParentState("r", None, [1]), [request])
    final = None
    for token in ids:
        request.append_output_token(token)
        outputs, stopped = processor.update([request])
        final = outputs[-1] if outputs else final
        if stopped:
            request.status = RequestStatus.FINISHED_STOPPED
            break
    full = tokenizer.decode(ids, skip_special_tokens=True)
    position = full.find(stop)
    if position == -1:  # the stop string straddles a character the tokenizer split oddly
        return
    expected = full[: position + len(stop)] if include else full[:position]
    assert final.outputs[0].text == expected
    assert final.outputs[0].finish_reason == "stop" and final.outputs[0].stop_reason == stop
