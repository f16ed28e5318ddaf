"""The simulator's settings: one frozen, picklable dataclass shared by the CLI and ``Simulator``."""

from __future__ import annotations

from dataclasses import dataclass, field

from llm_api_client._constants import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    SIMULATOR_COMPLETION_TOKENS,
    SIMULATOR_CONTEXT_WINDOW,
    SIMULATOR_WINDOW_SECONDS,
)
from llm_api_client.errors import ConfigurationError

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-3.5-turbo")
# text-embedding-3-small's (and ada-002's) vector length; ``dimensions`` may ask for fewer.
DEFAULT_EMBEDDING_DIMENSIONS = 1536


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulated provider behaves.

    ``rpm`` / ``tpm``: per-minute limits (None: unlimited), enforced over ``window_seconds``.
    ``latency_ms`` ± ``jitter_ms``: delay before each admitted request is answered.
    ``fail_rate`` / ``drop_rate`` / ``hang_rate``: chance per admitted request of a
    ``fail_status`` error, a dropped connection, or no answer at all (RNG seeded by ``seed``).
    ``context_window``: prompt + max output beyond this draws 400 context_length_exceeded
    (None: no check). ``completion_tokens``: answer length when max_tokens allows it.
    ``default_max_output_tokens``: output tokens charged when a request sets no max_tokens.
    ``stream_token_delay_ms``: in a streamed answer, the time between two output tokens (the
    first comes after ``latency_ms``, the time to first token).
    ``embedding_dimensions``: length of the vectors ``/v1/embeddings`` returns.
    ``api_key``: when set, a request whose ``Authorization: Bearer`` is another key (or none) is
    answered 401 ``invalid_api_key``, before anything else, as OpenAI does.
    """

    host: str = "127.0.0.1"
    port: int = 0
    rpm: float | None = None
    tpm: float | None = None
    window_seconds: float = SIMULATOR_WINDOW_SECONDS
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    hang_rate: float = 0.0
    fail_status: int = 500
    context_window: int | None = SIMULATOR_CONTEXT_WINDOW
    completion_tokens: int = SIMULATOR_COMPLETION_TOKENS
    default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
    seed: int | None = None
    stream_token_delay_ms: float = 0.0
    embedding_dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS
    models: tuple[str, ...] = DEFAULT_MODELS
    api_key: str | None = field(default=None, repr=False)  # a credential: never shown

    def __post_init__(self) -> None:
        for problem in _problems(self):
            raise ConfigurationError(f"simulator: {problem}")


def _problems(config: SimulatorConfig) -> list[str]:
    checks = [
        (config.port < 0 or config.port > 65535, f"port must be in 0..65535, got {config.port}"),
        (config.rpm is not None and config.rpm < 0, f"rpm must not be negative, got {config.rpm}"),
        (config.tpm is not None and config.tpm < 0, f"tpm must not be negative, got {config.tpm}"),
        (config.window_seconds <= 0, f"window_seconds must be > 0, got {config.window_seconds}"),
        (config.latency_ms < 0 or config.jitter_ms < 0, "latency_ms and jitter_ms must be >= 0"),
        (
            any(not 0 <= r <= 1 for r in (config.fail_rate, config.drop_rate, config.hang_rate)),
            "fail_rate, drop_rate and hang_rate must be within [0, 1]",
        ),
        (config.fail_rate + config.drop_rate + config.hang_rate > 1, "fault rates sum above 1"),
        (
            not 400 <= config.fail_status <= 599,
            f"fail_status must be 4xx/5xx: {config.fail_status}",
        ),
        (
            config.context_window is not None and config.context_window < 1,
            f"context_window must be positive, got {config.context_window}",
        ),
        (config.completion_tokens < 1, "completion_tokens must be at least 1"),
        (config.default_max_output_tokens < 1, "default_max_output_tokens must be at least 1"),
        (
            config.stream_token_delay_ms < 0,
            f"stream_token_delay_ms must be >= 0, got {config.stream_token_delay_ms}",
        ),
        (config.embedding_dimensions < 1, "embedding_dimensions must be at least 1"),
    ]
    return [message for failed, message in checks if failed]
