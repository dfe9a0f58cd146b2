"""Find and scrub personal data and secrets in text: emails, phones, cards, IBANs, SSNs, IPs, API keys.

    find_pii("mail bob@example.com or call +44 20 7946 0958")
    # [PiiMatch(kind='EMAIL', start=5, end=20, text='bob@example.com'), PiiMatch(kind='PHONE', ...)]
    scrub_pii("card 4111 1111 1111 1111")  # ("card <CREDIT_CARD>", Counter({"CREDIT_CARD": 1}))

Each detector is a bounded regex (no unbounded repeat), so ``MAX_MATCH_CHARS[kind]`` is the longest text it
can ever match; a streaming filter holds back that many characters before it releases a chunk. A regex only
proposes a candidate; a checksum or rule then confirms it (python-stdnum's Luhn for cards, IBAN check digits
and country formats, US SSN rules; phonenumbers' possible-number lengths; ``ipaddress`` for IPs, Shannon entropy
for generic secrets), which keeps ordinary prose numbers such as years, verse references (``Ge1:1``) and
version strings out. A bare digit run is a phone in a national form
(trunk 0, 10-11 digits) or, if it reads as a NANP number, only with a phone word (call, tel, mobile ...) in
the same sentence within ``CUE_CHARS``; that look past the match is counted in ``MAX_MATCH_CHARS``.

Speed: a pattern that opens with a lookbehind is tried at every position of the text, so most detectors carry
a ``gate``, a small regex that every confirmed match contains and that opens with a literal or a character
class (which the engine scans for in C); a text without it skips the detector, with the same result. The gate
lies inside the match, so the streaming filter also skips the stretches of a growing text without it.

Used by the data stage (``lmforge.data``) to scrub the corpus and by the compliance filter on model output.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import phonenumbers
from stdnum import iban, luhn
from stdnum.us import ssn

from lmforge import re_syntax
from lmforge.fastre import ascii_twin, faster

PII_KINDS = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "SSN", "IP_ADDRESS", "SECRET")


@dataclass(frozen=True)
class PiiMatch:
    kind: str
    start: int
    end: int
    text: str


def find_pii(text: str, kinds: Iterable[str] | None = None) -> list[PiiMatch]:
    """Every confirmed match in ``text``, sorted by position and non-overlapping (earliest, then longest)."""
    candidates = [m for d in detectors_for(kinds) for m in d.find(text)]
    candidates.sort(key=lambda m: (m.start, -(m.end - m.start)))
    chosen: list[PiiMatch] = []
    for match in candidates:
        if not chosen or match.start >= chosen[-1].end:
            chosen.append(match)
    return chosen


def detectors_for(kinds: Iterable[str] | None = None) -> tuple[_Detector, ...]:
    """The detectors ``find_pii`` runs for ``kinds``, in its order (a streaming scanner drives them itself)."""
    wanted = set(PII_KINDS if kinds is None else kinds)
    unknown = wanted - set(PII_KINDS)
    if unknown:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {PII_KINDS}")
    return tuple(d for d in _DETECTORS if d.kind in wanted)


def scrub_pii(text: str) -> tuple[str, Counter[str]]:
    """Replace every match with ``<KIND>``; return the new text and the number of matches per kind."""
    counts: Counter[str] = Counter()
    pieces: list[str] = []
    last = 0
    for match in find_pii(text):
        pieces += [text[last:match.start], f"<{match.kind}>"]
        counts[match.kind] += 1
        last = match.end
    pieces.append(text[last:])
    return "".join(pieces), counts


# ---- validators: a regex proposes, these confirm ------------------------------------------------------


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def luhn_ok(number: str) -> bool:
    return luhn.is_valid(_digits(number))


def _card_ok(s: str) -> bool:
    digits = _digits(s)
    if len(set(digits)) < 2 or not _card_prefix_ok(digits):
        return False
    groups = re.split(r"[ -]", s)
    # Separators, when present, must be one kind and make groups of 4 (or Amex 4-6-5): not "12 345 6789 ...".
    if len(groups) > 1 and (len({c for c in s if c in " -"}) > 1 or any(len(g) > 6 or len(g) < 4
                                                                      for g in groups[:-1])):
        return False
    return luhn_ok(digits)


def _card_prefix_ok(digits: str) -> bool:
    """Issuer ranges by length: 13-19 digits from 2-6 (Visa, Mastercard, Amex, Discover, JCB, UnionPay),
    12-digit Maestro (50, 56-58, 6x), 15-digit legacy JCB (1800); timestamps (1...) are not cards."""
    n = len(digits)
    if n == 12:
        return digits.startswith(("50", "56", "57", "58", "6"))
    if n == 15 and digits.startswith("1800"):
        return True
    return 13 <= n <= 19 and digits[0] in "23456"


def iban_ok(s: str) -> bool:
    """Check digits (mod 97) and the country's BBAN format."""
    return iban.is_valid(s)


def _ssn_ok(s: str) -> bool:
    """SSA rules: no area 000, 666 or 9xx, group 00 or serial 0000, and none of the numbers known as samples."""
    return ssn.is_valid(s.replace(" ", "-"))


def _phone_ok(s: str) -> bool:
    """A number libphonenumber calls possible (a length for its country): by its country code when it has one,
    as a NANP number otherwise. A European national number (trunk 0) names no country: only its length counts."""
    number = _EXTENSION.sub("", s)
    if number.startswith("+"):
        return _possible_phone(number, None)
    digits = _digits(number)
    if digits.startswith("001") and len(digits) == 13:  # 001: the international prefix, then a NANP number
        digits = digits[3:]
    elif digits.startswith("0"):  # trunk prefix 0, then 9-10 digits
        return 10 <= len(digits) <= 11
    national = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
    # NANP area codes never start with 0 or 1, which libphonenumber's length check does not look at.
    return national[:1] in tuple("23456789") and _possible_phone(national, "US")


def _possible_phone(number: str, region: str | None) -> bool:
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(number, region))
    except phonenumbers.NumberParseException:
        return False


CUE_CHARS = 40  # how far from a bare digit run a phone word may stand (in the same sentence)
_PHONE_CUE = re.compile(
    r"(?i)(?<![a-z])(?:(?:tele)?phon(?:e|es|ed|ing)|tel|call(?:s|ed|ing)?|cell(?:phone)?|mobile|fax|"
    r"dial(?:s|ed|led|ing)?|reach(?:es|ed|ing)?|contact(?:s|ed|ing)?|sms|whatsapp|hotline)(?![a-z])")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]*[A-Z])|\n\s*\n")  # ". Next", a blank line


def _phone_cue_nearby(text: str, start: int, end: int) -> bool:
    """A phone word in the same sentence as ``text[start:end]``, at most ``CUE_CHARS`` before or after it."""
    lo, hi = max(0, start - CUE_CHARS), min(len(text), end + CUE_CHARS)
    for sentence_end in _SENTENCE_END.finditer(text, lo, start):
        lo = sentence_end.end()
    if next_end := _SENTENCE_END.search(text, end, hi):
        hi = next_end.start()
    return bool(_PHONE_CUE.search(text, lo, start) or _PHONE_CUE.search(text, end, hi))


def _ipv4_ok(s: str) -> bool:
    try:
        ipaddress.IPv4Address(s)
    except ValueError:
        return False
    return True


def _ipv6_ok(s: str) -> bool:
    # At least three non-empty groups keeps slices like x[1::2] and C++ "a::b" out.
    if sum(1 for g in s.split(":") if g) < 3:
        return False
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


def shannon_entropy(s: str) -> float:
    """Bits per character of ``s``'s own character distribution."""
    counts = Counter(s)
    return -sum(n / len(s) * math.log2(n / len(s)) for n in counts.values())


def _high_entropy(s: str) -> bool:
    classes = sum(any(f(c) for c in s) for f in (str.islower, str.isupper, str.isdigit))
    return classes >= 2 and shannon_entropy(s) >= 3.5


def _blob_ok(s: str) -> bool:
    # A bare base64-ish run (a PEM body line, a leaked token): needs all three classes and high entropy.
    classes = sum(any(f(c) for c in s) for f in (str.islower, str.isupper, str.isdigit))
    return classes == 3 and shannon_entropy(s) >= 4.5


def _token_ok(s: str) -> bool:
    return any(c.isdigit() for c in s) and any(c.isalpha() for c in s)


# ---- detectors ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Detector:
    kind: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] | None = None
    group: int = 0  # which group is the sensitive span ("api_key=<value>" scrubs only the value)
    gate: str = ""  # a regex in every match ``check`` passes, opening with a literal or class: else skip the text
    context: Callable[[str, int, int], bool] | None = None  # (text, start, end): confirms from the words around
    # A string in every match of ``pattern`` at most ``anchor_offset`` characters past its start (the email's "@",
    # 64 in): ``find`` searches only from the next one less that (``_anchored``), not from every word.
    anchor: str = ""
    anchor_offset: int = 0
    # ``pattern`` compiled to search faster (lmforge.fastre), the same matches: what ``find`` runs, and on
    # ASCII text its ASCII twin (``ascii_pattern``); ``gate`` compiled, and its twin.
    search_pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    ascii_pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    gate_regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    ascii_gate: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "search_pattern", faster(self.pattern))
        object.__setattr__(self, "ascii_pattern", ascii_twin(self.search_pattern))
        gate = re.compile(self.gate) if self.gate else None
        object.__setattr__(self, "gate_regex", gate)
        object.__setattr__(self, "ascii_gate", ascii_twin(gate) if gate is not None else None)

    def find(self, text: str) -> Iterable[PiiMatch]:
        ascii = text.isascii()
        gate = self.ascii_gate if ascii else self.gate_regex
        if gate is not None and not gate.search(text):
            return
        regex = self.ascii_pattern if ascii else self.search_pattern
        for m in _anchored(regex, text, self.anchor, self.anchor_offset) if self.anchor else regex.finditer(text):
            if (match := self.confirm(text, m)) is not None:
                yield match

    def confirm(self, text: str, m: re.Match[str]) -> PiiMatch | None:
        """The PII that regex match ``m`` of ``text`` proposes, if the check and the context confirm it."""
        start, end = m.span(self.group)
        value = m.group(self.group)
        if (self.check is None or self.check(value)) and (self.context is None or self.context(text, start, end)):
            return PiiMatch(self.kind, start, end, value)
        return None

    @property
    def max_chars(self) -> int:
        """Characters past a match start this detector reads: the longest match, plus the context after it."""
        width = re_syntax.width(self.pattern)[1]
        return width + (CUE_CHARS if self.context is not None else 0)


def _anchored(regex: re.Pattern[str], text: str, anchor: str, offset: int) -> Iterator[re.Match[str]]:
    """``regex.finditer(text)`` for a regex whose matches are not empty and each hold ``anchor`` at most
    ``offset`` characters past their start. A match starting at or after ``pos`` holds an anchor there too, so
    at or after the first one from ``pos``, ``at``: it starts at ``at - offset`` or later, and a search from
    there finds the one finditer would (a lookbehind still reads the text before it)."""
    pos = 0
    while (at := text.find(anchor, pos)) >= 0:
        if (m := regex.search(text, max(pos, at - offset))) is None:
            return
        yield m
        pos = m.end()


_SEP = r"[ .-]"
_END = r"(?![\w-]|[.,-]\d)"  # not followed by more of a number ("555-123-4567-89", "1.2.3.4.5")
_EXTENSION_BODY = r" ?(?:x|ext\.?|#) ?\d{1,6}"  # an extension is part of the number: 202-555-0143x123
_EXT = rf"(?:{_EXTENSION_BODY})?"
_EXTENSION = re.compile(_EXTENSION_BODY)
# A NANP number, its country prefix optional: (?:\+?1 ?|001 )?(?:\(\d{3}\) ?|\d{3} )\d{3} \d{4}, separators any of
# _SEP. It is written out as the branches the optional prefix stands for, in the order re tries them (with the
# prefix, then without), so that every branch opens with one character atom and lmforge.fastre can hoist the
# lookbehind past a class of them ([(+01\d]): a leading optional group makes re try every position.
_NANP_AREA = rf"(?:\(\d{{3}}\){_SEP}?|\d{{3}}{_SEP})"
_NANP_LINE = rf"\d{{3}}{_SEP}\d{{4}}{_EXT}{_END}"
_NANP_BRANCHES = (*(rf"{prefix}{_NANP_AREA}{_NANP_LINE}" for prefix in (rf"\+1{_SEP}?", rf"1{_SEP}?", rf"001{_SEP}")),
                  rf"\(\d{{3}}\){_SEP}?{_NANP_LINE}", rf"\d{{3}}{_SEP}{_NANP_LINE}")
NANP_COMPACT = rf"(?<![\w+.])(?:\+?1{_SEP}?|001{_SEP})?{_NANP_AREA}{_NANP_LINE}"  # the same, as tests check
_DETECTORS: tuple[_Detector, ...] = (
    _Detector("EMAIL", re.compile(
        r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.){1,6}[A-Za-z]{2,24}(?![\w-])"),
        gate="@", anchor="@", anchor_offset=64),
    _Detector("PHONE", re.compile(  # NANP: (202) 555-0143, 202.555.0143, +1 202-555-0143x123, 001-202-555-0143
        rf"(?<![\w+.])(?:{'|'.join(_NANP_BRANCHES)})"), _phone_ok, gate=r"\d\d\d[ .-]\d{4}"),  # not \d{3}: see _NANP
    _Detector("PHONE", re.compile(  # European national: 0131 496 0900, (0306) 9990087, 03 58 96 36 51
        rf"(?<![\w+.,-])(?:\(0\d{{1,4}}\){_SEP}?|0\d{{1,4}}{_SEP})\d{{2,4}}(?:{_SEP}?\d{{2,4}}){{0,3}}{_EXT}{_END}"),
        _phone_ok, gate=r"0\d{1,4}\)?[ .-]?\d\d"),
    _Detector("PHONE", re.compile(  # international: +44 20 7946 0958, +49 (30) 123456, +33612345678
        rf"(?<![\w+])\+[1-9]\d{{0,3}}(?:{_SEP}?(?:\(\d{{1,4}}\)|\d{{1,6}})){{1,6}}{_END}"), _phone_ok,
        gate=r"\+[1-9]"),
    # Bare digit runs. A national number with its trunk 0 and a national length (0644659514, 01134960123):
    # amounts and counts never start with 0, so none needs a cue; quoted, #- or /-attached runs are code.
    _Detector("PHONE", re.compile(r"(?<![\w+.,'\"#$/\\-])0(?!00)\d{9,10}(?![\w'\"/\\-]|[.,]\d)"), _phone_ok,
              gate=r"0\d{9}"),
    # A bare NANP number (5586235703) reads exactly like an integer (2**32 = 4294967296, a total, an id), so it
    # counts only beside a phone word: "call 5586235703", "use 8566246292, as discussed on the phone".
    _Detector("PHONE", re.compile(r"(?<![\w+.,'\"#$/\\-])1?[2-9]\d{2}[2-9]\d{6}(?![\w'\"/\\-]|[.,]\d)"),
              _phone_ok, gate=r"[2-9]\d{2}[2-9]\d{6}", context=_phone_cue_nearby),
    _Detector("CREDIT_CARD", re.compile(r"(?<![\w-])(?:\d[ -]?){11,18}\d(?![\w-])"), _card_ok,
              gate=r"\d(?:[ -]?\d){11}"),
    _Detector("IBAN", re.compile(
        r"(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![\w-])"), iban_ok,
        gate=r"\d(?<=[A-Z]{2}\d)\d"),
    _Detector("SSN", re.compile(r"(?<![\w-])\d{3}([- ])\d{2}\1\d{4}(?![\w-]|[.-]\d)"), _ssn_ok,
              gate=r"\d\d[- ]\d{4}"),
    _Detector("IP_ADDRESS", re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)"), _ipv4_ok,
              gate=r"\d\.\d{1,3}\.\d{1,3}\.\d"),
    _Detector("IP_ADDRESS", re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"),
              _ipv6_ok, gate=":[0-9A-Fa-f]{0,4}:"),
    _Detector("SECRET", re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])"), gate="A[KS]IA"),
    _Detector("SECRET", re.compile(r"(?<![\w-])sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,128}(?![\w-])"), _token_ok,
              gate="sk-"),
    _Detector("SECRET", re.compile(r"(?<!\w)gh[pousr]_[A-Za-z0-9]{36,80}(?!\w)"), gate="gh[pousr]_"),
    _Detector("SECRET", re.compile(r"(?<!\w)xox[abprs]-[A-Za-z0-9-]{10,72}(?!\w)"), _token_ok, gate="xox"),
    _Detector("SECRET", re.compile(r"-----BEGIN (?:[A-Z0-9]{1,10} ){0,2}PRIVATE KEY-----")),
    _Detector("SECRET", re.compile(  # api_key = "...", token: ..., password=...
        r"(?i)(?<![a-z])(?:api[_-]?key|apikey|secret(?:[_-]?key)?|access[_-]?key|auth[_-]?token|token|"
        r"password|passwd)[\"']?\s{0,3}[:=]\s{0,3}[\"']?([A-Za-z0-9_./+=-]{16,128})"),
        _high_entropy, group=1, gate=r"[:=]\s{0,3}[\"']?[A-Za-z0-9_./+=-]{16}"),
    _Detector("SECRET", re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{40,100}={0,2}(?![A-Za-z0-9+/=])"),
              _blob_ok, gate=r"\d(?:[A-Za-z0-9+/]{19}|(?<=[A-Za-z0-9+/]{20}))"),  # _blob_ok wants a digit
)

MAX_MATCH_CHARS: dict[str, int] = {
    kind: max(d.max_chars for d in _DETECTORS if d.kind == kind) for kind in PII_KINDS
}
assert all(n < 1_000 for n in MAX_MATCH_CHARS.values()), f"an unbounded PII regex: {MAX_MATCH_CHARS}"
