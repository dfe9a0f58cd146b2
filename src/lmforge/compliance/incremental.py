"""Settle ``apply_policy``'s verdicts over a response that arrives in pieces, reading each character about once.

    scan = IncrementalScan(policy)
    scan.settle(text[:800])              # verdicts that no later text can change (scan.settled_to: up to where)
    scan.settle(text[:900])              # ... the next ones, resuming where the last call stopped
    scan.settle(text, final=True)        # the rest, once the response is whole

The contract: the verdicts returned over all calls are exactly ``apply_policy(whole_text).verdicts``, in the
same order, however the text was cut (``tests/compliance/test_streaming.py`` checks every chunking).

How, in five steps (the words are the field's: match start, reach = lookahead window, hold-back):

1. Each regex of each rule, and each PII detector, runs as a ``RegexStream`` (``regex_stream.py``): it
   replays ``regex.finditer(whole_text)`` by resuming ``finditer(text, pos)`` where the whole-text one would be.
2. An attempt at match start ``t`` reads at most ``reach`` characters (longest match plus lookahead,
   ``regex_shape.regex_reach``), so on a prefix of length ``n`` every match starting at or before
   ``n - reach`` is final. No reach exceeds ``policy.window``: that is the most the filter ever holds back.
3. Most regexes settle much further (the least hold-back, ``hold``: 65 characters with the shipped policy):
   a required substring (a "voucher": the email's ``@``, a PII detector's gate) that is absent means no match
   can start there; where the regex's shape shows how its matches end (``regex_shape.regex_closure``: an
   email ends at the first character outside ``[A-Za-z0-9.-]`` after its ``@``), a match is final as soon as
   that character has arrived.
4. ``settle`` advances every stream and settles up to the lowest frontier any stream reached.
5. Overlaps are resolved as on the whole text: within a PII rule as ``find_pii`` does, then across rules as
   ``filter.choose_redactions`` does (earliest start, then longest). Both decide each candidate from those
   sorted before it, which start no later, so taking candidates in order up to the settle point chooses the
   same ones.

Cost: each stream searches each character about once, plus its last ``reach`` characters again each time it
runs; streams whose voucher needs a character that has not arrived (an ``@``, a digit) sleep and cost nothing.
"""

from __future__ import annotations

import functools
import heapq
import re
import weakref
from dataclasses import dataclass
from typing import Any, NamedTuple

from lmforge.compliance.policy import PII_LOOKAHEAD_CHARS, Policy, Rule
from lmforge.compliance.regex_shape import regex_anchor, regex_closure, regex_reach, regex_run_anchor
from lmforge.compliance.regex_stream import RegexStream, SeenChars, StreamSpec, Voucher, voucher_chars
from lmforge.compliance.verdict import Verdict
from lmforge.pii import PiiMatch, detectors_for


class ScanOrder(NamedTuple):
    """Where a verdict sorts in ``filter.scan``'s order (start, longest first, rule id), then the rule's and the
    regex's position: the heap key of verdicts waiting to be returned."""

    start: int
    minus_length: int
    rule_id: str
    rule_index: int
    regex_index: int


class IncrementalScan:
    """One response's scan state: the policy's rules, each resuming where the whole-text scan would be."""

    def __init__(self, policy: Policy) -> None:
        plan = _plan(policy)
        self._seen = seen = SeenChars()
        seen.watch(plan.watched)
        self._rules = [(_PiiRuleScan if rule.kind == "pii" else _RegexRuleScan)(i, rule, specs, seen)
                       for i, (rule, specs) in enumerate(plan.rules)]
        self._streams = [stream for rule in self._rules for stream in rule.streams]
        for stream in self._streams:  # on no text every voucher is absent: those that need a character sleep
            if stream.spec.sleeps:
                seen.sleep(stream)
        self._sleepless = len(self._streams) - seen.sleeping
        self._pending: list[tuple[ScanOrder, Verdict]] = []  # a heap: final candidates not returned yet
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
        while self._pending and self._pending[0][0].start <= upto:
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


class _PiiOrder(NamedTuple):
    """``find_pii``'s order of candidates: earliest start, then longest, then the detector's position."""

    start: int
    minus_length: int
    detector_index: int


class _RegexRuleScan:
    """A term, pattern or hazard rule: every non-empty match of each of its regexes is a verdict."""

    def __init__(self, index: int, rule: Rule, specs: tuple[tuple[str, StreamSpec], ...], seen: SeenChars) -> None:
        self._rule, self._index = rule, index
        self._streams = [(category, RegexStream(spec, seen)) for category, spec in specs]
        self.streams = [stream for _, stream in self._streams]

    def run(self, text: str, below: int, final: bool, pending: list[tuple[ScanOrder, Verdict]]) -> None:
        """Advance the streams short of ``below``, pushing their final matches onto ``pending`` (a heap)."""
        for sub, (category, stream) in enumerate(self._streams):
            if stream.asleep or stream.frontier >= below and not final:
                continue  # a sleeping one has nothing from its resume point on, even at the end (see SeenChars)
            for m in stream.advance(text, final):
                if m.end() > m.start():  # an empty match redacts nothing (as in Rule.scan)
                    heapq.heappush(pending, (_key(m.start(), m.end(), self._rule.id, self._index, sub),
                                             self._rule.verdict(category, m.span())))

    def ready(self, upto: int, pending: list[tuple[ScanOrder, Verdict]]) -> None:
        """Nothing to do: every match is a verdict as soon as it is final."""


class _PiiRuleScan:
    """A pii rule: its detectors' confirmed matches, kept non-overlapping the way ``find_pii`` keeps them."""

    def __init__(self, index: int, rule: Rule, specs: tuple[tuple[Any, StreamSpec], ...], seen: SeenChars) -> None:
        self._rule, self._index = rule, index
        self._detectors = [(detector, RegexStream(spec, seen)) for detector, spec in specs]
        self.streams = [stream for _, stream in self._detectors]
        self._candidates: list[tuple[_PiiOrder, PiiMatch]] = []  # a heap, in find_pii's order
        self._chosen_to = 0  # end of the last match find_pii would keep

    def run(self, text: str, below: int, final: bool, pending: list[tuple[ScanOrder, Verdict]]) -> None:
        """Advance the detectors short of ``below``, keeping their confirmed matches as candidates."""
        for i, (detector, stream) in enumerate(self._detectors):
            if stream.asleep or stream.frontier >= below and not final:
                continue  # as above
            for m in stream.advance(text, final):
                if (match := detector.confirm(text, m)) is not None:
                    heapq.heappush(self._candidates, (_PiiOrder(match.start, match.start - match.end, i), match))

    def ready(self, upto: int, pending: list[tuple[ScanOrder, Verdict]]) -> None:
        """Push the candidates starting at or before ``upto`` that ``find_pii`` keeps onto ``pending``: every
        candidate sorted before them is known (each detector has run past ``upto``)."""
        while self._candidates and self._candidates[0][0].start <= upto:
            _, match = heapq.heappop(self._candidates)
            if match.start >= self._chosen_to:
                self._chosen_to = match.end
                heapq.heappush(pending, (_key(match.start, match.end, self._rule.id, self._index, 0),
                                         self._rule.verdict(f"pii.{match.kind}", (match.start, match.end))))


def _vouchers(regex: re.Pattern[str], gate: Voucher | None = None) -> tuple[Voucher, ...]:
    found = [gate] if gate else []
    for anchor in (regex_anchor(regex), regex_run_anchor(regex)):
        if anchor is not None:
            found.append(Voucher(anchor.regex, anchor.reach, anchor.offset))
    return tuple(sorted(found, key=lambda v: v.hold))


@functools.cache
def _regex_specs(rule: Rule, window: int) -> tuple[tuple[str, StreamSpec], ...]:
    specs = tuple((category, StreamSpec(fast, regex_reach(regex), _vouchers(regex), regex_closure(regex)))
                  for (category, regex), (_, fast) in zip(rule.regexes, rule.search_regexes, strict=True))
    assert all(spec.reach <= window for _, spec in specs), "a rule reaches past the policy window"
    return specs


@functools.cache
def _pii_specs(rule: Rule, window: int) -> tuple[tuple[Any, StreamSpec], ...]:
    specs = []
    for d in detectors_for(rule.pii_kinds):
        # The reach the policy window is built from: the longest match, the cue context after it, lookahead.
        reach, match_reach = d.max_chars + PII_LOOKAHEAD_CHARS, regex_reach(d.pattern)
        gate = None
        if d.gate:  # it lies inside the match, so it starts at most match_reach - 1 past the match's start
            gate_regex = re.compile(d.gate)
            gate = Voucher(gate_regex, regex_reach(gate_regex), match_reach - 1, raw=False)
            if gate.hold > window:
                gate = None  # it could not vouch as far as the settle point: run the detector throughout
        closure = regex_closure(d.pattern) if d.context is None else None  # a context reads past the match
        specs.append((d, StreamSpec(d.search_pattern, reach, _vouchers(d.pattern, gate), closure)))
    assert all(spec.reach <= window for _, spec in specs), "a PII detector reaches past the policy window"
    return tuple(specs)


@dataclass(frozen=True)
class _Plan:
    """What each response's scan of one policy starts from: its rules' specs, the characters their vouchers
    need, the least hold-back. Worked out once per policy object (hashing a policy is itself slow)."""

    rules: tuple[tuple[Rule, tuple[tuple[Any, StreamSpec], ...]], ...]
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
    plan = _Plan(rules, tuple(sorted({ch for spec in specs for ch in voucher_chars(spec)})),
                 max((spec.hold for spec in specs), default=0))
    if len(_PLANS) >= 256:  # forget the policies gone since
        for key in [key for key, (ref, _) in _PLANS.items() if ref() is None]:
            del _PLANS[key]
    _PLANS[id(policy)] = (weakref.ref(policy), plan)
    return plan


def _key(start: int, end: int, rule_id: str, rule_index: int, regex_index: int) -> ScanOrder:
    return ScanOrder(start, start - end, rule_id, rule_index, regex_index)
