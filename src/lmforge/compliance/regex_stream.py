"""One regex's ``finditer`` replayed over a text that grows at its end: each match once, as soon as it is final.

    stream = RegexStream(StreamSpec(regex, reach=regex_reach(regex)))
    stream.advance(text[:500], final=False)   # the matches starting at or before 500 - reach
    stream.advance(text, final=True)          # the rest, once the text is whole

Exact because an attempt to match at ``t`` reads at most ``reach`` characters from ``t``: on a prefix of length
``n`` every attempt at ``t <= n - reach`` ends as on the whole text, so ``finditer(text, pos)`` from where the
whole-text ``finditer`` would resume yields the same matches (``pos`` keeps the text before it for lookbehinds).
``frontier`` is the last match start settled: every match starting at or before it has been returned.

Three ways to settle further, or cheaper, than ``reach`` short of the end, each pinned by
``tests/compliance/test_streaming.py`` against plain ``finditer``:

* A **voucher** is a required substring: a regex that occurs in every match, at most ``offset`` characters
  past the match start (the email's ``@``; a PII detector's gate). Where it does not occur after the resume
  point, no match can start there; the regex does not run and the frontier moves to ``hold`` short of the end.
* A **jump**: when the voucher is in every raw match, the search starts at the next voucher less its offset
  (an email's regex runs from 64 characters before each ``@``, not at every letter).
* **Sleeping**: a voucher that needs one of a few characters (``@``, a digit) is absent without a search while
  none has arrived (``SeenChars.lacks``); its stream is skipped until one does (``SeenChars.update`` wakes it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from lmforge import re_syntax
from lmforge.compliance.regex_shape import Closure, regex_required_chars


@dataclass(frozen=True)
class Voucher:
    """A regex in every match a stream yields (a PII gate, a rule's anchor), starting at most ``offset`` past it.

    Where it does not occur, no match starts: a search for it over the new text lets the stream vouch for
    ``hold`` characters short of the end instead of running the regex and settling only its reach short."""

    regex: re.Pattern[str]
    reach: int  # characters a match of ``regex`` reads
    offset: int
    # True: in every match of the stream's regex (an anchor). False: only in those a check confirms (a PII gate):
    # the raw matches it lacks still take their place in the finditer, so it cannot say where to search from.
    raw: bool = True
    hold: int = field(init=False)
    # Characters one of which every match of ``regex`` holds (``digit``: or any decimal digit); None: unknown.
    # Where ``SeenChars`` has none of them from a position on, the regex matches nowhere there: no search needed.
    need: frozenset[str] | None = field(init=False)
    digit: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hold", self.offset + self.reach)
        need, digit = regex_required_chars(self.regex) or (None, False)
        object.__setattr__(self, "need", need if need or digit else None)
        object.__setattr__(self, "digit", digit)


@dataclass(frozen=True)
class StreamSpec:
    """What a ``RegexStream`` needs to know of its regex, worked out once per rule (parsing regexes is slow)."""

    regex: re.Pattern[str]  # the one that runs: the rule's as ``lmforge.fastre`` compiles it
    reach: int  # characters from a match start that matching (and confirming) a match may read
    vouchers: tuple[Voucher, ...] = ()  # smallest hold first
    closure: Closure | None = None  # where its matches end, if its shape tells (regex_shape.regex_closure)
    # Characters short of the end it settles to when no voucher is in sight (its reach when it has none). A
    # gate may hold more than the reach (the base64 blob's does): skipping the regex is worth it.
    hold: int = field(init=False)
    # The voucher in every match (``raw``) that says where the next match may start, or -1: searches start
    # there instead of at the resume point (an email's search, at most 64 characters before the next '@').
    jump: int = field(init=False)
    sleeps: bool = field(init=False)  # its first voucher needs some character: it may sleep (see SeenChars)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hold", self.vouchers[0].hold if self.vouchers else self.reach)
        object.__setattr__(self, "sleeps", bool(self.vouchers) and self.vouchers[0].need is not None)
        jump = next((i for i, v in enumerate(self.vouchers) if v.raw), -1)
        if jump >= 0 and re_syntax.width(self.regex)[0] == 0:
            jump = -1  # an empty match holds no voucher
        object.__setattr__(self, "jump", jump)




class _VoucherLook(NamedTuple):
    """What ``RegexStream._absent`` found at text ``length`` with the stream resuming at ``pos``."""

    length: int
    pos: int
    absent: Voucher | None  # the voucher of smallest hold that occurs nowhere from ``pos`` on
    jump_at: int  # where the jump voucher first occurs from ``pos`` (-1: not looked for, or absent)


class _ClosureLook(NamedTuple):
    """``closure.settled(text, pos)`` at text ``length``: the last attempt start that reads only known text."""

    length: int
    pos: int
    last: int


class RegexStream:
    """``regex.finditer(whole_text)`` replayed over a growing text: each match once, as soon as it is final."""

    __slots__ = ("spec", "_seen", "asleep", "frontier", "_pos", "_clear_from", "_probe", "_settled")

    def __init__(self, spec: StreamSpec, seen: SeenChars | None = None) -> None:
        """``seen``: the response's record, which must watch this stream's vouchers; by default one of its own."""
        self.spec = spec
        if seen is None:
            seen = SeenChars()
            seen.watch(voucher_chars(spec))
        self._seen = seen
        self.asleep = False  # see SeenChars: skipped until a character its first voucher needs arrives
        self.frontier = -1  # every match starting at or before this has been returned (or vouched absent)
        self._pos = 0  # where the whole-text finditer resumes
        self._clear_from = [0] * len(spec.vouchers)  # voucher i occurs nowhere from _pos up to here
        self._probe = _VoucherLook(-1, -1, None, -1)  # the last look for the vouchers
        self._settled = _ClosureLook(-1, -1, -1)  # the last closure.settled() worked out

    def advance(self, text: str, final: bool) -> list[re.Match[str]]:
        """The matches not returned before that ``text`` settles (all of them when it is ``final``)."""
        n, spec = len(text), self.spec
        if (absent := self._absent(text)) is not None:
            # Nothing past _pos can match yet; the regex runs from _pos once every voucher shows up.
            self.frontier = n if final else max(self.frontier, n - absent.hold)
            return []
        last = n if final else self._last(text)  # an attempt starting at or before this reads only known text
        found, pos = [], self._pos
        regex = spec.regex
        if spec.jump < 0:
            for m in regex.finditer(text, pos):
                if m.start() > last:
                    break
                found.append(m)
                pos = m.end()
        else:
            # Each match holds this voucher at most ``offset`` past its start, and one that reads only known text
            # is found by a search: no match starts before the first one found less its offset, nor (when none
            # is) before the voucher's hold short of the end. Search from there, and again after each match.
            voucher = spec.vouchers[spec.jump]
            clear = n + 1 if final else n - voucher.hold + 1
            at = self._probe.jump_at  # where _absent found it, searching from _pos
            while True:
                start = max(pos, clear if at < 0 else min(at - voucher.offset, clear))
                if start > last or (m := regex.search(text, start)) is None or m.start() > last:
                    break
                found.append(m)
                pos = m.end()  # not empty: it holds the voucher
                at = v.start() if (v := voucher.regex.search(text, pos)) else -1
        # Every attempt from pos to last failed, as it would on the whole text, so that finditer would be at
        # last + 1 with nothing pending (also after an empty match, which always ends at or before last).
        self._pos = max(pos, last + 1)
        self.frontier = max(self.frontier, last)
        return found

    def _last(self, text: str) -> int:
        """The last attempt start (from ``_pos`` on) up to which attempts read only ``text``: its reach short of
        the end, or as far as the closure shows the matches there have ended."""
        last = len(text) - self.spec.reach
        if self.spec.closure is not None:
            look = self._settled
            if look.length != len(text) or look.pos != self._pos:  # asked twice in one scan: work it out once
                look = self._settled = _ClosureLook(len(text), self._pos, self.spec.closure.settled(text, self._pos))
            last = max(last, look.last)
        return last

    def _absent(self, text: str) -> Voucher | None:
        """The voucher of smallest hold that occurs nowhere from ``_pos`` on, or None if each one occurs."""
        n = len(text)
        probe = self._probe
        if probe.length == n and probe.pos == self._pos:
            return probe.absent
        absent, at = None, -1
        seen = self._seen
        if seen.length != n:
            seen.update(text)
        for i, voucher in enumerate(self.spec.vouchers):
            start = max(self._pos, self._clear_from[i])
            lacking = seen.lacks(voucher, start)
            if lacking or (m := voucher.regex.search(text, start)) is None:
                self._clear_from[i] = max(self._clear_from[i], n - voucher.reach + 1)
                absent = voucher
                if lacking and i == 0 and not self.asleep:
                    seen.sleep(self)
                break
            if i == self.spec.jump:
                at = m.start()  # the first from _pos: none starts before _clear_from (see there)
        self._probe = _VoucherLook(n, self._pos, absent, at)
        return absent

    def wake(self, length: int) -> None:
        """End a sleep, taking the state ``_absent`` and ``bound`` would have left at text ``length``: its first
        voucher absent there (no character it needs had arrived), so the frontier at ``length - hold``."""
        voucher = self.spec.vouchers[0]
        self._clear_from[0] = max(self._clear_from[0], length - voucher.reach + 1)
        self.frontier = max(self.frontier, length - voucher.hold)
        self._probe = _VoucherLook(-1, -1, None, -1)
        self.asleep = False


class SeenChars:
    """Where the characters some voucher needs, and decimal digits, last occur in one response so far, and the
    streams asleep until one they need arrives.

    A voucher whose every match holds one of its ``need`` characters (or a digit) cannot occur from a
    position on where none of them does (``lacks``): a few dict lookups instead of a regex search. A stream
    whose first voucher (the smallest hold) lacks so sleeps: until a character it needs arrives in new text,
    that voucher stays absent, so the stream would only vouch ``len(text) - hold`` each time, which never binds
    the settle point (``IncrementalScan.hold`` is the largest such hold), and would run no regex. A sleeping
    stream is skipped; ``update`` wakes it when a character it needs arrives, with the state one look at the
    previous text would have given it. On prose most streams sleep, so a scan costs little per stream."""

    def __init__(self) -> None:
        self.length = 0
        self.last: dict[str, int] = {}  # of the characters some voucher needs
        self.digit = -1
        self._watched: tuple[str, ...] = ()
        self._asleep: list[RegexStream] = []

    def watch(self, chars: tuple[str, ...]) -> None:
        """Track these characters, some voucher's needs (before any text arrives)."""
        self._watched = chars

    def update(self, text: str) -> None:
        n, before = len(text), self.length
        if n <= before:
            return
        new = text[before:]
        arrived = []
        for ch in self._watched:
            if (i := new.rfind(ch)) >= 0:
                self.last[ch] = before + i
                arrived.append(ch)
        at = max(map(new.rfind, "0123456789")) if new.isascii() else \
            max((m.start() for m in _DIGIT.finditer(new)), default=-1)
        if at >= 0:
            self.digit = before + at
        self.length = n
        if self._asleep:
            still = []
            for stream in self._asleep:
                voucher = stream.spec.vouchers[0]
                if at >= 0 and voucher.digit or not voucher.need.isdisjoint(arrived):  # type: ignore[union-attr]
                    stream.wake(before)
                else:
                    still.append(stream)
            self._asleep = still

    def lacks(self, voucher: Voucher, start: int) -> bool:
        """True if no character ``voucher`` needs occurs at or after ``start`` (False: it may occur)."""
        if voucher.need is None or voucher.digit and self.digit >= start:
            return False
        last = self.last
        for ch in voucher.need:
            if last.get(ch, -1) >= start:
                return False
        return True

    @property
    def sleeping(self) -> int:
        return len(self._asleep)

    def sleep(self, stream: RegexStream) -> None:
        self._asleep.append(stream)
        stream.asleep = True


_DIGIT = re.compile(r"\d")


def voucher_chars(spec: StreamSpec) -> tuple[str, ...]:
    return tuple(sorted({ch for v in spec.vouchers for ch in v.need or ()}))
