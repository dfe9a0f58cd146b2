"""Apply a policy to a whole response: redact what must be redacted, block what must not be released.

    result = apply_policy("mail bob@example.com", policy)
    result.text      # "mail <EMAIL>"
    result.verdicts  # [Verdict(allowed=False, category="pii.EMAIL", rule="pii", action="redact", ...)]
    result.blocked   # False

Overlapping redactions resolve like ``lmforge.pii``: earliest first, then longest. A block anywhere blocks
the whole response (``text`` is then empty). Fail closed: if a rule raises, the response is blocked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lmforge.compliance.policy import Policy
from lmforge.compliance.verdict import Verdict, fail_closed_verdict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilterResult:
    text: str
    verdicts: list[Verdict]
    blocked: bool


def apply_policy(text: str, policy: Policy) -> FilterResult:
    try:
        found = scan(text, policy)
        blocks = [v for v in found if v.action == "block"]
        redactions = choose_redactions(found)
        flags = [v for v in found if v.action == "flag"]
        verdicts = sorted(redactions + flags + blocks, key=_order)
        if blocks:
            return FilterResult("", verdicts, True)
        return FilterResult(render(text, redactions, 0, len(text)), verdicts, False)
    except Exception as err:  # fail closed: an unchecked response is never released
        log.exception("compliance filter failed; blocking the response")
        return FilterResult("", [fail_closed_verdict(f"{type(err).__name__}: {err}")], True)


def scan(text: str, policy: Policy) -> list[Verdict]:
    """Every candidate verdict of every rule, in span order (overlaps not yet resolved)."""
    return sorted((v for rule in policy.rules for v in rule.scan(text)), key=_order)


def choose_redactions(verdicts: list[Verdict]) -> list[Verdict]:
    """Non-overlapping redactions: earliest start first, then the longest."""
    chosen: list[Verdict] = []
    for v in sorted((v for v in verdicts if v.action == "redact"), key=_order):
        assert v.span is not None
        if not chosen or v.span[0] >= chosen[-1].span[1]:  # type: ignore[index]
            chosen.append(v)
    return chosen


def render(text: str, redactions: list[Verdict], start: int, end: int) -> str:
    """``text[start:end]`` with each redaction inside it replaced (none may straddle start or end)."""
    pieces, pos = [], start
    for v in redactions:
        s, e = v.span  # type: ignore[misc]
        if s >= start and e <= end:
            pieces += [text[pos:s], v.replacement or ""]
            pos = e
    pieces.append(text[pos:end])
    return "".join(pieces)


def _order(v: Verdict) -> tuple[int, int, str]:
    s, e = v.span or (-1, -1)
    return (s, -(e - s), v.rule)
