"""The simulator's pre-written chat completion body against the dict it stands for."""

from __future__ import annotations

import pytest

from llm_api_client.simulator.responses import Answer, chat_completion, chat_completion_body, dumps


def answer(**fields: object) -> Answer:
    base: dict[str, object] = {
        "completion_id": "chatcmpl-abc123",
        "model": "gpt-4o-mini",
        "content": "echo: hello",
        "n": 1,
        "tokens": 16,
        "finish_reason": "stop",
        "prompt_tokens": 8,
        "created": 1_700_000_000,
    }
    return Answer(**(base | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"n": 3, "tokens": 4, "finish_reason": "length"},
        {"content": 'echo: "quoted" \\ back\nslash\ttab \x01'},
        {"content": "echo: héllo wörld ✓ 日本語 \U0001f600"},
        {"model": "openai/gpt-4o", "completion_id": 'chatcmpl-"odd"'},
        {"prompt_tokens": 0, "tokens": 0, "content": ""},
        {"n": 128, "prompt_tokens": 10**9},
    ],
)
def test_the_written_body_is_the_encoded_dict_byte_for_byte(fields: dict[str, object]) -> None:
    given = answer(**fields)
    assert chat_completion_body(given) == dumps(chat_completion(given)).encode()
