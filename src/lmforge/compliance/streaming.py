"""Filter a streamed response chunk by chunk without ever releasing text before it has been checked.

    sf = StreamFilter(policy)
    for chunk in upstream:
        send(sf.feed(chunk))   # safe text, possibly "" while held back
    send(sf.finish())          # the rest; raises ContentBlocked if a block rule fires

The filter keeps the text seen so far and releases only the prefix that no future text can change. A match
starting at ``s`` is final once ``s + reach`` characters are known (``reach``: the longest match plus
lookahead of its regex; ``policy.window`` is the largest), and a regex with a voucher (a PII detector's gate,
a rule's anchor such as the ``@`` of an email, at most 64 characters into the match, or the run of 40 blob
characters a base64 secret starts with) cannot start a match where its voucher does not occur:
``IncrementalScan`` settles as far as both allow. Prose with no voucher in sight is released ``hold``
characters behind (65 with the shipped policy, set by the email's ``@``, against a window of 475); near a
voucher (an ``@``, an ``sk-``, a ``<``) the text waits for that regex's reach or, where the regex's shape
shows how its matches end (``regex_shape.regex_closure``: an email's domain holds only ``[A-Za-z0-9.-]``), until a
character that ends them has arrived: prose with an email, a phone and a host name every 300 characters is
settled 65 behind too. A chosen redaction that straddles the settle point waits whole. Released text
therefore equals ``apply_policy(whole_text).text`` for every chunking (property tests check this), and so do
the verdicts.

Cost: no scan starts over from the beginning. ``IncrementalScan`` resumes each regex of each rule where
a whole-text scan would be (see there why that is exact), so each character is searched about once per regex,
plus a regex's last ``reach`` characters again each time it runs (its matches there are not final yet); a
stream whose voucher is absent runs no regex, and on prose most of them sleep until a character their
voucher needs arrives (see ``regex_stream.SeenChars``). Scans come half the unsettled length apart, at least
``MIN_SPACING`` characters and ``SPACING_PER_WOKEN`` per stream woken from sleep, so a re-read costs at most ~2x the
text for any regex and the fixed cost of a scan stays small (measured figures: ``benchmarks/README.md``). On
long texts the spacing grows to ``len / 256`` so that joining the chunks stays linear too. Latency: the first
text leaves once ``hold`` characters have come after it, then in steps of the spacing (more where digits or an
``@`` have woken streams). Fail closed: an exception inside blocks the stream.
"""

from __future__ import annotations

import logging
from typing import NoReturn

from lmforge.compliance.filter import render
from lmforge.compliance.incremental import IncrementalScan
from lmforge.compliance.policy import Policy
from lmforge.compliance.verdict import ContentBlocked, Verdict, fail_closed_verdict

log = logging.getLogger(__name__)

# Characters between scans at least (or the least hold, if smaller): each scan pays ~10-20 us for the rules
# and streams it visits; 48 apart had cost prose ~25% more than 61.
MIN_SPACING = 61
# And at least this many characters per stream woken (asleep on prose, awake after a digit, an '@'...): on
# PII-dense text a dozen are, each re-reading its reach (~100 characters) per scan. Prose is unaffected.
SPACING_PER_WOKEN = 28


class StreamFilter:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.window = policy.window  # the most characters held back
        self.verdicts: list[Verdict] = []  # settled redact/flag verdicts released so far
        self.blocked: Verdict | None = None
        self._scan = IncrementalScan(policy)
        self.hold = self._scan.hold  # the fewest characters held back (no rule's gate or anchor in sight)
        self._text = ""  # the text up to the last scan
        self._chunks: list[str] = []  # arrived since; joined at the next scan (appending to a str copies it)
        self._length = 0  # characters fed in all
        self._next_scan = self.hold + 1  # feed() does nothing but keep the chunk until _length reaches this
        self._released = 0  # characters of the text already passed on (original coordinates)
        self._held: list[Verdict] = []  # settled verdicts that start at or after _released, in span order
        self._finished = False

    def feed(self, chunk: str) -> str:
        """Take the next piece of the response; return the text that is safe to release now."""
        self._chunks.append(chunk)
        self._length += len(chunk)
        if self._length < self._next_scan:
            return ""  # held back: the common case, so it does nothing else
        self._check_open()
        if self._finished:
            if chunk:
                self._fail(RuntimeError("text fed after finish()"))
            return ""
        return self._release(final=False)

    def finish(self) -> str:
        """The end of the response: release the rest (raises ContentBlocked if a block rule fires)."""
        self._check_open()
        if self._finished:
            return ""
        self._finished, self._next_scan = True, 0
        return self._release(final=True)

    def _check_open(self) -> None:
        if self.blocked is not None:
            raise ContentBlocked(self.blocked)

    def _release(self, final: bool) -> str:
        try:
            self._text += "".join(self._chunks)
            self._chunks.clear()
            text = self._text
            new = self._scan.settle(text, final=final)
            settled = max(self._scan.settled_to, self._released)  # it starts below 0 while a voucher is in sight
            if block := next((v for v in new if v.action == "block"), None):
                self._block(block)  # a settled block ends the stream; an unsettled one may still vanish
            held = self._held + new
            upto = settled
            last = next((v for v in reversed(held) if v.action == "redact"), None)
            if last is not None and last.span[0] < upto < last.span[1]:  # type: ignore[index]
                upto = last.span[0]  # type: ignore[index]  # never split a redaction: hold it back whole
            ready = [v for v in held if v.span[0] < upto]  # type: ignore[index]
            self._held = held[len(ready):]
            out = render(text, [v for v in ready if v.action == "redact"], self._released, upto)
            self.verdicts += ready
            self._released = upto
            if not final:  # scan again a spacing on, and not before something more can be released
                spacing = self._spacing(len(text) - settled, len(text))
                self._next_scan = max(len(text) + spacing, upto + self.hold + 1)
            return out
        except ContentBlocked:
            raise
        except Exception as err:
            self._fail(err)

    def _spacing(self, held: int, length: int) -> int:
        """Characters between scans. A scan re-reads the tail of each regex that runs (its matches near the
        end are not final yet), at most the ``held`` characters the last scan left unsettled, so half of that
        apart costs at most ~2x the text (a quarter cost ~2x more in all: each scan also pays a fixed price
        for the rules and streams it visits, hence ``MIN_SPACING``, and ``SPACING_PER_WOKEN`` for each stream
        woken); on long texts length / 256 apart keeps the joins of the chunks linear too."""
        return max(min(MIN_SPACING, self.hold), held // 2, length // 256, SPACING_PER_WOKEN * self._scan.woken)

    def _fail(self, err: Exception) -> NoReturn:
        """Fail closed: log, block, and end the stream."""
        log.exception("streaming compliance filter failed; ending the stream", exc_info=err)
        self._block(fail_closed_verdict(f"{type(err).__name__}: {err}"), err)

    def _block(self, verdict: Verdict, cause: Exception | None = None) -> NoReturn:
        self.blocked, self._next_scan = verdict, 0  # every later call takes the slow path, which raises
        raise ContentBlocked(verdict) from cause
