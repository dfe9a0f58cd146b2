"""A labelled PII test set, generated with a seeded Faker: entities embedded in prose, plus hard negatives.

    cases = pii_cases(n_per_kind=200, n_negatives=400, seed=0)
    cases[0]  # PiiCase(text="... write to jane@example.org today ...", spans=(("EMAIL", 31, 47),))

Positives cover every kind ``lmforge.pii`` scrubs, in the formats Faker produces (phones with extensions,
IBANs of several countries, grouped and ungrouped cards, IPv4 and IPv6, key=value secrets and vendor
tokens). Hard negatives are prose with numbers that must stay: years, prices, versions, verse references,
dates, times, ISBNs, coordinates, decimals, 10-digit integers, timestamps and ordinary counts.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from faker import Faker

TEMPLATES = (
    "{pre} You can reach me at {x} if anything changes. {post}",
    "{pre} For the refund, use {x}, as discussed on the phone. {post}",
    "{pre} The value on file was {x}; please double-check it. {post}",
    "{pre} ({x}) {post}",
    "{pre} Details: {x}. {post}",
)


@dataclass(frozen=True)
class PiiCase:
    text: str
    spans: tuple[tuple[str, int, int], ...]  # (kind, start, end) of each planted entity; empty: a negative


def pii_cases(n_per_kind: int, n_negatives: int, seed: int = 0) -> list[PiiCase]:
    """``n_per_kind`` embedded entities of each kind, then ``n_negatives`` texts that hold none."""
    Faker.seed(seed)
    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR", "nl_NL"])
    rng = random.Random(seed)
    cases = []
    for kind, make in _generators(fake, rng).items():
        for _ in range(n_per_kind):
            value = make()
            pre, post = fake["en_US"].sentence(), fake["en_US"].sentence()
            text = rng.choice(TEMPLATES).format(pre=pre, x=value, post=post)
            start = text.index(value)
            cases.append(PiiCase(text, ((kind, start, start + len(value)),)))
    cases += [PiiCase(_negative(fake["en_US"], rng), ()) for _ in range(n_negatives)]
    return cases


def _token(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _grouped(digits: str, rng: random.Random) -> str:
    """A card number as people write it: plain, or in groups of four with spaces or dashes."""
    sep = rng.choice(["", " ", "-"])
    return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4)) if sep else digits


def _generators(fake: Faker, rng: random.Random) -> dict[str, Callable[[], str]]:
    us = fake["en_US"]
    locales = ["en_GB", "de_DE", "fr_FR", "nl_NL"]
    secrets: list[Callable[[], str]] = [
        lambda: "AKIA" + _token(rng, 16, string.ascii_uppercase + string.digits),
        lambda: "sk-" + _token(rng, 48),
        lambda: "ghp_" + _token(rng, 36),
        lambda: "xoxb-" + "-".join(_token(rng, 12, string.digits) for _ in range(2)) + "-" + _token(rng, 24),
        lambda: f"api_key={_token(rng, 32)}",
        lambda: f'password: "{us.password(length=20, special_chars=False)}"',
    ]
    return {
        "EMAIL": lambda: fake[rng.choice(locales + ["en_US"])].email(),
        "PHONE": lambda: us.phone_number() if rng.random() < 0.6 else fake[rng.choice(locales)].phone_number(),
        "CREDIT_CARD": lambda: _grouped(us.credit_card_number(), rng),
        "IBAN": lambda: (lambda iban: iban if rng.random() < 0.5 else " ".join(
            iban[i:i + 4] for i in range(0, len(iban), 4)))(fake[rng.choice(locales)].iban()),
        "SSN": us.ssn,
        "IP_ADDRESS": lambda: us.ipv4() if rng.random() < 0.7 else us.ipv6(),
        "SECRET": lambda: rng.choice(secrets)(),
    }


def _negative(us: Faker, rng: random.Random) -> str:
    """Prose with one to three numbers that look a little like PII but are not."""
    makers: list[Callable[[], str]] = [
        lambda: f"in {rng.randint(1600, 2030)}",
        lambda: f"for ${rng.randint(1, 9999):,}.{rng.randint(0, 99):02d}",
        lambda: f"costs {rng.randint(2, 999)} EUR",
        lambda: f"version {rng.randint(0, 12)}.{rng.randint(0, 40)}.{rng.randint(0, 20)}",
        lambda: f"Python {rng.choice(['3.11.7', '3.12.1', '2.7.18'])}",
        lambda: f"build 10.0.{rng.randint(17000, 26000)}.{rng.randint(1, 3000)}",
        lambda: f"{rng.choice(['John', 'Psalm', 'Genesis', 'Romans'])} {rng.randint(1, 150)}:{rng.randint(1, 40)}",
        lambda: f"Ge{rng.randint(1, 50)}:{rng.randint(1, 30)}",
        lambda: f"on {us.date()}",
        lambda: f"at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
        lambda: f"ISBN 978-{rng.randint(0, 9)}-{rng.randint(10, 99)}-{rng.randint(100000, 999999)}-{rng.randint(0, 9)}",
        lambda: f"at {us.latitude()}, {us.longitude()}",
        lambda: f"a population of {rng.randint(10_000, 99_000_000):,}",
        lambda: f"order number {rng.randint(10_000_000, 99_999_999)}",
        lambda: f"page {rng.randint(1, 900)} of volume {rng.randint(1, 30)}",
        lambda: f"a ratio of {rng.randint(1, 20)}:{rng.randint(1, 20)}",
        lambda: f"score {rng.randint(0, 100)}-{rng.randint(0, 100)}",
        lambda: f"commit {_token(rng, 40, '0123456789abcdef')}",
        lambda: f"room {rng.randint(100, 999)}-{rng.randint(10, 99)}",
        lambda: f"a total of {rng.randint(1_000_000_000, 9_999_999_999)}",  # 10 digits, like 2**32
        lambda: f"e = {rng.randint(1, 9)}.{rng.randint(10**9, 10**11)}",
        lambda: f"at t={rng.randint(10**14, 2 * 10**14)} us",  # microsecond timestamps
        lambda: "the digits b'0123456789'",
    ]
    bits = [rng.choice(makers)() for _ in range(rng.randint(1, 3))]
    return f"{us.sentence()} It happened {', then '.join(bits)}. {us.sentence()}"
