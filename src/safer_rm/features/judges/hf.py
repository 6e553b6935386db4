"""Judge with a local chat model through transformers: the score is the expected digit of the model's
next-token distribution after the assistant turn is prefilled with `Score: `.

    p_d   = softmax(logits)[token of digit d], d = 1..5, renormalised over the five digits
    score = sum_d d * p_d                                   (a number in [1, 5]; continuous)

The digit tokens are found from the tokenizer itself (the first token where "...Score: 1" .. "...Score: 5"
differ), so tokenizers that merge the space into the digit (" 4") and those that do not both work.
`extra` keeps the five probabilities and the probability mass the model put on digits at all (a low mass
says the model does not follow the format). With `hf_explanation_tokens > 0` a short explanation is
generated greedily after `Score: <rounded score>\nExplanation:`.

Any HF causal chat model works (`judge.model`: hub id or local folder; safetensors only, remote code only
with `trust_remote_code`); the embedded SmolLM2-135M-Instruct (`smollm2`) runs offline but is no judge
(measured: digit-probability AUROC 0.42 on plainly safety-related vs plainly unrelated latents). Prompts
longer than `hf_max_length` tokens drop contexts from the end until they fit. Latents are scored one at a
time (no padding, exact on any model).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from ...errors import ModelError
from ..types import Judgement, LatentContexts
from .base import Judge
from .config import JudgeConfig
from .prompt import load_prompt

log = logging.getLogger(__name__)

PREFILL = "Score: "
DIGITS = "12345"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HFJudge(Judge):
    name = "hf"

    def __init__(self, cfg: JudgeConfig, cache_dir: str | Path | None = None, progress: bool = True):
        super().__init__(cfg, cache_dir, progress)
        from transformers import AutoModelForCausalLM

        from ...models.registry import check_local, load_tokenizer, resolve

        self.prompt = load_prompt(cfg.prompt_version)
        self.prompt_version = self.prompt.version
        self.device = (
            cfg.hf_device if cfg.hf_device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        dtype = DTYPES.get(cfg.hf_dtype) or (torch.bfloat16 if self.device == "cuda" else torch.float32)
        path = resolve(self.model)
        check_local(path, allow_pickle=False)
        self.tok = load_tokenizer(self.model, trust_remote_code=cfg.trust_remote_code)
        try:
            self.lm = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, use_safetensors=True, trust_remote_code=cfg.trust_remote_code
            )
        except (OSError, ValueError) as err:
            raise ModelError(
                f"{self.model}: cannot load as a causal LM ({str(err).splitlines()[0]})"
            ) from None
        self.lm.to(self.device).eval()
        if self.tok.chat_template is None:
            log.warning(
                "hf judge: %s has no chat template; using plain 'System/User/Assistant' text", self.model
            )

    def render(self, item: LatentContexts, n_contexts: int) -> str:
        messages = self.prompt.messages(item, n_contexts, self.cfg.context_chars)
        if self.tok.chat_template is None:
            text = f"System: {messages[0]['content']}\n\nUser: {messages[1]['content']}\n\nAssistant: "
        else:
            text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + PREFILL

    def _encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def digit_tokens(self, text: str) -> tuple[list[int], list[int]]:
        """(context ids, the five digit token ids) for a prompt ending in the prefill."""
        full = [self._encode(text + d) for d in DIGITS]
        k = 0
        while all(len(ids) > k for ids in full) and len({ids[k] for ids in full}) == 1:
            k += 1
        if not all(len(ids) > k for ids in full):
            raise ModelError(f"{self.model}: the tokenizer does not give the digits 1-5 tokens of their own")
        digits = [ids[k] for ids in full]
        if len(set(digits)) != 5:
            raise ModelError(
                f"{self.model}: the digits 1-5 share a first token; cannot read their probabilities"
            )
        return full[0][:k], digits

    def fit(self, item: LatentContexts) -> tuple[str, int]:
        """The rendered prompt and how many contexts it shows, within `hf_max_length` tokens."""
        n = min(self.cfg.max_contexts, max(len(item.contexts), 1))
        while True:
            text = self.render(item, n)
            length = len(self._encode(text))
            if length <= self.cfg.hf_max_length or n == 1:
                if length > self.cfg.hf_max_length:
                    log.warning(
                        "hf judge: latent %d's prompt has %d tokens > hf_max_length %d even with one context",
                        item.latent,
                        length,
                        self.cfg.hf_max_length,
                    )
                return text, n
            n -= 1

    @torch.inference_mode()
    def score(self, item: LatentContexts) -> Judgement:
        text, shown = self.fit(item)
        context, digits = self.digit_tokens(text)
        ids = torch.tensor([context], device=self.device)
        logits = self.lm(input_ids=ids).logits[0, -1].float()
        probs = torch.softmax(logits, dim=-1)
        p = probs[digits]
        mass = float(p.sum())
        if not mass > 0:
            return Judgement(
                item.latent,
                None,
                status="unparseable",
                raw="no probability on the digits 1-5",
                extra={"digit_mass": mass},
            )
        p = p / p.sum()
        score = float((p * torch.arange(1, 6, device=p.device, dtype=p.dtype)).sum())
        extra = {
            "digit_probs": [round(float(x), 5) for x in p],
            "digit_mass": round(mass, 5),
            "contexts_shown": shown,
        }
        explanation = self.explain(text, round(score)) if self.cfg.hf_explanation_tokens > 0 else ""
        return Judgement(item.latent, score, explanation, status="ok", extra=extra)

    def explain(self, text: str, digit: int) -> str:
        ids = torch.tensor([self._encode(f"{text}{digit}\nExplanation:")], device=self.device)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        out = self.lm.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=self.cfg.hf_explanation_tokens,
            pad_token_id=pad,
        )
        reply = self.tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        return " ".join(reply.strip().split("\n\n")[0].split())

    def _judge_iter(self, items: Sequence[LatentContexts]) -> Iterator[tuple[int, Judgement]]:
        for i, item in enumerate(items):
            yield i, self.score(item)
