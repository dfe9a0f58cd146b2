"""A/B: what each of the compliance scanner's optimisations saves, measured against the filter with it removed.

    PYTHONPATH=src python benchmarks/bench_filter_ab.py            # ~3 min on one idle core
    PYTHONPATH=src python benchmarks/bench_filter_ab.py --repeats 5

For each optimisation, in one process, runs with it and without it take turns (A B A B ...) on the shipped
policy, over PII-dense prose (an email, a phone and a host name every ~300 characters) and plain prose, at 1, 4
and 16 KB: ``StreamFilter`` fed 4-character chunks (the gateway's path) and ``apply_policy`` (whole text). It
prints the median over turns of (time without) / (time with) - 1: what removing it would cost. The output is
also checked to be the same both ways.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from lmforge import pii
from lmforge.compliance import StreamFilter, apply_policy, load_policy, regex_stream
from lmforge.compliance import incremental as inc
from lmforge.compliance.policy import Policy
from lmforge.fastre import ascii_twin

ROOT = Path(__file__).resolve().parents[1]
PII_PROSE = ("The committee met on Tuesday to review the harbor budget. For details write to jane.doe@example.com "
             "or call (202) 555-0143; the ledger lives on db7.corp.lmforge.internal. Ships came in with the tide "
             "and left at night, and the clerk noted each one in a book that nobody read. ")
PROSE = ("The committee met on Tuesday to review the harbor budget, and the clerk noted each ship in a book. "
         "Ships came in with the tide and left at night; nobody read the ledger, which lived in a drawer. ")


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _forget_plans() -> None:
    inc._regex_specs.cache_clear()
    inc._pii_specs.cache_clear()
    inc._PLANS.clear()


@contextlib.contextmanager
def no_hoist(policy: Policy) -> Iterator[None]:
    """fastre.faster off: every regex runs as written (its ASCII twin still used)."""
    saved = [(d, d.search_pattern, d.ascii_pattern) for d in pii._DETECTORS]
    rules = [(r, r.search_regexes, r.ascii_regexes) for r in policy.rules]
    for d, _, _ in saved:
        _set(d, "search_pattern", d.pattern)
        _set(d, "ascii_pattern", ascii_twin(d.pattern))
    for r, _, _ in rules:
        _set(r, "search_regexes", r.regexes)
        _set(r, "ascii_regexes", tuple((c, ascii_twin(x)) for c, x in r.regexes))
    _forget_plans()
    try:
        yield
    finally:
        for d, s, a in saved:
            _set(d, "search_pattern", s)
            _set(d, "ascii_pattern", a)
        for r, s, a in rules:
            _set(r, "search_regexes", s)
            _set(r, "ascii_regexes", a)
        _forget_plans()


@contextlib.contextmanager
def no_ascii_twin(policy: Policy) -> Iterator[None]:
    """fastre.ascii_twin off: the Unicode form runs on ASCII text too (the stream runs no twins since 2026-12-03:
    without them it measured 11-17% faster; this toggle now touches apply_policy only)."""
    saved = [(d, d.ascii_pattern, d.ascii_gate) for d in pii._DETECTORS]
    rules = [(r, r.ascii_regexes) for r in policy.rules]
    for d, _, _ in saved:
        _set(d, "ascii_pattern", d.search_pattern)
        _set(d, "ascii_gate", d.gate_regex)
    for r, _ in rules:
        _set(r, "ascii_regexes", r.search_regexes)
    _forget_plans()
    try:
        yield
    finally:
        for d, a, g in saved:
            _set(d, "ascii_pattern", a)
            _set(d, "ascii_gate", g)
        for r, a in rules:
            _set(r, "ascii_regexes", a)
        _forget_plans()


@contextlib.contextmanager
def _patched(owner: object, name: str, value: object) -> Iterator[None]:
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def no_sleep(policy: Policy) -> contextlib.AbstractContextManager[None]:
    """Streams never sleep: each looks for its vouchers at every scan (still without a search where ``lacks``)."""
    return _patched(regex_stream.SeenChars, "sleep", lambda self, stream: None)


def no_required_chars(policy: Policy) -> contextlib.AbstractContextManager[None]:
    """No voucher is known absent without a search (and so no stream sleeps)."""
    return _patched(regex_stream.SeenChars, "lacks", lambda self, voucher, start: False)


@contextlib.contextmanager
def no_jump(policy: Policy) -> Iterator[None]:
    """Streams search from their resume point, not from just before the next anchor."""
    specs = [s for r in policy.rules for _, s in (inc._pii_specs if r.kind == "pii" else inc._regex_specs)(
        r, policy.window)]
    saved = [(s, s.jump) for s in specs]
    for s in specs:
        _set(s, "jump", -1)
    try:
        yield
    finally:
        for s, j in saved:
            _set(s, "jump", j)


@contextlib.contextmanager
def no_pii_anchor(policy: Policy) -> Iterator[None]:
    """find_pii's email detector runs finditer over the whole text, not from before each '@'."""
    saved = [(d, d.anchor) for d in pii._DETECTORS]
    for d, _ in saved:
        _set(d, "anchor", "")
    try:
        yield
    finally:
        for d, a in saved:
            _set(d, "anchor", a)


def no_plan_cache(policy: Policy) -> contextlib.AbstractContextManager[None]:
    """Each response works out its rules' specs again (parsing every regex)."""
    return _patched(inc, "_plan", _uncached_plan)


_cached_plan = inc._plan


def _uncached_plan(policy: Policy) -> inc._Plan:
    _forget_plans()
    return _cached_plan(policy)


OPTIMISATIONS: dict[str, Callable[[Policy], contextlib.AbstractContextManager[None]]] = {
    "fastre hoist (lookbehind moved past the head)": no_hoist,
    "fastre ASCII twins": no_ascii_twin,
    "sleeping streams": no_sleep,
    "required characters (absent without a search)": no_required_chars,
    "jumps to the next anchor": no_jump,
    "find_pii email search from each '@'": no_pii_anchor,
    "per-policy plan cache": no_plan_cache,
}


def _stream(text: str, policy: Policy) -> str:
    sf = StreamFilter(policy)
    out = [sf.feed(text[i:i + 4]) for i in range(0, len(text), 4)]
    return "".join(out) + sf.finish()


def _timed(fn: Callable[[], str]) -> tuple[float, str]:
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


def measure(policy: Policy, repeats: int) -> None:
    texts = {(name, kb): (base * (kb * 1024 // len(base) + 1))[: kb * 1024]
             for name, base in (("PII prose", PII_PROSE), ("plain prose", PROSE)) for kb in (1, 4, 16)}
    paths: dict[str, Callable[[str], str]] = {"StreamFilter": lambda t: _stream(t, policy),
                                              "apply_policy": lambda t: apply_policy(t, policy).text}
    print(f"{'optimisation':<48} {'path':<13} " + " ".join(f"{n[:5]} {kb:>2}K" for n, kb in texts))
    base_ms: dict[tuple[str, str, int], float] = {}
    for opt, off in OPTIMISATIONS.items():
        for path, run in paths.items():
            cells = []
            for key, text in texts.items():
                n = max(2, repeats * 16 // key[1])
                ratios, withs = [], []
                for _ in range(n):
                    with_s, out_with = _timed(lambda: run(text))  # noqa: B023
                    with off(policy):
                        without_s, out_without = _timed(lambda: run(text))  # noqa: B023
                    assert out_with == out_without, (opt, path, key)
                    ratios.append(without_s / with_s)
                    withs.append(with_s)
                base_ms[(path, *key)] = statistics.median(withs) * 1000 / key[1]
                cells.append(f"{(statistics.median(ratios) - 1) * 100:+8.1f}%")
            print(f"{opt:<48} {path:<13} " + " ".join(cells), flush=True)
    print("\nms per KB with every optimisation (median):")
    for path in paths:
        print(f"  {path:<13} " + ", ".join(f"{n} {kb} KB {base_ms[(path, n, kb)]:.3f}" for n, kb in texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="turns on 16 KB (more on shorter texts)")
    args = parser.parse_args()
    measure(load_policy(ROOT / "configs" / "policy.yaml"), args.repeats)


if __name__ == "__main__":
    main()
