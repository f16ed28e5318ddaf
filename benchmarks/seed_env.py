"""The published llm-api-client 0.1.8 (the seed), in its own virtual environment.

Both packages are called ``llm_api_client``, so the seed can never be imported next to this one:
it lives in ``benchmarks/.seed-venv/`` (git-ignored, created on first use with
``pip install llm-api-client==0.1.8``) and the benchmarks run it in a subprocess of that venv's
Python. When the venv cannot be made (no network, no PyPI), ``seed_python()`` raises
``SeedUnavailable`` with the reason and the benchmarks print "unavailable" in the seed's rows.

    python benchmarks/seed_env.py          # create (or check) the venv, print its python
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

SEED_REQUIREMENT = "llm-api-client==0.1.8"
SEED_VERSION = "0.1.8"
DEFAULT_VENV = Path(__file__).resolve().parent / ".seed-venv"
# pip resolves and downloads litellm and its dependencies: about a minute here.
INSTALL_TIMEOUT_SECONDS = 900
CHECK_TIMEOUT_SECONDS = 120


class SeedUnavailable(RuntimeError):
    """The seed's venv could not be created or does not import; the message says why."""


def venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def seed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a process of the seed's venv.

    No ``PYTHONPATH`` (it would put this repository's ``llm_api_client`` first), litellm's bundled
    price map (there is no network), plus ``extra``.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.update(extra or {})
    return env


def installed_version(python: Path) -> str | None:
    """The seed's version as its venv reports it, or None when it does not import."""
    code = "import importlib.metadata as m; print(m.version('llm-api-client'))"
    try:
        done = subprocess.run(
            [str(python), "-c", code],
            capture_output=True,
            text=True,
            env=seed_env(),
            timeout=CHECK_TIMEOUT_SECONDS,
            cwd="/",
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def create(path: Path) -> None:
    """Create the venv and install the seed into it; raise ``SeedUnavailable`` on failure."""
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(path)
    except Exception as exc:  # venv raises many kinds; all mean the same thing here
        raise SeedUnavailable(f"could not create a venv at {path}: {exc!r}") from exc
    command = [str(venv_python(path)), "-m", "pip", "install", "-q", SEED_REQUIREMENT]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SeedUnavailable(f"pip install {SEED_REQUIREMENT} failed: {exc!r}") from exc
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise SeedUnavailable(f"pip install {SEED_REQUIREMENT} failed: {tail}")


def seed_python(path: Path = DEFAULT_VENV, *, log: bool = True) -> Path:
    """The seed venv's Python, creating the venv on first use."""
    python = venv_python(path)
    if python.exists() and installed_version(python) == SEED_VERSION:
        return python
    if log:
        print(f"creating {path} with {SEED_REQUIREMENT} (about a minute)...", file=sys.stderr)
    create(path)
    version = installed_version(python)
    if version != SEED_VERSION:
        raise SeedUnavailable(f"the seed venv reports version {version!r}, not {SEED_VERSION}")
    return python


def main() -> int:
    try:
        print(seed_python())
    except SeedUnavailable as exc:
        print(f"seed unavailable: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
