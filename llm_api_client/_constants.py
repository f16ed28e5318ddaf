"""Tuning numbers in one place, each with where it comes from."""

from __future__ import annotations

# The seed's (llm-api-client 0.1.8) defaults, kept: approximately OpenAI tier 4 for gpt-4o-mini.
DEFAULT_MAX_REQUESTS_PER_MINUTE = 10_000
DEFAULT_MAX_TOKENS_PER_MINUTE = 2_000_000
DEFAULT_MAX_DELAY_SECONDS = 300.0

# A bucket holds this many seconds of its limit. Providers enforce per-minute limits over short
# windows (OpenAI: 600 RPM admits about 10 per second), so a whole minute's burst draws 429s.
# Half a second leaves the provider's own one-second window room to absorb network jitter.
DEFAULT_BURST_SECONDS = 0.5

# Output tokens charged at admission when a request sets neither max_tokens nor
# max_completion_tokens. OpenAI charges prompt + max_tokens against TPM at admission; with no
# max_tokens set it charges a default, which we approximate with this figure.
DEFAULT_MAX_OUTPUT_TOKENS = 1_024

# Retries: exponential backoff with full jitter between these bounds, unless the provider says
# how long to wait (retry-after-ms / retry-after), which we honour up to MAX_RETRY_AFTER_SECONDS.
# (openai-python uses 0.5 s initial and 8 s max; we allow longer because batch jobs prefer
# waiting to failing.)
INITIAL_RETRY_DELAY_SECONDS = 0.5
MAX_RETRY_DELAY_SECONDS = 30.0
MAX_RETRY_AFTER_SECONDS = 60.0

# One Python process sustains about 220-270 litellm calls/s on this class of machine (litellm
# spends 3.6-4.4 ms of CPU per call under the GIL). Plan each worker process for this share.
CALLS_PER_SECOND_PER_PROCESS = 150.0
# On the lean transport (plain OpenAI-compatible requests sent without litellm) a request costs
# about 1.8 ms of CPU in all at processes=0 (0.146x a bare litellm pool's 12.6 ms,
# benchmarks/lean_transport.py), and one process answered 265 requests/s at 0 ms on a loaded
# 2-core machine while 2 worker processes answered 82: pickling each answer through the pipes
# costs more than the litellm call it no longer hides. Planned at about 60% of the measured
# capacity, as above.
LEAN_CALLS_PER_SECOND_PER_PROCESS = 300.0

# Requests in flight by default: enough to reach the rate limit at the observed latency, capped
# (engine.sizing.LatencyWindow). Little's law: concurrency = rate x latency; 2 s until observed.
ASSUMED_LATENCY_SECONDS = 2.0
MAX_THREADS_PER_PROCESS = 256
# HTTP connections one process opens at most (litellm's and httpx's default); threads beyond it
# wait for a connection. See providers.http_pool for why idle ones are all kept.
MAX_CONNECTIONS_PER_PROCESS = 100
MIN_THREADS = 4

# Below this many requests a batch runs in the calling process (threads only): starting worker
# processes costs about a second, more than such a batch takes.
MIN_REQUESTS_FOR_PROCESSES = 500

# How often a worker checks that its parent is still alive (seconds).
PARENT_CHECK_INTERVAL_SECONDS = 0.5

# Default per-request timeout handed to litellm when the request sets none. litellm's own default
# is 600 s; a hung request should not hold a thread for ten minutes.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 120.0

# The simulator (llm_api_client.simulator). Its defaults mimic a strict OpenAI endpoint:
# - limits are enforced over one-second windows (OpenAI: 600 RPM admits about 10 per second);
SIMULATOR_WINDOW_SECONDS = 1.0
# - gpt-4o-mini's context window, so a prompt beyond it draws 400 context_length_exceeded;
SIMULATOR_CONTEXT_WINDOW = 128_000
# - short answers, so simulated runs spend little time generating: min(max_tokens, this) tokens.
SIMULATOR_COMPLETION_TOKENS = 16

# Rate limiter: the requests bucket always holds at least one whole request, even when
# burst_seconds of a low limit is less (60 RPM x 0.5 s = 0.5): admitting on half a request would
# let a request reach a provider whose own bucket has refilled only half of one.
MIN_REQUEST_BUCKET_CAPACITY = 1.0

# Rate-limit headers: a retry-after beyond this is garbage rather than advice (openai-python
# ignores values it cannot use the same way); the retry policy caps what it honours separately.
MAX_PLAUSIBLE_RETRY_AFTER_SECONDS = 24 * 3600.0

# --- Request preparation (prepare/chat_tokens.py, truncate.py) ---

# tiktoken encodes texts longer than this in chunks of this many characters. litellm's
# token_counter does the same (TIKTOKEN_ENCODE_CHUNK_SIZE_CHARS, default 1024), so counts agree;
# it also keeps encoding linear: tiktoken's merge loop is quadratic in one regex piece, and
# 2 MB of spaces overflows its stack (PanicException) when encoded whole (tiktoken 0.14).
TIKTOKEN_CHUNK_CHARS = 1_024

# Image tokens, OpenAI's vision guide: 85 base tokens plus 170 per 512-px tile (detail high).
# When the size is unknown (a URL we will not download), 765 is a 1024x1024 image (4 tiles).
IMAGE_BASE_TOKENS = 85
IMAGE_TILE_TOKENS = 170
IMAGE_UNKNOWN_SIZE_TOKENS = 765

# Audio, file and unknown content parts are estimated from their size at this many characters
# per token (litellm estimates media files the same way).
UNKNOWN_PART_CHARS_PER_TOKEN = 4

# Context window when litellm does not know the model, and the environment variables of the
# seed (llm-api-client 0.1.8): MAX_INPUT_TOKENS_OVERRIDE forces the input window,
# MAX_CONTEXT_TOKENS_FALLBACK replaces this default (the seed's 100,000).
DEFAULT_MAX_CONTEXT_TOKENS_FALLBACK = 100_000
MAX_INPUT_TOKENS_OVERRIDE_ENV = "MAX_INPUT_TOKENS_OVERRIDE"
MAX_CONTEXT_TOKENS_FALLBACK_ENV = "MAX_CONTEXT_TOKENS_FALLBACK"

# Marker left where fit_to_context cut text out of the middle of an over-long message.
TRUNCATION_MARKER = "\n[... truncated ...]\n"

# How long a 429 without retry-after / retry-after-ms pauses every admission. OpenAI's limits
# refill continuously over about a second, so one second lets the provider's window drain.
DEFAULT_RATE_LIMIT_PAUSE_SECONDS = 1.0

# Token counts of texts up to this long are cached (roles, names and system prompts repeat across
# a batch); at most this many entries (about 16 MB at worst), emptied when full.
SMALL_TEXT_CACHE_CHARS = 512
SMALL_TEXT_CACHE_ENTRIES = 32_768

# The shared limiter's lock is held for microseconds (a thread holding it may wait for the GIL
# behind a few hundred others, well under a second). A waiter that has not had it for
# LOCK_POLL_SECONDS looks whether the process holding it still exists and, if not (killed inside
# the critical section), takes it over: the others stall about this long (measured: 0.10 to
# 0.11 s after a SIGKILL, 10 runs on a loaded 2-core machine). A holder that cannot be
# identified (killed between taking the lock and writing its pid: microseconds) or that still
# exists after STALE_LOCK_SECONDS is overruled too, rather than hang every process.
LOCK_POLL_SECONDS = 0.1
STALE_LOCK_SECONDS = 30.0

# A provider that answers 429 without x-ratelimit-* headers (only retry-after) gives no limit to
# learn. A 429 for a request sent after the previous 429's pause, within REPEATED_429_SECONDS of
# that pause's end, shows the pace is still too high: every limited bucket then runs at
# RATE_DECREASE_ON_REPEATED_429 of its rate. A quarter less per round converges within a few
# rounds from twice the provider's limit and never undershoots it by more than a quarter; 429s
# further apart (a provider's passing overload) lower nothing. Providers' windows are a minute.
RATE_DECREASE_ON_REPEATED_429 = 0.75
REPEATED_429_SECONDS = 60.0

# A provider enforcing a per-minute limit per 1-s window holds one request in its window below
# 120 RPM: it refuses any arrival closer than 1/rate to the one before. Paced exactly at such a
# learned limit, the send jitter (thread wake-up, the connection) draws a 429 for about every
# other request (60 RPM at the simulator, 60 requests: 31 429s on one host, 25 on three over
# Redis). A learned requests limit below LOW_LIMIT_PER_MINUTE is therefore paced at
# LOW_LIMIT_PACE of it (60 RPM: one request every 1.053 s, 53 ms for the jitter).
LOW_LIMIT_PER_MINUTE = 120.0
LOW_LIMIT_PACE = 0.95

# Rate limiter slow start (``probe_seconds``): the first request goes alone and the others wait
# for the provider's first answer (its x-ratelimit-limit-* headers reach ``observe``), at most this
# long, polling this often. Measured against the simulator at 600 RPM with the client set to
# 100,000 RPM, 2 workers x 30 threads, 60 requests: 49 answered 429 without it, 0 with it. The
# answer usually comes after one latency; the cap matters only when none comes (no headers,
# connection errors), and must cover a cold worker's first litellm call (2-4 s under load).
DEFAULT_PROBE_SECONDS = 10.0
PROBE_POLL_SECONDS = 0.02

# APIClient(transport=...) and `run --transport`: the lean HTTP path for plain OpenAI-compatible
# chat completions where it reproduces litellm exactly ("auto"), litellm only, or lean only.
TRANSPORTS = ("auto", "litellm", "http")

# The asyncio API (``aio``): results the batch's driver thread may hand to the event loop before
# the loop takes them. Beyond it the driver waits, and so does the engine (bounded memory with a
# slow consumer); any number above a few keeps the driver from waiting on a loop that keeps up.
HANDOFF_RESULTS = 64

# The response cache's SQLite file: how long a writer waits for another process's write before
# failing. Each write is one short autocommitted statement (well under a millisecond), so only a
# stalled process (stopped, swapped out) holds the lock this long.
CACHE_BUSY_TIMEOUT_SECONDS = 30.0

# APIClient(cache_mode=...) and `run --cache-mode`: look up and store, store only, neither.
CACHE_MODES = ("use", "refresh", "off")

# The key guard (engine/keyguard.py): a key the provider has not yet accepted has at most
# AUTH_PROBATION_IN_FLIGHT requests in flight, and AUTH_FAILURES_TO_STOP refusals (401/403) in
# a row stop it for the batch. A wrong key thus draws at most about AUTH_PROBATION_IN_FLIGHT
# refusals, while a good key is held back only until its first answer (one latency).
AUTH_PROBATION_IN_FLIGHT = 8
AUTH_FAILURES_TO_STOP = 3

# Before its first import of litellm, this package checks that the host of litellm's current price
# map accepts a connection within this long; if not, litellm loads the map it ships instead of
# waiting out its own 5-s fetch timeout (an offline machine, a firewall).
PRICE_MAP_PROBE_SECONDS = 1.0
# RedisStore (ratelimit/redis_store.py). A quota's state expires after REDIS_IDLE_EXPIRY_SECONDS
# without an operation (an expired or lost state is made again empty, with slow start armed).
# Redis unreachable: an operation is tried again after REDIS_RETRY_FIRST_SECONDS, doubling up to
# REDIS_RETRY_MAX_SECONDS; a reservation until its max_delay, a claim or a refund until it gets
# through, a pause or learned limits for REDIS_NEWS_RETRY_SECONDS (then dropped: the next 429
# or answer says it again). A refund's token lives REDIS_REFUND_TOKEN_SECONDS, longer than any
# retry of it, so that a refund whose reply was lost is never applied twice.
REDIS_IDLE_EXPIRY_SECONDS = 3_600.0
REDIS_RETRY_FIRST_SECONDS = 0.05
REDIS_RETRY_MAX_SECONDS = 1.0
REDIS_NEWS_RETRY_SECONDS = 5.0
REDIS_REFUND_TOKEN_SECONDS = 600.0
REDIS_REFUND_RETRY_SECONDS = 300.0
# A Redis that does not answer within this is treated as unreachable (then retried as above).
REDIS_SOCKET_TIMEOUT_SECONDS = 2.0
# Waiters sleep on news (pub/sub) instead of polling: a held waiter (slow start) asks again at
# least every REDIS_HOLD_POLL_SECONDS, and any sleeper checks for cancellation every
# REDIS_NAP_SLICE_SECONDS. Provider answers that repeat the limits in force only lower levels to
# what remains; they are sent at most every REDIS_REMAINING_EVERY_SECONDS per store, which keeps
# the common case at one round trip (the reservation) per request.
REDIS_HOLD_POLL_SECONDS = 0.5
REDIS_NAP_SLICE_SECONDS = 0.25
REDIS_REMAINING_EVERY_SECONDS = 1.0

# APIClient.embed: inputs per embeddings request when the caller does not say. OpenAI takes up to
# 2,048 inputs (and 300,000 tokens) per request; 256 short texts stay far below both, and a
# failed request then costs at most 256 vectors (retried as one).
DEFAULT_EMBED_BATCH_SIZE = 256
