from __future__ import annotations

from safer_rm.models import Renderer, load_tokenizer, truncation_counts

PROMPT = [{"role": "user", "content": "one two three four five six seven eight nine ten " * 3}]
RESPONSE = "Sorry, I will not explain how to build a weapon. Please stay safe."


def _check_keeps_response_end(tok, renderer):
    full = renderer.encode(PROMPT, RESPONSE)
    assert not full.truncated
    short = Renderer(tok, len(full.input_ids) - 10, renderer.mode).encode(PROMPT, RESPONSE)
    assert short.prompt_cut == 10 and short.response_cut == 0
    assert short.input_ids[short.response_start :] == full.input_ids[full.response_start :]
    # the prompt loses its beginning, not its end
    assert (
        short.input_ids[short.response_start - 5 : short.response_start]
        == full.input_ids[full.response_start - 5 : full.response_start]
    )
    resp_len = len(full.input_ids) - full.response_start
    tiny = Renderer(tok, resp_len - 4 + (2 if not renderer.chat else 0), renderer.mode).encode(
        PROMPT, RESPONSE
    )
    assert tiny.response_cut > 0 and tiny.response_start == (1 if not renderer.chat else 0)
    assert tiny.input_ids[-3:] == full.input_ids[-3:]
    return full, short


def test_chat_template_truncation_keeps_response_end(tiny_llama):
    tok = load_tokenizer(str(tiny_llama))
    r = Renderer(tok, 512)
    assert r.mode == "chat"
    full, _ = _check_keeps_response_end(tok, r)
    text = tok.decode(full.input_ids)
    assert text.startswith("<|im_start|>user") and text.rstrip().endswith("<|im_end|>")
    assert tok.decode(full.input_ids[full.response_start :]).startswith("Sorry")


def test_plain_rendering_for_bert(tiny_bert):
    tok = load_tokenizer(str(tiny_bert))
    r = Renderer(tok, 512)
    assert r.mode == "plain"
    full, short = _check_keeps_response_end(tok, r)
    assert full.input_ids[0] == tok.cls_token_id and full.input_ids[-1] == tok.sep_token_id
    assert short.input_ids[0] == tok.cls_token_id and len(short.input_ids) == len(full.input_ids) - 10


def test_truncation_is_counted_never_dropped(tiny_bert):
    from safer_rm.data import PreferencePair

    tok = load_tokenizer(str(tiny_bert))
    r = Renderer(tok, 24)
    pairs = [PreferencePair(str(i), PROMPT, RESPONSE * (i + 2), "no") for i in range(3)]
    c, rj = r.encode_pairs(pairs)
    assert len(c) == 3 and all(len(e.input_ids) <= 24 for e in c + rj)
    counts = truncation_counts(c, rj)
    assert counts == {"pairs": 3, "prompt_truncated": 3, "response_truncated": 3}


def test_min_prompt_tokens_keeps_prompt_tail_and_response_end(tiny_bert):
    tok = load_tokenizer(str(tiny_bert))
    long_response = RESPONSE * 6
    full = Renderer(tok, 512).encode(PROMPT, long_response)
    r = Renderer(tok, 40, min_prompt_tokens=8)
    e = r.encode(PROMPT, long_response)
    assert len(e.input_ids) == 40 and e.response_start == 1 + 8
    assert e.input_ids[1:9] == full.input_ids[full.response_start - 8 : full.response_start]
    assert e.input_ids[-10:] == full.input_ids[-10:] and e.response_cut > 0
    assert Renderer(tok, 40).encode(PROMPT, long_response).response_start == 1  # default: response first


def test_long_inputs_raise_no_tokenizer_length_warning(tiny_bert, capfd, caplog):
    """Rendering cuts to its own budget; the tokenizer's 'longer than the specified maximum' warning about the
    uncut text would only mislead."""
    from safer_rm.data import PreferencePair

    tok = load_tokenizer(str(tiny_bert))
    tok.model_max_length = 16
    capfd.readouterr()
    Renderer(tok, 16).encode_pairs([PreferencePair("0", PROMPT, RESPONSE * 20, "no")])
    assert "longer than the specified maximum" not in capfd.readouterr().err + caplog.text
