"""Filter a streamed response chunk by chunk without ever releasing text before it has been checked.

    sf = StreamFilter(policy)
    for chunk in upstream:
        send(sf.feed(chunk))   # safe text, possibly "" while held back
    send(sf.finish())          # the rest; raises ContentBlocked if a block rule fires

The filter keeps the text seen so far and releases only the prefix that no future text can change: a match
starting at ``s`` is final once ``s + policy.window`` characters are known (``window`` = the longest reach of
any rule), so everything before ``len(text) - window`` is settled, except a chosen redaction that straddles
that point, which waits whole. Released text therefore equals ``apply_policy(whole_text).text`` for every
chunking (a property test checks this).

Re-scanning costs O(len) per scan, so scans are spaced: the filter re-scans when the unscanned tail reaches
``len / rescan_divisor`` characters (at least one), keeping total work linear (~divisor x the text) while
the extra delay stays a small fraction of the text. Fail closed: an exception inside blocks the stream.
"""

from __future__ import annotations

import logging

from lmforge.compliance.filter import choose_redactions, render, scan
from lmforge.compliance.policy import Policy
from lmforge.compliance.verdict import ContentBlocked, Verdict, fail_closed_verdict

log = logging.getLogger(__name__)


class StreamFilter:
    def __init__(self, policy: Policy, rescan_divisor: int = 32) -> None:
        self.policy = policy
        self.window = policy.window  # characters held back
        self.verdicts: list[Verdict] = []  # settled redact/flag verdicts released so far
        self.blocked: Verdict | None = None
        self._text = ""
        self._released = 0  # characters of _text already passed on (original coordinates)
        self._scanned_at = 0  # len(_text) at the last scan
        self._divisor = rescan_divisor

    def feed(self, chunk: str) -> str:
        """Take the next piece of the response; return the text that is safe to release now."""
        self._check_open()
        self._text += chunk
        n = len(self._text)
        settled = n - self.window
        if settled <= self._released or n - self._scanned_at < max(1, n // self._divisor):
            return ""
        return self._release(settled, final=False)

    def finish(self) -> str:
        """The end of the response: release the rest (raises ContentBlocked if a block rule fires)."""
        self._check_open()
        return self._release(len(self._text), final=True)

    def _check_open(self) -> None:
        if self.blocked is not None:
            raise ContentBlocked(self.blocked)

    def _release(self, settled: int, final: bool) -> str:
        try:
            self._scanned_at = len(self._text)
            found = scan(self._text, self.policy)
            for v in found:  # a settled block ends the stream; an unsettled one may still vanish
                if v.action == "block" and v.span is not None and (final or v.span[0] <= settled):
                    self.blocked = v
                    raise ContentBlocked(v)
            redactions = choose_redactions(found)
            upto = settled
            for v in redactions:
                s, e = v.span  # type: ignore[misc]
                if s < upto < e:
                    upto = s  # never split a redaction: hold it back whole
            out = render(self._text, [v for v in redactions if v.span[0] >= self._released], self._released,
                         upto)
            self.verdicts += [v for v in found if v.action != "block" and self._released <= v.span[0] < upto
                              and (v.action == "flag" or v in redactions)]
            self._released = max(self._released, upto)
            return out
        except ContentBlocked:
            raise
        except Exception as err:  # fail closed
            log.exception("streaming compliance filter failed; ending the stream")
            self.blocked = fail_closed_verdict(f"{type(err).__name__}: {err}")
            raise ContentBlocked(self.blocked) from err
