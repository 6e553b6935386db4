from __future__ import annotations

import pytest

from safer_rm.activations import TokenTexts, select_positions
from safer_rm.models import Renderer, load_tokenizer

PROMPT = [{"role": "user", "content": "Tell me about bread."}]
RESPONSE = "Bake it well. Add salt, then water! Really?\nYes; done. Ok."


def expected_sentence_ends(tok, enc, min_gap=5):
    """Hand rule: the last token of each run of tokens ending in . , ? ! ; or newline, inside the response,
    at least min_gap after the previously kept one."""
    texts = TokenTexts(tok)
    ids = enc.input_ids
    end = next(i for i in range(enc.response_start, len(ids) + 1) if i == len(ids) or ids[i] in texts.special)
    marks = [i for i in range(enc.response_start, end) if texts(ids[i]).rstrip(" ")[-1:] in list(".,?!;\n")]
    run_ends = [m for k, m in enumerate(marks) if k + 1 == len(marks) or marks[k + 1] != m + 1]
    kept = []
    for m in run_ends:
        if not kept or m - kept[-1] >= min_gap:
            kept.append(m)
    return kept, [texts(ids[i]) for i in kept]


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_sentence_end_policy(fixture, request):
    tok = load_tokenizer(str(request.getfixturevalue(fixture)))
    enc = Renderer(tok, 256).encode(PROMPT, RESPONSE)
    texts = TokenTexts(tok)
    got = select_positions("sentence_end", enc.input_ids, enc.response_start, texts, min_gap=5)
    want, strings = expected_sentence_ends(tok, enc)
    assert got == want and len(got) >= 3
    assert all(p >= enc.response_start for p in got)
    # every kept token is punctuation or a newline, never a pad or special token
    assert all(s.strip(" ")[-1:] in list(".,?!;\n") for s in strings)
    # the gap rule removes close sentence ends: with gap 1 we keep more
    assert len(select_positions("sentence_end", enc.input_ids, enc.response_start, texts, min_gap=1)) > len(
        got
    )


def test_sentence_end_hand_written_wordpiece(tiny_bert):
    """WordPiece splits punctuation into its own tokens: response `one two . three four five six seven ,
    eight !` -> '.' at 2, ',' at 8, '!' at 10. Gap 5 keeps '.' and ',' ('!' is 2 after ','); gap 7 drops
    ',' (6 after '.') and then keeps '!' (8 after '.')."""
    tok = load_tokenizer(str(tiny_bert))
    enc = Renderer(tok, 64).encode(
        [{"role": "user", "content": "hi"}], "one two. three four five six seven, eight!"
    )
    toks = tok.convert_ids_to_tokens(enc.input_ids)
    texts = TokenTexts(tok)
    pos = select_positions("sentence_end", enc.input_ids, enc.response_start, texts, min_gap=5)
    assert [toks[p] for p in pos] == [".", ","]
    assert pos[0] == enc.response_start + 2
    pos7 = select_positions("sentence_end", enc.input_ids, enc.response_start, texts, min_gap=7)
    assert [toks[p] for p in pos7] == [".", "!"]


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_other_policies_and_no_pads(fixture, request):
    tok = load_tokenizer(str(request.getfixturevalue(fixture)))
    enc = Renderer(tok, 256).encode(PROMPT, RESPONSE)
    texts = TokenTexts(tok)
    ids = enc.input_ids
    assert select_positions("all", ids, enc.response_start, texts) == list(range(len(ids)))
    assert select_positions("last", ids, enc.response_start, texts) == [len(ids) - 1]
    resp = select_positions("response", ids, enc.response_start, texts)
    assert resp[0] == enc.response_start and all(ids[p] not in texts.special for p in resp)
    decoded = tok.decode([ids[p] for p in resp])
    assert "".join(decoded.split()).lower() == "".join(RESPONSE.split()).lower()
    assert tok.pad_token_id not in [ids[p] for p in select_positions("all", ids, enc.response_start, texts)]


def test_response_without_punctuation_keeps_last_token(tiny_bert):
    tok = load_tokenizer(str(tiny_bert))
    enc = Renderer(tok, 64).encode(PROMPT, "one two three")
    pos = select_positions("sentence_end", enc.input_ids, enc.response_start, TokenTexts(tok))
    assert tok.convert_ids_to_tokens([enc.input_ids[p] for p in pos]) == ["three"]
