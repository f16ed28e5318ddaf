"""``run --dry-run``: what a batch file will send, cost and take, with nothing sent.

Every line is read and validated as the engine would (``prepare_request``: the request checks,
sanitize, the fit to the context window, the token count), with the run's defaults applied and
the rows an existing output already answered left out. The projection::

    requests            rows that would be sent
    prompt tokens       counted as the rate limiter counts them
    max output tokens   max_tokens (or max_completion_tokens) x n; 1,024 when a row sets none
    cost, at most       every answer as long as its max_tokens allows
    cost, expected      prompt + expected output; the expected output of a row is the mean
                        completion of the rows the output already answered (capped at the row's
                        max_tokens), or half its max_tokens when nothing is answered yet
    time                the longest of requests / RPM, (prompt + max output) / TPM and the
                        input and output token limits: the least the run can take at the
                        configured limits (latency and retries only add to it)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from llm_api_client.errors import RequestError
from llm_api_client.jobs.batchfile import BatchRequest, DuplicateLine, InputReader
from llm_api_client.jobs.driver import JobOptions
from llm_api_client.jobs.progress import format_duration, format_usd
from llm_api_client.jobs.spend import Answered, answered
from llm_api_client.prepare.request import prepare_request
from llm_api_client.providers import pricing

__all__ = ["Limits", "Projection", "dry_run", "project", "report"]

# With no answer to learn from, a row's expected output is this fraction of its max_tokens.
EXPECTED_OUTPUT_FRACTION = 0.5
# Problems (malformed or refused lines) printed in full; the rest are only counted.
MAX_PROBLEMS_SHOWN = 20


@dataclass(frozen=True)
class Limits:
    """The client's per-minute limits; ``None``: unlimited."""

    requests: float | None = None
    tokens: float | None = None
    input_tokens: float | None = None
    output_tokens: float | None = None


@dataclass
class Projection:
    """Totals over the rows a run would send."""

    requests: int = 0
    prompt_tokens: int = 0
    max_output_tokens: int = 0
    cost_at_most: float = 0.0
    cost_expected: float = 0.0
    already_done: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)
    models: dict[str, int] = field(default_factory=dict)

    def add(self, model: str, prompt: int, max_output: int, expected_output: float) -> None:
        self.requests += 1
        self.prompt_tokens += prompt
        self.max_output_tokens += max_output
        self.cost_at_most += pricing.cost_of(model, prompt, max_output)
        self.cost_expected += pricing.cost_of(model, prompt, round(expected_output))
        self.models[model] = self.models.get(model, 0) + 1

    def minutes(self, limits: Limits) -> tuple[float, str]:
        """The least time the requests take at ``limits``, and the limit that sets it."""
        demands = [
            (self.requests, limits.requests, "requests per minute"),
            (self.prompt_tokens + self.max_output_tokens, limits.tokens, "tokens per minute"),
            (self.prompt_tokens, limits.input_tokens, "input tokens per minute"),
            (self.max_output_tokens, limits.output_tokens, "output tokens per minute"),
        ]
        bound = [(amount / limit, name) for amount, limit, name in demands if limit]
        return max(bound, default=(0.0, "no limit"))

    def unpriced(self) -> list[str]:
        return [model for model in self.models if not pricing.is_priced(model)]


def project(
    reader: InputReader,
    defaults: Mapping[str, Any],
    expected_completion: float | None,
    sanitize: bool = True,
) -> Projection:
    """Validate and count every row ``reader`` yields, as the engine would, sending nothing."""
    projection = Projection()
    for entry in reader:
        if isinstance(entry, DuplicateLine):
            projection.duplicates += 1
        elif isinstance(entry, BatchRequest):
            _add_request(projection, entry, defaults, expected_completion, sanitize)
        else:
            projection.problems.append(f"line {entry.line_number}: {entry.message}")
    projection.already_done = reader.already_done
    return projection


def _add_request(
    projection: Projection,
    entry: BatchRequest,
    defaults: Mapping[str, Any],
    expected_completion: float | None,
    sanitize: bool,
) -> None:
    body = {**defaults, **entry.body}
    try:
        prepared = prepare_request(body, index=entry.line_number, sanitize=sanitize)
    except RequestError as exc:
        projection.problems.append(f"line {entry.line_number}: {exc.message}")
        return
    max_output = prepared.cost.output_tokens
    expected = max_output * EXPECTED_OUTPUT_FRACTION
    if expected_completion is not None:
        expected = min(float(max_output), expected_completion)
    projection.add(prepared.model, prepared.cost.input_tokens, max_output, expected)


def report(
    projection: Projection, limits: Limits, done: Answered, out: TextIO, max_cost: float | None
) -> None:
    """Print the projection for a person: one fact per line."""
    for line in _report_lines(projection, limits, done, max_cost):
        print(line, file=out)


def _report_lines(
    p: Projection, limits: Limits, done: Answered, max_cost: float | None
) -> Iterator[str]:
    minutes, binding = p.minutes(limits)
    yield "dry run: nothing was sent"
    yield f"requests:           {p.requests:,}"
    yield f"prompt tokens:      {p.prompt_tokens:,}"
    yield f"max output tokens:  {p.max_output_tokens:,}"
    yield f"cost, at most:      {format_usd(p.cost_at_most)} (every answer at its max_tokens)"
    yield f"cost, expected:     {format_usd(p.cost_expected)} ({_expectation(done)})"
    yield f"time, at least:     {format_duration(minutes * 60)} (set by the {binding} limit)"
    yield from _file_lines(p, done, max_cost)
    yield from (f"model {m}: no known price, counted as $0 above" for m in p.unpriced())
    yield from p.problems[:MAX_PROBLEMS_SHOWN]
    if len(p.problems) > MAX_PROBLEMS_SHOWN:
        yield f"... and {len(p.problems) - MAX_PROBLEMS_SHOWN:,} more lines that would fail"


def _file_lines(p: Projection, done: Answered, max_cost: float | None) -> Iterator[str]:
    yield (
        f"rows: {p.already_done:,} already answered, {len(p.problems):,} would fail, "
        f"{p.duplicates:,} duplicate ids skipped"
    )
    if done.ids:
        yield f"already spent on this output: {format_usd(done.cost)}"
    if max_cost is not None:
        left = max(0.0, max_cost - done.cost)
        yield f"--max-cost {format_usd(max_cost)}: {format_usd(left)} left for this run"


def _expectation(done: Answered) -> str:
    mean = done.mean_completion
    if mean is None:
        return "answers at half their max_tokens: nothing answered yet to learn from"
    return f"answers of {mean:,.0f} tokens, the mean of the {len(done.ids):,} already answered"


def dry_run(options: JobOptions, limits: Limits, out: TextIO) -> int:
    """Project ``options``' job on ``out``: 0 when every row can be sent, 1 when some would
    fail (malformed or refused lines). Reads the input and the output; writes nothing."""
    done = answered(options.output)
    reader = InputReader(options.input, done=done.ids)
    projection = project(reader, options.defaults, done.mean_completion, options.sanitize)
    report(projection, limits, done, out, options.max_cost)
    return 1 if projection.problems else 0
