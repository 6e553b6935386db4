"""A local chat model through transformers. Score = expected value of the next-token distribution over the
digits 1-5 after the assistant turn is prefilled with `Score: `; a short greedy explanation can follow.
(The embedded SmolLM2-135M is too small to judge well; use a capable model on a GPU.)"""

from __future__ import annotations

import torch

from ..types import Judgement
from .base import Judge
from .prompt import system_prompt, user_message


class HFJudge(Judge):
    name = "hf"

    def __init__(self, cfg, cache_dir=None):
        super().__init__(cfg, cache_dir)
        from transformers import AutoModelForCausalLM

        from ...models.registry import load_tokenizer, resolve

        self.tok = load_tokenizer(self.model)
        device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        self.lm = AutoModelForCausalLM.from_pretrained(resolve(self.model), use_safetensors=True).to(device).eval()
        digits = [self.tok.encode(str(d), add_special_tokens=False) for d in range(1, 6)]
        if any(len(d) != 1 for d in digits):
            raise ValueError(f"{self.model}: digits 1-5 are not single tokens; the hf judge cannot score")
        self.digit_ids = torch.tensor([d[0] for d in digits])

    def _prompt(self, item) -> str:
        msgs = [{"role": "system", "content": system_prompt(self.prompt_version)},
                {"role": "user", "content": user_message(item, self.cfg.max_contexts)}]
        return self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) + "Score: "

    @torch.inference_mode()
    def _judge(self, items):
        out = []
        device = next(self.lm.parameters()).device
        for item in items:
            ids = self.tok(self._prompt(item), return_tensors="pt", add_special_tokens=False).to(device)
            logits = self.lm(**ids).logits[0, -1].float()
            probs = torch.softmax(logits[self.digit_ids.to(device)], dim=-1).cpu()
            score = float((probs * torch.arange(1, 6)).sum())
            explanation = ""
            if self.cfg.hf_explain:
                best = str(int(probs.argmax()) + 1)
                cont = self.tok(self._prompt(item) + best + "\nExplanation:", return_tensors="pt",
                                add_special_tokens=False).to(device)
                gen = self.lm.generate(**cont, max_new_tokens=min(self.cfg.max_tokens, 48), do_sample=False,
                                       pad_token_id=self.tok.pad_token_id)
                explanation = self.tok.decode(gen[0, cont["input_ids"].shape[1]:], skip_special_tokens=True).strip()
            out.append(Judgement(item.latent, score, explanation, "ok",
                                 extra={"digit_probs": [round(float(p), 4) for p in probs]}))
        return out
