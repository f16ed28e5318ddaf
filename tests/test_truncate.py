"""Context truncation: windows, dropping oldest turns, tool groups, shortening, errors."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from llm_api_client._constants import (
    DEFAULT_MAX_CONTEXT_TOKENS_FALLBACK,
    DEFAULT_MAX_OUTPUT_TOKENS,
    TRUNCATION_MARKER,
)
from llm_api_client.errors import ContextWindowTooSmallError
from llm_api_client.prepare.chat_tokens import count_request_tokens
from llm_api_client.prepare.truncate import (
    ContextWindow,
    context_window,
    fit_and_count,
    fit_to_context,
)

OVERRIDE = "MAX_INPUT_TOKENS_OVERRIDE"
FALLBACK = "MAX_CONTEXT_TOKENS_FALLBACK"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OVERRIDE, raising=False)
    monkeypatch.delenv(FALLBACK, raising=False)


def fake_count(request: Mapping[str, Any]) -> int:
    """One token per character of text content plus one per message: easy to reason about."""
    total = 0
    for message in request["messages"]:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content)
        total += 1 + len(content or "")
    return total


def msg(role: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": text, **extra}


def texts(request: Mapping[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"]]


# --------------------------------------------------------------------------------------------
# Windows.


@pytest.mark.parametrize(
    ("model", "env", "expected"),
    [
        ("gpt-4o-mini", {}, ContextWindow(128_000, 16_384, True, "litellm")),
        ("openai/gpt-4o-mini", {}, ContextWindow(128_000, 16_384, True, "litellm")),
        ("gpt-4", {}, ContextWindow(8_192, 4_096, True, "litellm")),
        ("gpt-4o-mini", {OVERRIDE: "5000"}, ContextWindow(5_000, None, False, "override")),
        (
            "sim-unknown",
            {},
            ContextWindow(DEFAULT_MAX_CONTEXT_TOKENS_FALLBACK, None, True, "fallback"),
        ),
        ("sim-unknown", {FALLBACK: "4096"}, ContextWindow(4_096, None, True, "fallback")),
        ("gpt-4o-mini", {FALLBACK: "4096"}, ContextWindow(128_000, 16_384, True, "litellm")),
        ("gpt-4o-mini", {OVERRIDE: "lots"}, ContextWindow(128_000, 16_384, True, "litellm")),
        ("gpt-4o-mini", {OVERRIDE: "-5"}, ContextWindow(128_000, 16_384, True, "litellm")),
        (
            "sim-unknown",
            {FALLBACK: "0"},
            ContextWindow(DEFAULT_MAX_CONTEXT_TOKENS_FALLBACK, None, True, "fallback"),
        ),
    ],
)
def test_context_window(
    model: str, env: dict[str, str], expected: ContextWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert context_window(model) == expected


def test_gemini_input_and_output_limits_are_separate() -> None:
    window = context_window("gemini/gemini-3.1-flash-lite-preview")
    assert window.source == "litellm" and window.shared is False


@pytest.mark.parametrize(
    ("params", "reserved"),
    [
        ({}, DEFAULT_MAX_OUTPUT_TOKENS),
        ({"max_tokens": 500}, 500),
        ({"max_completion_tokens": 300, "max_tokens": 500}, 300),
        ({"max_tokens": 100_000}, 16_384),  # capped at the model's maximum output
        ({"max_tokens": 100, "n": 4}, 100),  # n choices share one window each
    ],
)
def test_reserved_output_in_a_shared_window(params: dict[str, Any], reserved: int) -> None:
    window = context_window("gpt-4o-mini")
    request = {"model": "gpt-4o-mini", "messages": [], **params}
    assert window.reserved_output(request) == reserved
    assert window.input_budget(request) == 128_000 - reserved


def test_separate_window_reserves_nothing() -> None:
    window = ContextWindow(1000, 100, shared=False, source="litellm")
    assert window.input_budget({"max_tokens": 50}) == 1000


# --------------------------------------------------------------------------------------------
# Dropping turns, with the fake count and a forced window.

CONVERSATION = [
    msg("system", "S" * 10),
    msg("user", "u1" * 5),
    msg("assistant", "a1" * 5),
    msg("user", "u2" * 5),
    msg("assistant", "a2" * 5),
    msg("user", "u3" * 5),
]  # 6 messages x 11 = 66 tokens


@pytest.mark.parametrize(
    ("window", "kept_prefixes"),
    [
        (66, ["S", "u1", "a1", "u2", "a2", "u3"]),  # fits: unchanged
        (65, ["S", "a1", "u2", "a2", "u3"]),  # oldest non-system turn goes first
        (44, ["S", "u2", "a2", "u3"]),
        (33, ["S", "a2", "u3"]),
        (22, ["S", "u3"]),  # system and latest user always kept
    ],
)
def test_drops_oldest_turns_first(
    window: int, kept_prefixes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OVERRIDE, str(window))
    request = {"model": "gpt-4o-mini", "messages": CONVERSATION}
    fitted = fit_to_context(request, count=fake_count)
    assert [t[: len(p)] for t, p in zip(texts(fitted), kept_prefixes, strict=True)] == kept_prefixes
    assert fake_count(fitted) <= window


def test_returns_the_same_request_when_it_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    request = {"model": "gpt-4o-mini", "messages": CONVERSATION}
    assert fit_to_context(request, count=fake_count) is request
    fitted, total = fit_and_count(request, count=fake_count)
    assert fitted is request and total == 66


def test_tool_call_and_its_results_are_dropped_together(monkeypatch: pytest.MonkeyPatch) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        msg("system", "S" * 10),
        msg("user", "q" * 10),
        msg("assistant", "", tool_calls=[call]),
        msg("tool", "r" * 30, tool_call_id="c1"),
        msg("tool", "r" * 30, tool_call_id="c1"),
        msg("assistant", "x" * 10),
        msg("user", "last" * 3),
    ]
    # Dropping the first user turn is not enough; the tool group must go whole, not one result.
    monkeypatch.setenv(OVERRIDE, str(fake_count({"messages": messages}) - 20))
    fitted = fit_to_context({"model": "gpt-4o-mini", "messages": messages}, count=fake_count)
    roles = [m["role"] for m in fitted["messages"]]
    assert roles == ["system", "assistant", "user"]


def test_never_a_tool_result_without_its_call(monkeypatch: pytest.MonkeyPatch) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        msg("user", "q" * 10),
        msg("assistant", "", tool_calls=[call]),
        msg("tool", "r" * 10, tool_call_id="c1"),
        msg("user", "last"),
    ]
    for window in range(6, fake_count({"messages": messages}) + 1):
        monkeypatch.setenv(OVERRIDE, str(window))
        fitted = fit_to_context({"model": "gpt-4o-mini", "messages": messages}, count=fake_count)
        roles = [m["role"] for m in fitted["messages"]]
        assert "tool" not in roles or "assistant" in roles


def test_shortens_the_longest_text_keeping_head_and_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    document = "BEGIN " + "filler text " * 2000 + " END?"
    messages = [msg("system", "Be brief."), msg("user", document)]
    monkeypatch.setenv(OVERRIDE, "500")
    fitted, total = fit_and_count({"model": "gpt-4o-mini", "messages": messages})
    assert total <= 500 and total == count_request_tokens(fitted)
    shortened = fitted["messages"][1]["content"]
    assert shortened.startswith("BEGIN") and shortened.endswith("END?")
    assert TRUNCATION_MARKER in shortened
    assert fitted["messages"][0] == messages[0]


def test_shortens_text_parts_of_multi_part_content(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = [{"type": "text", "text": "short"}, {"type": "text", "text": "long " * 3000}]
    messages = [msg("user", "")]
    messages[0]["content"] = parts
    monkeypatch.setenv(OVERRIDE, "300")
    fitted, total = fit_and_count({"model": "gpt-4o", "messages": messages})
    assert total <= 300
    assert fitted["messages"][0]["content"][0] == parts[0]
    assert len(fitted["messages"][0]["content"][1]["text"]) < len(parts[1]["text"])


def test_shortening_converges_with_a_count_that_is_not_tiktoken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(OVERRIDE, "200")
    messages = [msg("system", "s" * 50), msg("user", "ab" * 1000)]
    fitted = fit_to_context({"model": "gpt-4o-mini", "messages": messages}, count=fake_count)
    assert fake_count(fitted) <= 200
    assert [m["role"] for m in fitted["messages"]] == ["system", "user"]


# --------------------------------------------------------------------------------------------
# Requests that cannot fit.


def test_cannot_fit_raises_before_sending_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "huge",
            "description": "d " * 400,
            "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
        },
    }
    monkeypatch.setenv(OVERRIDE, "100")
    secret = "sk-live-abcdefghijklmnop"
    request = {"model": "gpt-4o-mini", "messages": [msg("user", "hi")], "tools": [tool]}
    with pytest.raises(ContextWindowTooSmallError) as caught:
        fit_to_context({**request, "api_key": secret})
    text = str(caught.value)
    assert "gpt-4o-mini" in text and "100" in text and secret not in text
    assert getattr(caught.value, "max_input_tokens", None) == 100


def test_max_tokens_leaving_no_room_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FALLBACK, "100")
    request = {"model": "sim-unknown", "messages": [msg("user", "hi " * 200)], "max_tokens": 200}
    with pytest.raises(ContextWindowTooSmallError, match="no room"):
        fit_to_context(request)


def test_never_mutates_the_callers_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDE, "60")
    parts = [{"type": "text", "text": "long " * 300}]
    request = {
        "model": "gpt-4o",
        "messages": [*CONVERSATION, {"role": "user", "content": parts}],
    }
    before = copy.deepcopy(request)
    fitted = fit_to_context(request)
    assert request == before
    assert fitted is not request


# --------------------------------------------------------------------------------------------
# The acceptance case: a ~200k-token conversation to gpt-4o-mini fits its 128k window.


def long_conversation(turns: int, words_per_turn: int) -> list[dict[str, Any]]:
    vocabulary = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "zeta",
        "eta",
        "theta",
        "iota",
        "kappa",
        "lambda",
        "mu",
    ]
    text = " ".join(vocabulary[i % len(vocabulary)] for i in range(words_per_turn))
    messages = [msg("system", "You summarise conversations.")]
    for turn in range(turns):
        messages.append(msg("user" if turn % 2 == 0 else "assistant", f"turn {turn}: {text}"))
    messages.append(msg("user", "What did we agree on?"))
    return messages


def test_200k_token_conversation_to_gpt_4o_mini_fits_128k() -> None:
    messages = long_conversation(80, 2500)
    request = {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 256}
    assert count_request_tokens(request) > 195_000
    fitted, total = fit_and_count(request)
    assert total == count_request_tokens(fitted)
    assert 120_000 < total <= 128_000 - 256
    assert fitted["messages"][0] == messages[0]
    assert fitted["messages"][-1] == messages[-1]
    # The newest turns survive: what was dropped is a prefix of the middle.
    kept = fitted["messages"][1:-1]
    assert kept == messages[-1 - len(kept) : -1]


# --------------------------------------------------------------------------------------------
# Property: after fitting, the count is within the window and system + last user are kept.

role = st.sampled_from(["system", "user", "assistant", "user"])
words = st.lists(
    st.sampled_from(["lorem", "ipsum", "dolor", "sit", "amet", "é", "42"]), max_size=80
)
conversation = st.lists(
    st.tuples(role, words.map(" ".join)), min_size=1, max_size=12
).map(lambda pairs: [msg(r, t) for r, t in pairs])  # fmt: skip


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(messages=conversation, window=st.integers(min_value=20, max_value=400))
def test_property_fits_and_keeps_system_and_last_user(
    messages: list[dict[str, Any]], window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assume(any(m["role"] == "user" for m in messages))
    monkeypatch.setenv(OVERRIDE, str(window))
    request = {"model": "gpt-4o-mini", "messages": messages}
    try:
        fitted, total = fit_and_count(request)
    except ContextWindowTooSmallError:
        # Only when even empty kept messages exceed the window (framing alone).
        skeleton = [{**m, "content": ""} for m in messages if m["role"] == "system"]
        skeleton.append(msg("user", ""))
        assert count_request_tokens({"model": "gpt-4o-mini", "messages": skeleton}) > window - 8
        return
    assert total == count_request_tokens(fitted) <= window
    roles = [m["role"] for m in fitted["messages"]]
    assert roles.count("system") == [m["role"] for m in messages].count("system")
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    kept_user = [m for m in fitted["messages"] if m["role"] == "user"][-1]
    original = messages[last_user]["content"]
    assert (
        kept_user["content"] == original
        or TRUNCATION_MARKER in kept_user["content"]
        or (kept_user["content"] == "")
    )
