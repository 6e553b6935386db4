"""Judge through any OpenAI-compatible Chat Completions endpoint (OpenAI, Azure, vLLM, llama.cpp server,
Ollama), over plain HTTP with httpx.

httpx rather than the `openai` client: the retry policy is the method's contract here and must be exact
and testable (which statuses, Retry-After, bounded backoff), the `openai` client brings its own retries
and demands a key even for a local server, and one POST of a documented JSON body is all this needs.

- At most `concurrency` requests in flight (a thread pool over one connection pool).
- Retries, at most `max_retries`, with exponential backoff and jitter after a timeout, a connection
  error, 408, 429 (Retry-After honoured, seconds or an HTTP date) and 5xx. Other 4xx are not retried.
- The reply must be `Score: N` / `Explanation: ...` (prompt.parse_reply): anything else is `unparseable`
  with the text kept in `raw`. A call that fails after its retries, or a response that does not speak the
  protocol (not JSON, no choices), is an `error` (not cached: the next run asks again).
- After `max(8, 2 x concurrency)` calls in a row that failed all their retries, the endpoint is taken to
  be down: the remaining latents are not asked (status `error`, not cached), so a dead endpoint costs
  seconds, not hours. A refused request (4xx, e.g. a content filter) does not count towards this.
- The API key is read from the environment variable named by `api_key_env` when requests are sent; it is
  never stored in the config, the cache, a judgement or a log record (and is masked if a server echoes it).
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

import httpx

from ...errors import ConfigError
from ..types import Judgement, LatentContexts
from .base import Judge
from .config import JudgeConfig
from .prompt import load_prompt, parse_reply

log = logging.getLogger(__name__)

RAW_LIMIT = 2000
"""Characters of an error body or a malformed response kept in `Judgement.raw`."""
GIVE_UP_AFTER = 8
"""Consecutive calls that failed after all retries (at least twice the concurrency) after which the rest of
the run is not asked. A 4xx answer (a refused request, e.g. a content filter) does not count."""


def chat_url(base_url: str) -> httpx.URL:
    """`<base_url>/chat/completions`, keeping a query string (Azure's ?api-version=...)."""
    url = httpx.URL(base_url)
    path = url.path.rstrip("/")
    if not path.endswith("/chat/completions"):
        path += "/chat/completions"
    return url.copy_with(path=path)


def retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIJudge(Judge):
    name = "openai"

    def __init__(
        self,
        cfg: JudgeConfig,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        transport: httpx.BaseTransport | None = None,
    ):
        super().__init__(cfg, cache_dir, progress)
        self.prompt = load_prompt(cfg.prompt_version)
        self.prompt_version = self.prompt.version
        self.url = chat_url(cfg.base_url)
        self.transport = transport
        self._api_key()  # fail early, before any work, when the variable is missing

    def _api_key(self) -> str:
        name = self.cfg.api_key_env
        if not name:
            return ""
        key = os.environ.get(name, "")
        if not key:
            raise ConfigError(
                "judge.api_key_env",
                f"environment variable {name} is empty or unset (it must hold "
                "the API key; set judge.api_key_env to '' for a server that needs no key)",
            )
        return key

    def _headers(self, key: str) -> dict[str, str]:
        if not key:
            return {}
        if self.cfg.api_key_header == "api-key":
            return {"api-key": key}
        return {"Authorization": f"Bearer {key}"}

    def request_body(self, item: LatentContexts) -> dict:
        body = {
            "model": self.model,
            "messages": self.prompt.messages(item, self.cfg.max_contexts, self.cfg.context_chars),
            "temperature": self.cfg.temperature,
            self.cfg.max_tokens_field: self.cfg.max_tokens,
        }
        return {**body, **self.cfg.extra_body}

    def _judge_iter(self, items: Sequence[LatentContexts]) -> Iterator[tuple[int, Judgement]]:
        key = self._api_key()
        headers = self._headers(key)
        client = httpx.Client(timeout=httpx.Timeout(self.cfg.timeout), transport=self.transport)
        pool = ThreadPoolExecutor(self.cfg.concurrency, thread_name_prefix="judge")
        stop = threading.Event()
        failures = 0
        try:
            futures: dict[Future, int] = {
                pool.submit(self._ask, client, headers, key, item, stop): i for i, item in enumerate(items)
            }
            for future in as_completed(futures):
                verdict = future.result()
                failures = failures + 1 if verdict.extra.get("gave_up") else 0
                if failures == max(GIVE_UP_AFTER, 2 * self.cfg.concurrency) and not stop.is_set():
                    log.error(
                        "judge: %d calls in a row failed (last: %s); not asking the rest of this run (they "
                        "stay uncached, so a rerun asks them)",
                        failures,
                        verdict.raw[:200],
                    )
                    stop.set()
                yield futures[future], verdict
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            client.close()

    def _ask(
        self,
        client: httpx.Client,
        headers: dict[str, str],
        key: str,
        item: LatentContexts,
        stop: threading.Event,
    ) -> Judgement:
        cfg = self.cfg
        body = self.request_body(item)
        reason = problem = ""
        for attempt in range(cfg.max_retries + 1):
            if stop.is_set():
                return Judgement(
                    item.latent,
                    None,
                    status="error",
                    raw="not asked: the endpoint kept failing",
                    extra={"attempts": attempt},
                )
            wait: float | None = None
            try:
                resp = client.post(self.url, json=body, headers=headers)
            except httpx.TimeoutException:
                reason = problem = f"timeout after {cfg.timeout:g} s"
            except httpx.TransportError as err:
                reason, problem = "connection error", f"connection error ({type(err).__name__}: {err})"
            else:
                if resp.is_success:
                    return _mask(self._read(item, resp), key, attempt + 1)
                reason, problem = (
                    f"HTTP {resp.status_code}",
                    f"HTTP {resp.status_code}: {resp.text[:RAW_LIMIT]}",
                )
                if not retryable(resp.status_code):
                    log.warning("judge latent %d: %s, not retried", item.latent, reason)
                    return _mask(Judgement(item.latent, None, status="error", raw=problem), key, attempt + 1)
                wait = retry_after_seconds(resp.headers.get("retry-after"))
            if attempt == cfg.max_retries:
                break
            if wait is None:
                wait = cfg.backoff * 2**attempt * random.uniform(0.5, 1.0)
            wait = min(wait, cfg.max_wait)
            log.warning(
                "judge latent %d: %s; retry %d of %d in %.2f s",
                item.latent,
                reason,
                attempt + 1,
                cfg.max_retries,
                wait,
            )
            stop.wait(wait)  # returns early when stopped; the check at the top then returns
        log.warning(
            "judge latent %d: gave up after %d attempts (%s)", item.latent, cfg.max_retries + 1, reason
        )
        return _mask(
            Judgement(item.latent, None, status="error", raw=f"gave up: {problem}", extra={"gave_up": True}),
            key,
            cfg.max_retries + 1,
        )

    def _read(self, item: LatentContexts, resp: httpx.Response) -> Judgement:
        try:
            data = resp.json()
        except ValueError:
            return Judgement(
                item.latent,
                None,
                status="error",
                raw=f"malformed response (not JSON): {resp.text[:RAW_LIMIT]}",
            )
        try:
            choice = data["choices"][0]
            message = choice["message"]
            content = message.get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            return Judgement(
                item.latent,
                None,
                status="error",
                raw=f"malformed response (no choices[0].message): {resp.text[:RAW_LIMIT]}",
            )
        extra = {"finish_reason": choice.get("finish_reason")}
        if isinstance(data.get("usage"), dict):
            extra["usage"] = data["usage"]
        if not isinstance(content, str):
            refusal = message.get("refusal")
            return Judgement(
                item.latent,
                None,
                status="unparseable",
                raw=refusal if isinstance(refusal, str) else "",
                extra={**extra, "problem": "reply has no text content"},
            )
        reply = parse_reply(content)
        if reply.score is None:
            log.info("judge latent %d: unparseable reply (%s)", item.latent, reply.problem)
            return Judgement(
                item.latent,
                None,
                status="unparseable",
                raw=content,
                extra={**extra, "problem": reply.problem},
            )
        return Judgement(
            item.latent, float(reply.score), reply.explanation, status="ok", raw=content, extra=extra
        )


def _mask(judgement: Judgement, key: str, attempts: int) -> Judgement:
    """Record the attempts, and mask the key should a server ever echo it back."""
    judgement.extra["attempts"] = attempts
    if key and len(key) >= 4:
        judgement.raw = judgement.raw.replace(key, "***")
        judgement.explanation = judgement.explanation.replace(key, "***")
    return judgement
