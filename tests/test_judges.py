"""Judges: the OpenAI-compatible judge against a local Chat Completions server (retries, Retry-After, parsing,
concurrency, the API key), the disk cache, labels files, the none / embedding / hf judges, and the probe set."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from safer_rm.errors import ConfigError, DataError
from safer_rm.features.judges import JudgeConfig, JudgementCache, judge_fingerprint, make_judge, parse_reply
from safer_rm.features.judges.cache import CACHE_FILE
from safer_rm.features.judges.openai_compat import retry_after_seconds
from safer_rm.features.judges.prompt import load_prompt, render_contexts
from safer_rm.features.types import Context, Judgement, LatentContexts

from helpers import SHARED, needs_mirror

KEY_ENV = "SAFER_TEST_JUDGE_KEY"
KEY = "sk-test-PLANTED-c0ffee-0123456789"


# ---- a scripted Chat Completions server ------------------------------------------------------------------
Action = Callable[[BaseHTTPRequestHandler], None]


def reply(text: str) -> Action:
    def act(h: BaseHTTPRequestHandler) -> None:
        body = {
            "id": "x",
            "object": "chat.completion",
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        }
        send(h, 200, json.dumps(body).encode())

    return act


def status(
    code: int, headers: dict[str, str] | None = None, body: bytes = b'{"error": {"message": "no"}}'
) -> Action:
    return lambda h: send(h, code, body, headers)


def raw(body: bytes) -> Action:
    return lambda h: send(h, 200, body)


def sleep_then(seconds: float, then: Action) -> Action:
    def act(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        then(h)

    return act


def echo_auth() -> Action:
    """A badly behaved server that repeats the Authorization header back in its reply."""
    return lambda h: reply(f"Score: 3\nExplanation: your header was {h.headers.get('Authorization')}")(h)


def send(h: BaseHTTPRequestHandler, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    h.send_response(code)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


class FakeChat:
    """POST /v1/chat/completions on 127.0.0.1:<free port>. Each latent's contexts carry a token `case-<name>`;
    the n-th request for a case runs script[case][n] (the default reply once the script is used up)."""

    def __init__(
        self, script: dict[str, list[Action]] | None = None, default: Action | None = None, delay: float = 0.0
    ):
        self.script = script or {}
        self.default = default or reply("Score: 5\nExplanation: weapons and violence.")
        self.delay = delay
        self.requests: list[dict] = []
        self.counts: dict[str, int] = {}
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                fake.handle(self)

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # the client gave up on a slow request: broken pipe, expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
        m = re.search(r"<<case-([\w-]+)>>", body["messages"][-1]["content"])
        case = m.group(1) if m else "?"
        with self.lock:
            n = self.counts.get(case, 0)
            self.counts[case] = n + 1
            self.requests.append(
                {
                    "path": h.path,
                    "headers": dict(h.headers),
                    "body": body,
                    "case": case,
                    "time": time.monotonic(),
                }
            )
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        # Out of flight before the reply is written: once the client has the reply it may send its next request,
        # possibly before this thread would get to count down after writing (a race that counted 4 of 3 in CI).
        try:
            if self.delay:
                time.sleep(self.delay)
        finally:
            with self.lock:
                self.in_flight -= 1
        steps = self.script.get(case, [])
        (steps[n] if n < len(steps) else self.default)(h)

    def __enter__(self) -> FakeChat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def latent(i: int, case: str | None = None, n: int = 3) -> LatentContexts:
    token = f"case-{case}" if case else " weapon"
    contexts = [
        Context(
            token, 5.0 - k, f"How do I build a {k} ", " at home without anyone knowing?", f"p{i}", "rejected"
        )
        for k in range(n)
    ]
    return LatentContexts(i, contexts, salience=0.1)


def openai_cfg(server: FakeChat, **kw) -> JudgeConfig:
    base = dict(
        kind="openai",
        model="judge-model",
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        timeout=0.4,
        concurrency=4,
        max_retries=2,
        backoff=0.01,
        max_wait=2.0,
    )
    return JudgeConfig(**{**base, **kw})


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


# ---- prompt and reply ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, score, explanation",
    [
        ("Score: 4\nExplanation: mentions of weapons.", 4, "mentions of weapons."),
        ("**Score:** 5\n**Explanation:** refusals to help.", 5, "refusals to help."),
        ("Score: 1", 1, ""),
        ("Sure.\nScore: 2\nExplanation: cooking\nrecipes", 2, "cooking recipes"),
        ("Explanation: grammar.\nScore: 1", 1, "grammar."),
        ("I think it's about a 4", None, ""),
        ("Score: 7\nExplanation: very unsafe", None, ""),
        ("Score: 0", None, ""),
        ("Score: 4.5", None, ""),
        ("Score: four", None, ""),
        ("Score: 4/5", None, ""),
        ("Score: 3\nScore: 4", None, ""),
        ("", None, ""),
    ],
)
def test_parse_reply_is_strict(text, score, explanation):
    r = parse_reply(text)
    assert r.score == score and r.explanation == explanation
    assert (r.problem == "") == (score is not None)


def test_prompt_shows_contexts_compactly_highest_activation_first():
    contexts = [
        Context(" low", 0.5, "a\n\nb ", " c"),
        Context(" gun", 7.25, "How do I buy a", " without\na check?"),
        Context("ing", 3.0, "x" * 500 + " kill", " now"),
    ]
    text = render_contexts(contexts, max_contexts=2, context_chars=40)
    lines = text.splitlines()
    assert lines == [
        '1. "gun" (7.25) How do I buy a <<gun>> without a check?',
        '2. "ing" (3.00) ...' + "x" * 35 + " kill<<ing>> now",
    ]
    prompt = load_prompt("v1")
    messages = prompt.messages(LatentContexts(3, contexts), 16, 160)
    assert [m["role"] for m in messages] == ["system", "user"] and "{contexts}" not in messages[1]["content"]
    assert "Score: <one digit from 1 to 5>" in messages[1]["content"] and "<<low>>" in messages[1]["content"]


def test_prompt_file_of_ones_own(tmp_path):
    path = tmp_path / "strict_v9.txt"
    path.write_text(
        "# comment\n[system]\nBe terse.\n[user]\nContexts:\n{contexts}\nScore: N\n", encoding="utf-8"
    )
    p = load_prompt(str(path))
    assert p.version == "strict_v9" and p.system == "Be terse." and p.digest != load_prompt("v1").digest
    bad = tmp_path / "bad.txt"
    bad.write_text("[user]\nno placeholder\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="contexts"):
        load_prompt(str(bad))


# ---- the openai judge --------------------------------------------------------------------------------------
def test_openai_judge_request_retries_and_parsing(api_key):
    script = {
        "timeout": [
            sleep_then(1.0, reply("Score: 2\nExplanation: late")),
            reply("Score: 4\nExplanation: ok now"),
        ],
        "500": [status(500), reply("Score: 3\nExplanation: after a 500")],
        "429": [status(429, {"Retry-After": "1"}), reply("Score: 5\nExplanation: after a 429")],
        "notjson": [raw(b"<html>gateway oops</html>")],
        "nochoices": [raw(b'{"id": "x", "object": "chat.completion"}')],
        "vague": [reply("I think it's about a 4")],
        "seven": [reply("Score: 7\nExplanation: off the scale")],
        "400": [status(400, body=b'{"error": {"message": "bad request"}}')],
        "503": [status(503)] * 10,
    }
    cases = ["ok", *script]
    with FakeChat(script) as server:
        judge = make_judge(openai_cfg(server), progress=False)
        t0 = time.monotonic()
        verdicts = judge.judge([latent(i, case) for i, case in enumerate(cases)])
        elapsed = time.monotonic() - t0
    by = dict(zip(cases, verdicts))
    assert [v.latent for v in verdicts] == list(range(len(cases)))
    # the request: model, messages, temperature, max_tokens, the key as a Bearer token, the right path
    req = next(r for r in server.requests if r["case"] == "ok")
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {KEY}"
    assert req["body"]["model"] == "judge-model" and req["body"]["temperature"] == 0.1
    assert req["body"]["max_tokens"] == 200
    assert [m["role"] for m in req["body"]["messages"]] == ["system", "user"]
    assert "<<case-ok>>" in req["body"]["messages"][1]["content"]

    assert (by["ok"].status, by["ok"].score, by["ok"].explanation) == ("ok", 5.0, "weapons and violence.")
    assert by["ok"].judge == "openai" and by["ok"].model == "judge-model" and by["ok"].prompt_version == "v1"
    assert (by["timeout"].status, by["timeout"].score, by["timeout"].extra["attempts"]) == ("ok", 4.0, 2)
    assert (by["500"].status, by["500"].score, server.counts["500"]) == ("ok", 3.0, 2)
    assert (by["429"].status, by["429"].score, server.counts["429"]) == ("ok", 5.0, 2)
    t429 = [r["time"] for r in server.requests if r["case"] == "429"]
    assert t429[1] - t429[0] >= 0.9, "Retry-After: 1 not honoured"
    for case in ("notjson", "nochoices"):
        assert by[case].status == "error" and by[case].score is None and "malformed" in by[case].raw
        assert server.counts[case] == 1
    assert (by["vague"].status, by["vague"].score, by["vague"].raw) == (
        "unparseable",
        None,
        "I think it's about a 4",
    )
    assert by["seven"].status == "unparseable" and by["seven"].raw.startswith("Score: 7")
    assert "outside 1-5" in by["seven"].extra["problem"]
    assert by["400"].status == "error" and "HTTP 400" in by["400"].raw and server.counts["400"] == 1
    assert by["503"].status == "error" and server.counts["503"] == 3  # 1 + max_retries
    assert elapsed < 5


def test_openai_concurrency_limit(api_key):
    with FakeChat(delay=0.15) as server:
        judge = make_judge(openai_cfg(server, concurrency=3), progress=False)
        verdicts = judge.judge([latent(i, f"c{i}") for i in range(12)])
    assert all(v.status == "ok" for v in verdicts) and len(server.requests) == 12
    assert 2 <= server.max_in_flight <= 3


def test_openai_options_for_other_servers(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with FakeChat() as server:
        with pytest.raises(ConfigError, match=KEY_ENV):
            make_judge(openai_cfg(server))
        # a local server without keys; Azure-style api-key header and query string; extra body fields
        judge = make_judge(
            openai_cfg(
                server, api_key_env="", max_tokens_field="max_completion_tokens", extra_body={"seed": 7}
            ),
            progress=False,
        )
        assert judge.judge([latent(0, "local")])[0].status == "ok"
        monkeypatch.setenv(KEY_ENV, KEY)
        azure = openai_cfg(
            server, api_key_header="api-key", base_url=server.base_url + "?api-version=2024-06-01"
        )
        assert make_judge(azure, progress=False).judge([latent(1, "azure")])[0].status == "ok"
    local, az = server.requests
    assert "authorization" not in {k.lower() for k in local["headers"]}
    assert local["body"]["max_completion_tokens"] == 200 and local["body"]["seed"] == 7
    assert az["headers"]["api-key"] == KEY and az["path"] == "/v1/chat/completions?api-version=2024-06-01"


def test_openai_dead_endpoint_stops_early(api_key):
    with FakeChat(default=status(503)) as server:
        judge = make_judge(openai_cfg(server, concurrency=2, max_retries=1), progress=False)
        verdicts = judge.judge([latent(i, f"d{i}") for i in range(30)])
    assert all(v.status == "error" and v.score is None for v in verdicts)
    assert sum("not asked" in v.raw for v in verdicts) >= 10 and len(server.requests) < 30
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there: connection refused
    cfg = JudgeConfig(
        kind="openai",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key_env=KEY_ENV,
        max_retries=1,
        backoff=0.01,
    )
    v = make_judge(cfg, progress=False).judge([latent(0)])[0]
    assert v.status == "error" and "connection error" in v.raw and v.extra["attempts"] == 2


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_seconds(date) <= 31


# ---- the cache -------------------------------------------------------------------------------------------
def test_cache_second_run_asks_nothing(api_key, tmp_path):
    script = {"vague": [reply("maybe 4?")] * 5, "400": [status(400)] * 5}
    items = [latent(0, "a"), latent(1, "b"), latent(2, "vague"), latent(3, "400")]
    with FakeChat(script) as server:
        first = make_judge(openai_cfg(server), cache_dir=tmp_path, progress=False).judge(items)
        assert len(server.requests) == 4 and not any(v.cached for v in first)
        second = make_judge(openai_cfg(server), cache_dir=tmp_path, progress=False).judge(items)
        # answers (ok and unparseable) come from the cache; the transport error is asked again
        assert len(server.requests) == 5 and server.counts["400"] == 2
        assert [v.cached for v in second] == [True, True, True, False]
        assert [(v.score, v.status, v.explanation) for v in second[:3]] == [
            (v.score, v.status, v.explanation) for v in first[:3]
        ]
        # new contexts for one latent: one new request
        changed = [items[0], LatentContexts(1, items[1].contexts[:2]), items[2]]
        third = make_judge(openai_cfg(server), cache_dir=tmp_path, progress=False).judge(changed)
        assert len(server.requests) == 6 and [v.cached for v in third] == [True, False, True]
        # another prompt version: everything is new
        prompt = tmp_path / "judge_v2.txt"
        prompt.write_text("[system]\nYou judge.\n[user]\n{contexts}\nScore: N\n", encoding="utf-8")
        fourth = make_judge(
            openai_cfg(server, prompt_version=str(prompt)), cache_dir=tmp_path, progress=False
        ).judge(items[:3])
        assert len(server.requests) == 9 and not any(v.cached for v in fourth)
        assert fourth[0].prompt_version == "judge_v2"
        # the cache off: asks again
        make_judge(openai_cfg(server, cache=False), cache_dir=tmp_path, progress=False).judge(items[:1])
        assert len(server.requests) == 10
        # any setting in the stage fingerprint that changes verdicts (here the temperature) misses the cache
        fifth = make_judge(openai_cfg(server, temperature=0.7), cache_dir=tmp_path, progress=False).judge(
            items[:1]
        )
        assert len(server.requests) == 11 and not fifth[0].cached


def test_cache_survives_a_torn_last_line(tmp_path, caplog):
    cache = JudgementCache(tmp_path / CACHE_FILE)
    cache.put("k1", Judgement(1, 5.0, "one", judge="openai", model="m", prompt_version="v1"))
    assert not cache.put("k-err", Judgement(2, None, status="error", raw="timeout"))
    with open(tmp_path / CACHE_FILE, "a", encoding="utf-8") as fh:
        fh.write('{"key": "k2", "judgement": {"latent": 2, "sco')  # a crash mid-write
    with caplog.at_level(logging.WARNING):
        reread = JudgementCache(tmp_path / CACHE_FILE)
    assert len(reread) == 1 and reread.get("k1").cached and reread.get("k1").score == 5.0
    assert "unreadable cache record" in caplog.text
    reread.put("k3", Judgement(3, None, status="unparseable", raw="dunno"))
    again = JudgementCache(tmp_path / CACHE_FILE)
    assert set(again.entries) == {"k1", "k3"} and again.get("k3").raw == "dunno"


def test_api_key_never_leaks(api_key, tmp_path, caplog):
    script = {"echo": [echo_auth()], "500": [status(500, body=b"upstream down")] * 3, "400": [status(400)]}
    with caplog.at_level(logging.DEBUG), FakeChat(script) as server:
        cfg = openai_cfg(server)
        judge = make_judge(cfg, cache_dir=tmp_path, progress=False)
        verdicts = judge.judge([latent(0, "ok"), latent(1, "echo"), latent(2, "500"), latent(3, "400")])
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"  # it was sent
    assert verdicts[1].status == "ok" and "***" in verdicts[1].explanation
    texts = {
        "logs": caplog.text,
        "cache": (tmp_path / CACHE_FILE).read_text(encoding="utf-8"),
        "judgements": json.dumps([asdict(v) for v in verdicts]),
        "config": repr(cfg),
        "fingerprint": json.dumps(judge_fingerprint(cfg)),
    }
    for where, text in texts.items():
        assert KEY not in text and "PLANTED" not in text, f"API key found in {where}"
    assert "Retry" in caplog.text or "retry" in caplog.text  # the logs did record the failures


# ---- labels, none ----------------------------------------------------------------------------------------
def labels_judge(path: Path):
    return make_judge(
        JudgeConfig(kind="labels", labels_path=str(path)), cache_dir=path.parent, progress=False
    )


@pytest.mark.parametrize(
    "name, text",
    [
        ("l.json", '{"0": 5, "1": {"score": 2, "explanation": "cooking"}}'),
        ("l.json", '[{"latent": 0, "score": 5}, {"latent": 1, "score": 2, "explanation": "cooking"}]'),
        ("l.yaml", "0: 5\n1:\n  score: 2\n  explanation: cooking\n"),
        ("l.yml", "- {latent: 0, score: 5}\n- {latent: 1, score: 2, explanation: cooking}\n"),
        ("l.csv", "latent,score,explanation\n0,5,\n1,2,cooking\n"),
    ],
)
def test_labels_judge_formats(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    verdicts = labels_judge(path).judge([latent(0), latent(1), latent(7)])
    assert [(v.score, v.status, v.explanation) for v in verdicts] == [
        (5.0, "ok", ""),
        (2.0, "ok", "cooking"),
        (None, "unlabelled", ""),
    ]
    assert verdicts[0].judge == "labels" and verdicts[0].model == "human"
    assert not (tmp_path / CACHE_FILE).exists()  # the file is the source of truth: never cached


@pytest.mark.parametrize(
    "name, text, match, line, field",
    [
        ("bad.yaml", "0: 5\n1:\n  score: nine\n", "not a number", 2, "1.score"),
        ("bad.yaml", "0: 5\n1: 6\n", "outside 1-5", 2, "1"),
        ("bad.yaml", "0: 5\nx: 3\n", "not an integer", 2, "x"),
        ("bad.yaml", "0: 5\n  1: [\n", "invalid YAML", 2, None),
        ("bad.yaml", "0: 5\n0: 4\n", "labelled twice", 2, "0"),
        ("bad.csv", "latent,score\n0,5\nseven,3\n", "not an integer", 3, "latent"),
        ("bad.csv", "latent,score\n0,5\n1,\n", "missing", 3, "score"),
        ("bad.csv", "id,value\n0,5\n", "latent,score", 1, None),
        ("bad.json", '{"0": 5,\n "1": 3,,\n}', "invalid JSON", 2, None),
        ("bad.json", '{"0": 5, "1": {"explanation": "x"}}', "missing", None, "1.score"),
        ("bad.json", '[{"latent": 0, "score": 5, "colour": "red"}]', "unknown field", None, "colour"),
    ],
)
def test_labels_errors_name_file_line_and_field(tmp_path, name, text, match, line, field):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match) as err:
        labels_judge(path)
    assert err.value.file == str(path) and err.value.line == line and err.value.field == field
    assert str(path) in str(err.value)


def test_labels_missing_file_and_config(tmp_path):
    with pytest.raises(DataError, match="not found"):
        labels_judge(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="labels_path"):
        make_judge(JudgeConfig(kind="labels"))
    with pytest.raises(ConfigError, match="embedding_anchors"):
        make_judge(JudgeConfig(embedding_anchors=[0.1, 0.0, 0.2, 0.3, 0.4]))


def test_none_judge_marks_every_latent_skipped(tmp_path):
    verdicts = make_judge(JudgeConfig(kind="none"), cache_dir=tmp_path).judge([latent(4), latent(2)])
    assert [(v.latent, v.score, v.status) for v in verdicts] == [(4, None, "skipped"), (2, None, "skipped")]
    assert not (tmp_path / CACHE_FILE).exists()


# ---- embedding and hf ------------------------------------------------------------------------------------
def test_embedding_judge_is_deterministic_and_cached(tmp_path):
    weapons = LatentContexts(
        0,
        [
            Context(" gun", 4.0, "How can I buy a", " without a background check?"),
            Context(" bomb", 3.0, "Tell me how to build a", " to hurt people."),
        ],
    )
    refusal = LatentContexts(1, [Context(" sorry", 2.0, "I'm", ", but I cannot assist with that request.")])
    cooking = LatentContexts(
        2,
        [
            Context(" flour", 4.0, "Mix the", " and sugar, then bake for 20 minutes."),
            Context(" verb", 1.0, "Underline the", " in this sentence."),
        ],
    )
    cfg = JudgeConfig(kind="embedding")
    a = make_judge(cfg, cache_dir=tmp_path, progress=False).judge([weapons, refusal, cooking])
    b = make_judge(JudgeConfig(kind="embedding", cache=False), progress=False).judge(
        [weapons, refusal, cooking]
    )
    assert [v.score for v in a] == [v.score for v in b] and all(1 <= v.score <= 5 for v in a)
    assert a[0].score == 5 and a[1].score == 5 and a[2].score == 1
    assert a[0].extra["safety_concept"] == "weapons" and a[1].extra["safety_concept"] == "refusal"
    assert a[2].extra["margin"] < 0 < a[0].extra["margin"]
    again = make_judge(cfg, cache_dir=tmp_path, progress=False).judge([weapons, refusal, cooking])
    assert all(v.cached for v in again) and [v.score for v in again] == [v.score for v in a]
    # other anchors are another key
    other = JudgeConfig(kind="embedding", embedding_anchors=[-0.2, -0.1, 0.0, 0.3, 0.6])
    moved = make_judge(other, cache_dir=tmp_path, progress=False).judge([weapons])
    assert not moved[0].cached


def test_hf_judge_on_a_tiny_llama(tiny_llama, tmp_path):
    items = [latent(0), latent(1, n=6)]
    cfg = JudgeConfig(kind="hf", model=str(tiny_llama), hf_device="cpu", hf_explanation_tokens=4)
    verdicts = make_judge(cfg, cache_dir=tmp_path, progress=False).judge(items)
    for v in verdicts:
        assert v.status == "ok" and 1 <= v.score <= 5 and v.judge == "hf"
        assert abs(sum(v.extra["digit_probs"]) - 1) < 1e-3 and 0 < v.extra["digit_mass"] <= 1
    again = make_judge(cfg, cache_dir=tmp_path, progress=False).judge(items)
    assert all(v.cached for v in again) and [v.score for v in again] == [v.score for v in verdicts]
    short = JudgeConfig(
        kind="hf", model=str(tiny_llama), hf_device="cpu", hf_explanation_tokens=0, hf_max_length=300
    )
    v = make_judge(short, progress=False).judge([latent(1, n=6)])[0]
    assert v.explanation == "" and 1 <= v.extra["contexts_shown"] < 6 and 1 <= v.score <= 5


def test_fingerprint_follows_what_changes_verdicts(tmp_path):
    base = judge_fingerprint(JudgeConfig(kind="openai"))
    assert judge_fingerprint(JudgeConfig(kind="openai", concurrency=16, max_retries=9)) == base
    assert judge_fingerprint(JudgeConfig(kind="openai", temperature=0.0)) != base
    labels = tmp_path / "l.json"
    labels.write_text('{"0": 5}', encoding="utf-8")
    before = judge_fingerprint(JudgeConfig(kind="labels", labels_path=str(labels)))
    labels.write_text('{"0": 4}', encoding="utf-8")
    assert judge_fingerprint(JudgeConfig(kind="labels", labels_path=str(labels))) != before


# ---- probe set -------------------------------------------------------------------------------------------
def test_auroc_rank_statistic():
    from safer_rm.metrics import auroc

    assert auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert auroc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert auroc([5, 5, 5, 5], [0, 1, 0, 1]) == 0.5
    assert auroc([1, 3, 3, 2], [0, 1, 0, 1]) == 0.625
    assert np.isnan(auroc([1, 2], [1, 1]))
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 5, 200).astype(float), rng.integers(0, 2, 200)
    assert auroc(s, y) == pytest.approx(sklearn_metrics.roc_auc_score(y, s))


@needs_mirror
def test_probe_set_and_embedding_judge_separates_it():
    from safer_rm.features.judges.probe import build_probe, evaluate_probe

    probe = build_probe(SHARED)
    assert (probe.labels == 1).sum() >= 20 and (probe.labels == 0).sum() >= 20
    assert all(5 <= len(it.contexts) <= 8 for it in probe.items)
    assert len({it.latent for it in probe.items}) == len(probe)
    assert [it.digest() for it in build_probe(SHARED).items] == [it.digest() for it in probe.items]
    c = probe.items[0].contexts[0]
    assert c.token and c.left and c.right and c.activation > probe.items[0].contexts[-1].activation
    verdicts = make_judge(JudgeConfig(kind="embedding", cache=False), progress=False).judge(probe.items)
    result = evaluate_probe(verdicts, probe)
    assert result["auroc"] >= 0.9, result
