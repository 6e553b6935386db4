"""Any OpenAI-compatible Chat Completions endpoint (OpenAI, Azure, vLLM, llama.cpp server, Ollama) over
plain HTTP with httpx: a concurrency limit, bounded retries with exponential backoff on timeouts, 429
(Retry-After honoured) and 5xx, no retry on other 4xx, and strict parsing of the reply."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from ...errors import ConfigError
from ..types import Judgement, LatentContexts
from .base import Judge
from .prompt import parse_reply, system_prompt, user_message

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIJudge(Judge):
    name = "openai"

    def __init__(self, cfg, cache_dir=None):
        super().__init__(cfg, cache_dir)
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"

    def _key(self) -> str:
        key = os.environ.get(self.cfg.api_key_env, "")
        if not key:
            raise ConfigError("judge.api_key_env", f"environment variable {self.cfg.api_key_env} is empty or unset")
        return key

    def _call(self, client: httpx.Client, item: LatentContexts, headers: dict) -> Judgement:
        body = {"model": self.model, "temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens,
                "messages": [{"role": "system", "content": system_prompt(self.prompt_version)},
                             {"role": "user", "content": user_message(item, self.cfg.max_contexts)}]}
        delay, last = self.cfg.backoff, ""
        for attempt in range(self.cfg.max_retries + 1):
            wait = delay
            try:
                resp = client.post(self.url, json=body, headers=headers, timeout=self.cfg.timeout)
            except httpx.TimeoutException:
                last = "timeout"
            except httpx.TransportError as err:
                last = f"transport error: {type(err).__name__}"
            else:
                if resp.status_code == 200:
                    return self._parse(item, resp)
                last = f"HTTP {resp.status_code}"
                if resp.status_code not in RETRY_STATUS:
                    return Judgement(item.latent, None, "", "error", raw=f"{last}: {resp.text[:300]}")
                retry_after = resp.headers.get("retry-after")
                if retry_after:
                    try:
                        wait = max(wait, float(retry_after))
                    except ValueError:
                        pass
            if attempt < self.cfg.max_retries:
                log.info("judge latent %d: %s, retry %d in %.1f s", item.latent, last, attempt + 1, wait)
                time.sleep(wait)
                delay *= 2
        return Judgement(item.latent, None, "", "error", raw=f"gave up after {self.cfg.max_retries + 1} tries: {last}")

    def _parse(self, item: LatentContexts, resp: httpx.Response) -> Judgement:
        try:
            text = resp.json()["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as err:
            return Judgement(item.latent, None, "", "unparseable", raw=f"malformed response ({err}): {resp.text[:300]}")
        score, explanation = parse_reply(text)
        if score is None:
            return Judgement(item.latent, None, "", "unparseable", raw=text)
        return Judgement(item.latent, score, explanation, "ok", raw=text)

    def _judge(self, items):
        headers = {"Authorization": f"Bearer {self._key()}"}
        with httpx.Client() as client, ThreadPoolExecutor(self.cfg.concurrency) as pool:
            return list(pool.map(lambda it: self._call(client, it, headers), items))
