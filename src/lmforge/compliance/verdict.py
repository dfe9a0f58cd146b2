"""The one verdict shape every compliance check returns, on a whole response or on a streamed chunk.

    Verdict(allowed=False, category="pii.EMAIL", rule="pii", action="redact", span=(5, 20),
            replacement="<EMAIL>")

``allowed`` says whether the span may pass unchanged (only ``flag`` verdicts allow); ``span`` is in the
coordinates of the whole response text, also when the verdict came from a streaming filter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Action = Literal["redact", "block", "flag"]
ACTIONS: tuple[str, ...] = ("redact", "block", "flag")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    category: str  # "pii.EMAIL", "term", "pattern", "hazard.script_tag", "filter_error"
    rule: str  # the policy rule id that fired
    action: Action
    span: tuple[int, int] | None = None  # [start, end) in the response text
    replacement: str | None = None  # what replaces the span when action == "redact"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fail_closed_verdict(reason: str) -> Verdict:
    """The verdict of a filter that raised: the response is blocked, never released unchecked."""
    return Verdict(False, "filter_error", "fail_closed", "block", None, reason[:200])


class ContentBlocked(Exception):
    """A block rule fired (or the filter failed): the response must end here."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        super().__init__(f"response blocked by policy rule {verdict.rule!r} ({verdict.category})")
