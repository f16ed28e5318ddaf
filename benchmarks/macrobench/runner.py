"""Each variant alone in a fresh subprocess (``_variant.py``), with the right interpreter.

Ours and the bare pool run under this Python with this repository first on the path; the seed
runs under its own venv's Python (``seed_env.py``), so that both packages named
``llm_api_client`` never meet in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import seed_env

BENCHMARKS = Path(__file__).resolve().parent.parent
ROOT = BENCHMARKS.parent
# litellm's per-request timeout (its REQUEST_TIMEOUT variable) in every variant. Now and then a
# call never gets its answer and waits for the default 600 s, stalling a whole run; with this
# it fails after a minute and shows as unanswered.
REQUEST_TIMEOUT_SECONDS = 60


@dataclass
class Runner:
    """Starts variants in fresh subprocesses; keeps the stderr tail of those that failed."""

    seed_python: Path | None
    seed_reason: str | None
    log: Callable[[str], None]
    tails: dict[str, str] = field(default_factory=dict)

    def run(self, label: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The variant's ``RESULT`` dict, or ``{"error": why}``."""
        if spec["kind"] == "seed" and self.seed_python is None:
            return {"error": f"seed unavailable: {self.seed_reason}"}
        python, env, cwd = self._interpreter(spec)
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [str(python), str(BENCHMARKS / "_variant.py"), json.dumps(spec)],
                capture_output=True,
                text=True,
                env=env,
                cwd=cwd,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        result = parse_result(done.stdout)
        if result is None:
            tail = " / ".join(done.stderr.strip().splitlines()[-4:])
            self.tails[label] = done.stderr[-4000:]
            return {"error": f"exit {done.returncode}: {tail[-300:]}"}
        self.log(f"  {label}: {time.perf_counter() - started:.0f} s")
        return result

    def _interpreter(self, spec: dict[str, Any]) -> tuple[Path, dict[str, str], str]:
        if spec["kind"] == "seed":
            assert self.seed_python is not None
            # The seed's sanitizer drops api_base/api_key from requests (they are not among
            # the model's supported params), so the endpoint goes through the environment.
            sim_base = spec.get("phases", [spec])[0]["sim"] + "/v1"
            extra = {"OPENAI_API_BASE": sim_base, "OPENAI_BASE_URL": sim_base}
            extra["OPENAI_API_KEY"] = "x"
            extra["REQUEST_TIMEOUT"] = str(REQUEST_TIMEOUT_SECONDS)
            return self.seed_python, seed_env.seed_env(extra), "/"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        env["REQUEST_TIMEOUT"] = str(REQUEST_TIMEOUT_SECONDS)
        return Path(sys.executable), env, str(ROOT)


def parse_result(stdout: str) -> dict[str, Any] | None:
    """The last ``RESULT {json}`` line a variant printed, or None."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            parsed: dict[str, Any] = json.loads(line[7:])
            return parsed
    return None


def make_runner(need_seed: bool, log: Callable[[str], None]) -> Runner:
    """A runner with the seed's interpreter (its venv made on first use) when it is needed."""
    if not need_seed:
        return Runner(None, "not needed", log)
    try:
        return Runner(seed_env.seed_python(), None, log)
    except seed_env.SeedUnavailable as exc:
        log(f"seed 0.1.8 unavailable: {exc}")
        return Runner(None, str(exc), log)
