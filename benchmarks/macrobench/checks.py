"""Is a batch right? Echoes, tracker totals against the simulator's, every request answered.

A check is ``{"ok": bool, "problems": [str, ...]}``; a row's ``check`` merges those of its
batches, and a round that produced no batch at all is a problem too.
"""

from __future__ import annotations

from typing import Any

Check = dict[str, Any]


def check(result: dict[str, Any], stats: dict[str, Any], *, tracked: bool) -> Check:
    """Echoes all right, and (with a tracker) its totals equal the simulator's."""
    problems = []
    if result.get("wrong"):
        problems.append(f"{result['wrong']} responses not echoing their request")
    if tracked:
        t = result["tracker"]
        pairs = [
            ("calls", stats["answered"]),
            ("prompt", stats["prompt_tokens"]),
            ("completion", stats["completion_tokens"]),
        ]
        problems += [f"tracker {k} {t[k]} != simulator {v}" for k, v in pairs if t[k] != v]
    return found(problems)


def batch_check(result: dict[str, Any], stats: dict[str, Any], *, tracked: bool) -> Check:
    """``check`` plus "every request answered", whatever made a request fail."""
    return merge([check(result, stats, tracked=tracked), all_answered(result)])


def take_stats(result: dict[str, Any]) -> dict[str, Any]:
    """The simulator's stats of a batch; ``result`` keeps them without the bulky per-key map."""
    stats: dict[str, Any] = result.pop("stats")
    result["stats"] = {k: v for k, v in stats.items() if k != "received_by_key"}
    return stats


def all_answered(result: dict[str, Any]) -> Check:
    missing = result["n"] - result["ok"]
    return found([f"{missing} unanswered" + _by_type(result.get("errors"))] if missing else [])


def _by_type(errors: dict[str, Any] | None) -> str:
    if not errors:
        return ""
    return " (" + ", ".join(f"{name} x{e['count']}" for name, e in errors.items()) + ")"


def found(problems: list[str]) -> Check:
    """A check failed by each of ``problems`` (passed when there are none)."""
    return {"ok": not problems, "problems": problems}


def merge(checks: list[Check]) -> Check:
    return {
        "ok": all(c["ok"] for c in checks),
        "problems": [p for c in checks for p in c["problems"]],
    }
