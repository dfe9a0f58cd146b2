"""Settle ``apply_policy``'s verdicts over a text that only grows at its end, reading each character about once.

    inc = IncrementalScan(policy)
    inc.settle(text[:800], upto=800 - policy.window)   # the verdicts starting at or before 325 ...
    inc.settle(text[:900])                             # ... as far as the vouchers allow (inc.settled_to) ...
    inc.settle(text, final=True)                       # ... then the rest, once the text is whole

Each call returns what ``apply_policy(whole_text).verdicts`` holds (blocks, the redactions ``choose_redactions``
keeps, flags) that starts at or before ``upto`` and was not returned before, in the same order.

Why it is exact:

1. Each regex of each rule (and of each PII detector) runs as a ``_RegexStream`` that replays
   ``regex.finditer(whole_text)``: it keeps the position where that finditer would resume and searches on with
   ``finditer(text, pos)``, which, unlike slicing, keeps the text before ``pos`` for lookbehinds and ``\\b``.
2. An attempt to match at ``t`` reads at most ``reach`` characters from ``t`` (the longest match plus lookahead,
   as ``policy.regex_reach`` bounds it; a PII detector's reach adds the phone-cue context its check reads). So on a
   prefix of length ``n`` every attempt at ``t <= n - reach`` ends exactly as on the whole text: matches starting
   there are final (raw ones too, so later matches keep the whole text's alignment), and the finditer may resume
   at ``n - reach + 1``, the attempts before it having failed.
3. No reach exceeds ``policy.window``, so once ``upto <= len(text) - window`` every stream has yielded all its
   matches starting at or before ``upto``.
4. The overlap choices (``find_pii``'s within a rule, then ``choose_redactions``': earliest start, then longest)
   decide each candidate from the ones sorted before it, which start no later; taken in that order up to
   ``upto`` they choose as on the whole text.

Vouchers. A voucher is a regex that occurs inside every match a stream yields, starting at most ``offset``
characters past the match's start: a PII detector's ``gate`` (see ``lmforge.pii``; ``offset`` is its
regex's reach less one, since the gate lies inside the match) and a regex's anchor (``policy.regex_anchor``: a
rare literal of its top-level sequence, such as the email's ``@``, at most 64 characters in; or
``policy.regex_run_anchor``: a long run of one class, such as the 40 blob characters a base64 secret starts
with). A stream runs
its regex only while each of its vouchers occurs past its resume point; otherwise a search over the new text
is all it costs, and the resume point stays. It vouches meanwhile that no match starts between the resume
point and ``n - offset - reach(voucher)``: such a match's voucher would start at or before
``n - reach(voucher)``, so it reads only known text and the search would have found it. When the vouchers show
up the regex runs on from the resume point, so it still reads each character about once and replays the
whole-text finditer. ``settle`` without ``upto`` settles as far as every stream has vouched or can settle by
its reach: ``n - hold`` when no voucher is in sight (``hold``: the largest of the streams' least holds).

Closures. Where a regex's shape shows how its matches end (``policy.regex_closure``: after the email's ``@``
only ``[A-Za-z0-9.-]`` until the match ends, and nothing before the ``@`` can be one), an attempt whose ``@``
is followed in the known text by a character outside that class (and the lookahead's characters after it)
reads only known text, however far its reach: the stream settles up to just before the attempts that could
reach the first ``@`` not so followed, instead of its reach short of the end.

Sleeping. Most vouchers need one of a few characters (``policy.regex_required_chars``: the ``@``, a digit, a
``<``): where none of them occurs from the search's start on, the voucher is absent without a search
(``_Seen.lacks``). A stream whose least-hold voucher is absent that way sleeps: as long as no character it
needs arrives, that voucher stays absent, so looking again would only move its frontier to
``n - spec.hold`` (never below ``n - hold``, hence never what binds the settle point) and run no regex. It is
skipped until ``_Seen.update`` sees such a character in new text, and then takes the state that looking at
the previous text would have left (``_RegexStream.wake``): the same replay, done lazily.

Jumps. Where a voucher is in every match the regex yields, raw ones included (an anchor; a PII gate is only
in the matches its check confirms, and a raw match without it still takes its place in the finditer), no
match starts before that voucher's first occurrence from the resume point less its offset: the search starts
there, and after each match at the next occurrence less its offset. An email's regex, costly at every letter,
runs from 64 characters before each '@' instead of over the whole text.

Cost: a stream searches each character about once, plus its last ``reach`` characters again each time it
runs, which it does only when ``upto`` passes what it has vouched for; a sleeping stream costs nothing (each
stream that needs a character sleeps from the start, and ``final`` leaves sleepers as they are: their voucher
occurs nowhere from their resume point on). A scan visits each stream once: it runs the streams short of the
least hold-back, and the settle point is the lowest frontier they reach.
"""

from __future__ import annotations

import functools
import heapq
import re
import re._parser as re_parser  # stdlib regex parser: (min, max) width
import weakref
from dataclasses import dataclass, field
from typing import Any

from lmforge.compliance.policy import (
    PII_LOOKAHEAD_CHARS,
    Closure,
    Policy,
    Rule,
    regex_anchor,
    regex_closure,
    regex_reach,
    regex_required_chars,
    regex_run_anchor,
)
from lmforge.compliance.verdict import Verdict
from lmforge.fastre import ascii_twin
from lmforge.pii import PiiMatch, detectors_for

# scan's order: start, longest first, rule id (filter._order), then the rule's and the regex's position
_Key = tuple[int, int, str, int, int]


class IncrementalScan:
    """One response's scan state: the policy's rules, each resuming where the whole-text scan would be."""

    def __init__(self, policy: Policy) -> None:
        plan = _plan(policy)
        self._seen = seen = _Seen()
        seen.watch(plan.watched)
        self._rules = [(_PiiRuleScan if rule.kind == "pii" else _RegexRuleScan)(i, rule, specs, seen)
                       for i, (rule, specs) in enumerate(plan.rules)]
        self._streams = [stream for rule in self._rules for stream in rule.streams]
        for stream in self._streams:  # on no text every voucher is absent: those that need a character sleep
            if stream.spec.sleeps:
                seen.sleep(stream)
        self._sleepless = len(self._streams) - seen.sleeping
        self._pending: list[tuple[_Key, Verdict]] = []  # a heap: final candidates not returned yet
        self._redacted_to = 0  # end of the last redaction kept (choose_redactions' greedy)
        # The least hold-back: what the text must run past a verdict's start before it settles, when no
        # stream has a voucher in sight (a PII gate, a rule's anchor); policy.window when all have.
        self.hold = plan.hold
        self.settled_to = -1

    def settle(self, text: str, upto: int | None = None, final: bool = False) -> list[Verdict]:
        """New verdicts starting at or before ``upto``; ``text`` extends the previous call's text.

        ``upto`` is at most ``len(text) - policy.window``, or ``len(text)`` when ``final`` (``text`` is the
        whole response); None settles as far as the streams' vouchers allow, at least that far and at most
        ``len(text) - hold``. ``settled_to`` is the ``upto`` used."""
        n = len(text)
        self._seen.update(text)  # wakes the sleeping streams whose voucher may have arrived
        # Every stream short of this runs now: it reaches what it vouches for (a match's reach short of the end,
        # a closure, an absent voucher's hold). One already past it, or asleep (it vouches n - its hold, which
        # is never less), is left as it is: it would only re-read its tail.
        below = n if final else upto if upto is not None else max(n - self.hold, self.settled_to)
        for rule in self._rules:
            rule.run(text, below, final, self._pending)
        if upto is None:
            upto = below
            if not final:
                for stream in self._streams:
                    if stream.frontier < upto and not stream.asleep:
                        upto = stream.frontier
        self.settled_to = upto
        for rule in self._rules:
            rule.ready(upto, self._pending)
        settled = []
        while self._pending and self._pending[0][0][0] <= upto:
            _, v = heapq.heappop(self._pending)
            start, end = v.span  # type: ignore[misc]
            if v.action == "redact":
                if start < self._redacted_to:
                    continue  # overlaps a redaction kept before it
                self._redacted_to = end
            settled.append(v)
        return settled

    @property
    def woken(self) -> int:
        """Streams awake that could sleep (their least-hold voucher needs some character): on prose they do,
        so these are what a scan costs more for on text with PII in it."""
        return len(self._streams) - self._sleepless - self._seen.sleeping


class _RegexRuleScan:
    """A term, pattern or hazard rule: every non-empty match of each of its regexes is a verdict."""

    def __init__(self, index: int, rule: Rule, specs: tuple[tuple[str, _Spec], ...], seen: _Seen) -> None:
        self._rule, self._index = rule, index
        self._streams = [(category, _RegexStream(spec, seen)) for category, spec in specs]
        self.streams = [stream for _, stream in self._streams]

    def run(self, text: str, below: int, final: bool, pending: list[tuple[_Key, Verdict]]) -> None:
        """Advance the streams short of ``below``, pushing their final matches onto ``pending`` (a heap)."""
        for sub, (category, stream) in enumerate(self._streams):
            if stream.asleep or stream.frontier >= below and not final:
                continue  # a sleeping one has nothing from its resume point on, even at the end (see _Seen)
            for m in stream.advance(text, final):
                if m.end() > m.start():  # an empty match redacts nothing (as in Rule.scan)
                    heapq.heappush(pending, (_key(m.start(), m.end(), self._rule.id, self._index, sub),
                                             self._rule.verdict(category, m.span())))

    def ready(self, upto: int, pending: list[tuple[_Key, Verdict]]) -> None:
        """Nothing to do: every match is a verdict as soon as it is final."""


class _PiiRuleScan:
    """A pii rule: its detectors' confirmed matches, kept non-overlapping the way ``find_pii`` keeps them."""

    def __init__(self, index: int, rule: Rule, specs: tuple[tuple[Any, _Spec], ...], seen: _Seen) -> None:
        self._rule, self._index = rule, index
        self._detectors = [(detector, _RegexStream(spec, seen)) for detector, spec in specs]
        self.streams = [stream for _, stream in self._detectors]
        self._candidates: list[tuple[tuple[int, int, int], PiiMatch]] = []  # a heap, in find_pii's order
        self._chosen_to = 0  # end of the last match find_pii would keep

    def run(self, text: str, below: int, final: bool, pending: list[tuple[_Key, Verdict]]) -> None:
        """Advance the detectors short of ``below``, keeping their confirmed matches as candidates."""
        for i, (detector, stream) in enumerate(self._detectors):
            if stream.asleep or stream.frontier >= below and not final:
                continue  # as above
            for m in stream.advance(text, final):
                if (match := detector.confirm(text, m)) is not None:
                    heapq.heappush(self._candidates, ((match.start, match.start - match.end, i), match))

    def ready(self, upto: int, pending: list[tuple[_Key, Verdict]]) -> None:
        """Push the candidates starting at or before ``upto`` that ``find_pii`` keeps onto ``pending``: every
        candidate sorted before them is known (each detector has run past ``upto``)."""
        while self._candidates and self._candidates[0][0][0] <= upto:
            _, match = heapq.heappop(self._candidates)
            if match.start >= self._chosen_to:
                self._chosen_to = match.end
                heapq.heappush(pending, (_key(match.start, match.end, self._rule.id, self._index, 0),
                                         self._rule.verdict(f"pii.{match.kind}", (match.start, match.end))))


@dataclass(frozen=True)
class _Voucher:
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
    ascii: re.Pattern[str] = field(init=False)  # ``regex``'s twin for ASCII text (lmforge.fastre.ascii_twin)
    # Characters one of which every match of ``regex`` holds (``digit``: or any decimal digit); None: unknown.
    # Where ``_Seen`` has none of them from a position on, the regex matches nowhere there: no search needed.
    need: frozenset[str] | None = field(init=False)
    digit: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hold", self.offset + self.reach)
        object.__setattr__(self, "ascii", ascii_twin(self.regex))
        need, digit = regex_required_chars(self.regex) or (None, False)
        object.__setattr__(self, "need", need if need or digit else None)
        object.__setattr__(self, "digit", digit)


@dataclass(frozen=True)
class _Spec:
    """What a ``_RegexStream`` needs to know of its regex, worked out once per rule (parsing regexes is slow)."""

    regex: re.Pattern[str]  # the one that runs: the rule's as ``lmforge.fastre`` compiles it
    reach: int  # characters from a match start that matching (and confirming) a match may read
    vouchers: tuple[_Voucher, ...] = ()  # smallest hold first
    closure: Closure | None = None  # where its matches end, if its shape tells (policy.regex_closure)
    # Characters short of the end it settles to when no voucher is in sight (its reach when it has none). A
    # gate may hold more than the reach (the base64 blob's does): skipping the regex is worth it.
    hold: int = field(init=False)
    # The voucher in every match (``raw``) that says where the next match may start, or -1: searches start
    # there instead of at the resume point (an email's search, at most 64 characters before the next '@').
    jump: int = field(init=False)
    sleeps: bool = field(init=False)  # its first voucher needs some character: it may sleep (see _Seen)
    ascii: re.Pattern[str] = field(init=False)  # ``regex``'s twin for ASCII text (lmforge.fastre.ascii_twin)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ascii", ascii_twin(self.regex))
        object.__setattr__(self, "hold", self.vouchers[0].hold if self.vouchers else self.reach)
        object.__setattr__(self, "sleeps", bool(self.vouchers) and self.vouchers[0].need is not None)
        jump = next((i for i, v in enumerate(self.vouchers) if v.raw), -1)
        if jump >= 0 and re_parser.parse(self.regex.pattern, self.regex.flags).getwidth()[0] == 0:
            jump = -1  # an empty match holds no voucher
        object.__setattr__(self, "jump", jump)


def _vouchers(regex: re.Pattern[str], gate: _Voucher | None = None) -> tuple[_Voucher, ...]:
    found = [gate] if gate else []
    for anchor in (regex_anchor(regex), regex_run_anchor(regex)):
        if anchor is not None:
            found.append(_Voucher(anchor.regex, anchor.reach, anchor.offset))
    return tuple(sorted(found, key=lambda v: v.hold))


@functools.cache
def _regex_specs(rule: Rule, window: int) -> tuple[tuple[str, _Spec], ...]:
    specs = tuple((category, _Spec(fast, regex_reach(regex), _vouchers(regex), regex_closure(regex)))
                  for (category, regex), (_, fast) in zip(rule.regexes, rule.search_regexes, strict=True))
    assert all(spec.reach <= window for _, spec in specs), "a rule reaches past the policy window"
    return specs


@functools.cache
def _pii_specs(rule: Rule, window: int) -> tuple[tuple[Any, _Spec], ...]:
    specs = []
    for d in detectors_for(rule.pii_kinds):
        # The reach the policy window is built from: the longest match, the cue context after it, lookahead.
        reach, match_reach = d.max_chars + PII_LOOKAHEAD_CHARS, regex_reach(d.pattern)
        gate = None
        if d.gate:  # it lies inside the match, so it starts at most match_reach - 1 past the match's start
            gate_regex = re.compile(d.gate)
            gate = _Voucher(gate_regex, regex_reach(gate_regex), match_reach - 1, raw=False)
            if gate.hold > window:
                gate = None  # it could not vouch as far as the settle point: run the detector throughout
        closure = regex_closure(d.pattern) if d.context is None else None  # a context reads past the match
        specs.append((d, _Spec(d.search_pattern, reach, _vouchers(d.pattern, gate), closure)))
    assert all(spec.reach <= window for _, spec in specs), "a PII detector reaches past the policy window"
    return tuple(specs)


class _RegexStream:
    """``regex.finditer(whole_text)`` replayed over a growing text: each match once, as soon as it is final."""

    __slots__ = ("spec", "_seen", "asleep", "frontier", "_pos", "_clear_from", "_probe", "_settled")

    def __init__(self, spec: _Spec, seen: _Seen | None = None) -> None:
        """``seen``: the response's record, which must watch this stream's vouchers; by default one of its own."""
        self.spec = spec
        if seen is None:
            seen = _Seen()
            seen.watch(_voucher_chars(spec))
        self._seen = seen
        self.asleep = False  # see _Seen: skipped until a character its first voucher needs arrives
        self.frontier = -1  # every match starting at or before this has been returned (or vouched absent)
        self._pos = 0  # where the whole-text finditer resumes
        self._clear_from = [0] * len(spec.vouchers)  # voucher i occurs nowhere from _pos up to here
        # (len, _pos, the voucher absent, where the jump voucher occurs) last seen
        self._probe: tuple[int, int, _Voucher | None, int] = (-1, -1, None, -1)
        self._settled = (-1, -1, -1)  # (len, _pos, the closure's settled()) last worked out

    def advance(self, text: str, final: bool) -> list[re.Match[str]]:
        """The matches not returned before that ``text`` settles (all of them when it is ``final``)."""
        n, spec = len(text), self.spec
        if (absent := self._absent(text)) is not None:
            # Nothing past _pos can match yet; the regex runs from _pos once every voucher shows up.
            self.frontier = n if final else max(self.frontier, n - absent.hold)
            return []
        last = n if final else self._last(text)  # an attempt starting at or before this reads only known text
        found, pos = [], self._pos
        ascii = text.isascii()  # what a search reads, all known, is ASCII too: the twins find the same
        regex = spec.ascii if ascii else spec.regex
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
            at = self._probe[3]  # where _absent found it, searching from _pos
            while True:
                start = max(pos, clear if at < 0 else min(at - voucher.offset, clear))
                if start > last or (m := regex.search(text, start)) is None or m.start() > last:
                    break
                found.append(m)
                pos = m.end()  # not empty: it holds the voucher
                at = v.start() if (v := (voucher.ascii if ascii else voucher.regex).search(text, pos)) else -1
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
            n, pos, at = self._settled
            if n != len(text) or pos != self._pos:  # bound() and advance() ask in the same scan
                at = self.spec.closure.settled(text, self._pos)
                self._settled = (len(text), self._pos, at)
            last = max(last, at)
        return last

    def _absent(self, text: str) -> _Voucher | None:
        """The voucher of smallest hold that occurs nowhere from ``_pos`` on, or None if each one occurs."""
        n = len(text)
        probe = self._probe
        if probe[0] == n and probe[1] == self._pos:
            return probe[2]
        absent, at = None, -1
        seen = self._seen
        if seen.length != n:
            seen.update(text)
        ascii = text.isascii()
        for i, voucher in enumerate(self.spec.vouchers):
            start = max(self._pos, self._clear_from[i])
            lacking = seen.lacks(voucher, start)
            if lacking or (m := (voucher.ascii if ascii else voucher.regex).search(text, start)) is None:
                self._clear_from[i] = max(self._clear_from[i], n - voucher.reach + 1)
                absent = voucher
                if lacking and i == 0 and not self.asleep:
                    seen.sleep(self)
                break
            if i == self.spec.jump:
                at = m.start()  # the first from _pos: none starts before _clear_from (see there)
        self._probe = (n, self._pos, absent, at)
        return absent

    def wake(self, length: int) -> None:
        """End a sleep, taking the state ``_absent`` and ``bound`` would have left at text ``length``: its first
        voucher absent there (no character it needs had arrived), so the frontier at ``length - hold``."""
        voucher = self.spec.vouchers[0]
        self._clear_from[0] = max(self._clear_from[0], length - voucher.reach + 1)
        self.frontier = max(self.frontier, length - voucher.hold)
        self._probe = (-1, -1, None, -1)
        self.asleep = False


class _Seen:
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
        self._asleep: list[_RegexStream] = []

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

    def lacks(self, voucher: _Voucher, start: int) -> bool:
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

    def sleep(self, stream: _RegexStream) -> None:
        self._asleep.append(stream)
        stream.asleep = True


_DIGIT = re.compile(r"\d")


def _voucher_chars(spec: _Spec) -> tuple[str, ...]:
    return tuple(sorted({ch for v in spec.vouchers for ch in v.need or ()}))


@dataclass(frozen=True)
class _Plan:
    """What each response's scan of one policy starts from: its rules' specs, the characters their vouchers
    need, the least hold-back. Worked out once per policy object (hashing a policy is itself slow)."""

    rules: tuple[tuple[Rule, tuple[tuple[Any, _Spec], ...]], ...]
    watched: tuple[str, ...]
    hold: int


_PLANS: dict[int, tuple[weakref.ref[Policy], _Plan]] = {}


def _plan(policy: Policy) -> _Plan:
    entry = _PLANS.get(id(policy))
    if entry is not None and entry[0]() is policy:
        return entry[1]
    rules = tuple((rule, (_pii_specs if rule.kind == "pii" else _regex_specs)(rule, policy.window))
                  for rule in policy.rules)
    specs = [spec for _, rule_specs in rules for _, spec in rule_specs]
    plan = _Plan(rules, tuple(sorted({ch for spec in specs for ch in _voucher_chars(spec)})),
                 max((spec.hold for spec in specs), default=0))
    if len(_PLANS) >= 256:  # forget the policies gone since
        for key in [key for key, (ref, _) in _PLANS.items() if ref() is None]:
            del _PLANS[key]
    _PLANS[id(policy)] = (weakref.ref(policy), plan)
    return plan


def _key(start: int, end: int, rule_id: str, rule_index: int, regex_index: int) -> _Key:
    return (start, start - end, rule_id, rule_index, regex_index)
