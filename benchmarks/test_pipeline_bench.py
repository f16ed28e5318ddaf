"""How fast a request is prepared: token counting, sanitization, the whole prepare_request.

The coordinator prepares every request of million-request batches in one process, so each step
must cost microseconds. Texts are generated from a seeded random vocabulary, all distinct, so
neither tiktoken nor our short-text cache sees the same text twice where it would flatter.

    pytest benchmarks/test_pipeline_bench.py --benchmark-columns=min,mean,ops

On a shared machine, measure CPU time instead of wall time (what one core spends, whatever
else runs): add ``--benchmark-timer=time.process_time``.

``extra_info`` holds the figures that matter: tokens per second, microseconds per call, from
the best round (``min``) and the mean: on a shared machine the best round is the one least
disturbed by other processes. The short-text count cache is emptied before every round, so
what is measured is encoding, not the cache (except where a test says it measures the cache).
"""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from llm_api_client.prepare import chat_tokens as tokens_module
from llm_api_client.prepare.chat_tokens import (
    count_message_tokens,
    count_request_tokens,
    encoding_for_model,
)
from llm_api_client.prepare.request import prepare_request
from llm_api_client.prepare.sanitize import sanitize_request

RNG = random.Random(20241125)
VOCABULARY = [
    "".join(RNG.choice(string.ascii_lowercase) for _ in range(RNG.randint(1, 11)))
    for _ in range(20_000)
] + ["the", "of", "and", "to", "in", "is", "that", "for", "it", "as"] * 200


def prose(words: int) -> str:
    """Distinct, prose-like text: random words and punctuation (tokenizes like real text)."""
    chosen = RNG.choices(VOCABULARY, k=words)
    return " ".join(w + ("." if RNG.random() < 0.07 else "") for w in chosen)


SYSTEM = "You are a careful assistant. Answer in one short paragraph."


def short_request(i: int) -> dict[str, Any]:
    """A typical short chat request: shared system prompt, a distinct ~60-word question."""
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Question {i}: {prose(60)}?"},
        ],
        "temperature": 0.2,
        "max_tokens": 200,
    }


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4"])
def test_count_tokens_per_second_long_document(benchmark: Any, model: str) -> None:
    messages = [{"role": "user", "content": prose(150_000)}]
    tokens = count_message_tokens(messages, model)
    benchmark.pedantic(count_message_tokens, (messages, model), rounds=8, setup=_empty_cache)
    record_rate(benchmark, tokens)


def test_count_tokens_per_second_many_messages(benchmark: Any) -> None:
    # 400 distinct messages of ~600 characters: above the short-text cache, below one chunk.
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": prose(100)} for i in range(400)
    ]
    tokens = count_message_tokens(messages, "gpt-4o-mini")
    benchmark.pedantic(
        count_message_tokens, (messages, "gpt-4o-mini"), rounds=10, setup=_empty_cache
    )
    record_rate(benchmark, tokens)


def _empty_cache() -> None:
    tokens_module._short_counts.clear()


def record_rate(benchmark: Any, tokens: int) -> None:
    if benchmark.stats is None:  # --benchmark-disable: ran once, timed nothing
        return
    stats = benchmark.stats.stats
    benchmark.extra_info["tokens"] = tokens
    benchmark.extra_info["tokens_per_second_best"] = round(tokens / stats.min)
    benchmark.extra_info["tokens_per_second_mean"] = round(tokens / stats.mean)


def record_per_item(benchmark: Any, items: int, unit: str) -> None:
    if benchmark.stats is None:  # --benchmark-disable: ran once, timed nothing
        return
    stats = benchmark.stats.stats
    benchmark.extra_info[f"us_per_{unit}_best"] = round(stats.min / items * 1e6, 2)
    benchmark.extra_info[f"us_per_{unit}_mean"] = round(stats.mean / items * 1e6, 2)


BATCH = [short_request(i) for i in range(2_000)]


def test_count_short_requests_one_by_one(benchmark: Any) -> None:
    def run() -> list[int]:
        return [count_request_tokens(r) for r in BATCH]

    benchmark.pedantic(run, rounds=10, setup=_empty_cache)
    record_per_item(benchmark, len(BATCH), "request")


SHORT_TEXTS = [prose(60) for _ in range(2_000)]


def test_tiktoken_encode_ordinary_loop_short_texts(benchmark: Any) -> None:
    encode = encoding_for_model("gpt-4o").encode_ordinary
    benchmark.pedantic(lambda: [len(encode(t)) for t in SHORT_TEXTS], rounds=10)
    record_per_item(benchmark, len(SHORT_TEXTS), "text")


def test_tiktoken_encode_ordinary_batch_short_texts(benchmark: Any) -> None:
    # Why requests are counted one by one: the batch API's thread pool costs more per short text.
    encoding = encoding_for_model("gpt-4o")
    benchmark.pedantic(encoding.encode_ordinary_batch, (SHORT_TEXTS,), rounds=10)
    record_per_item(benchmark, len(SHORT_TEXTS), "text")


@pytest.mark.parametrize(
    ("name", "extra"),
    [("nothing to drop", {}), ("drops reasoning_effort", {"reasoning_effort": "low"})],
)
def test_sanitize_call(benchmark: Any, name: str, extra: dict[str, Any]) -> None:
    request = {**short_request(0), "api_key": "sk-x", "api_base": "http://127.0.0.1:1/v1", **extra}
    sanitize_request(request)  # warm litellm's answer into the per-model cache
    benchmark(sanitize_request, request)
    record_per_item(benchmark, 1, "call")


@pytest.mark.parametrize("sanitize", [True, False])
def test_prepare_request_typical_short_chat(benchmark: Any, sanitize: bool) -> None:
    # Every call prepares a request never seen before (its question is new; the system prompt
    # repeats, as in real batches, and its count comes from the cache after the first call).
    pool = iter(enumerate([short_request(i) for i in range(ROUNDS + 200)]))
    prepare_request(short_request(-1), index=0, sanitize=sanitize)  # warm per-model caches
    _empty_cache()

    def one() -> None:
        index, request = next(pool)
        prepare_request(request, index=index, sanitize=sanitize)

    benchmark.pedantic(one, rounds=ROUNDS, iterations=1, warmup_rounds=100)
    record_per_item(benchmark, 1, "request")
    benchmark.extra_info["prompt_tokens"] = count_request_tokens(short_request(0))


ROUNDS = 5_000


def test_prepare_request_repeated_request_cached_texts(benchmark: Any) -> None:
    # The floor: the same request again, so every text count is a cache hit.
    request = short_request(0)
    prepare_request(request, index=0)
    benchmark(prepare_request, request, index=0)
    record_per_item(benchmark, 1, "request")
