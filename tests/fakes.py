"""Fakes behind the completion boundary: they behave like ``litellm.completion`` without HTTP.

``FakeCompletion`` answers by echoing the last user message, and obeys markers in it:
``#fail=<status>`` raises the litellm error for that status, ``#sleep=<seconds>`` waits first,
``#crash`` kills the calling process (a worker) the first time it is seen in a given flag file.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llm_api_client import _offline

litellm = _offline.litellm()

_MARKER = re.compile(r"#(fail|sleep|crash)(?:=([\w.]+))?")


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def make_response(model: str, content: str, prompt_tokens: int = 10, completion_tokens: int = 5):
    return litellm.ModelResponse(
        id="chatcmpl-fake",
        model=model,
        choices=[
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
        usage={
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    )


def status_error(status: int, model: str) -> Exception:
    request = httpx.Request("POST", "http://fake/v1/chat/completions")
    response = httpx.Response(status, request=request, headers={"retry-after-ms": "10"})
    kwargs = {"message": f"fake {status}", "llm_provider": "openai", "model": model}
    if status == 400:
        return litellm.BadRequestError(response=response, **kwargs)
    if status == 429:
        return litellm.RateLimitError(response=response, **kwargs)
    if status == 401:
        return litellm.AuthenticationError(response=response, **kwargs)
    return litellm.InternalServerError(response=response, **kwargs)


class FakeCompletion:
    """A picklable stand-in for ``litellm.completion``."""

    def __init__(self, crash_flag: str | None = None) -> None:
        self.crash_flag = crash_flag

    def __call__(self, *, model: str, messages: list[dict[str, Any]], **kwargs: Any):
        text = last_user_text(messages)
        for kind, value in _MARKER.findall(text):
            if kind == "sleep":
                time.sleep(float(value))
            elif kind == "fail":
                raise status_error(int(value), model)
            elif kind == "crash":
                self._crash_once()
        return make_response(model, f"echo: {text}")

    def _crash_once(self) -> None:
        if self.crash_flag is None or os.path.exists(self.crash_flag):
            return
        with open(self.crash_flag, "w") as flag:
            flag.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


def chat(text: str, model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture
def no_given_prices(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``--price`` sets prices for the whole process: a test using it starts and ends without."""
    from llm_api_client.providers import pricing

    monkeypatch.setattr(pricing, "_given", {})
    pricing.clear_cache()
    yield
    pricing.clear_cache()
