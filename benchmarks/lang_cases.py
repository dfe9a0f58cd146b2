"""A labelled set for the data stage's English test, built from text on this machine (nothing downloaded).

    cases = language_cases(per_group=300, seed=0)   # [Case(group, lang, text)], groups below

Labels come from where a text lives, not from any identifier:

* ``en prose``: State of the Union paragraphs, ``en technical+code``: Python documentation sections (both from
  the shipped ``data/sample/corpus.jsonl.gz``, by their ``source``) and English manual pages
  (``/usr/share/man/man{1,5,8}``, one record per ``.SH`` section: option lists, command lines, examples);
* ``en dialogue``: the English chatterbot-corpus conversations in ``data/sample/pairs.jsonl.gz``, turns joined
  in file order into records of 300+ characters;
* ``<lang> ...``: the translated manual pages Debian installs (``/usr/share/man/<lang>/``: dpkg, apt, man-db,
  shadow ...), one record per section, a section left out when more than a tenth of its 4-word sequences also
  appear in the English original page (po4a leaves untranslated paragraphs in English); and the translated messages of
  ``/usr/share/locale/<lang>/LC_MESSAGES/*.mo`` (gettext catalogues; msgstr texts that differ from their
  msgid, joined into records of 300+ characters).

Every record is at least ``MIN_CHARS`` long, the default profile's ``data.min_chars``: shorter ones are
quarantined as too short whatever their language. Roff is turned into text by a small stripper here (requests
dropped, font and character escapes removed), good enough for language, not for typesetting.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
MAN = Path("/usr/share/man")
LOCALE = Path("/usr/share/locale")
MIN_CHARS = 200
RECORD_CHARS = 300  # dialogue and message records are joined up to at least this

_TEXT_MACROS = {"SH", "SS", "B", "I", "BR", "BI", "IB", "RB", "RI", "IR", "SM", "SB", "IP"}
_WORD = re.compile(r"\w+")
_ESCAPES = re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)|\\s[+-]?\d+|\\\*(?:\[[^\]]*\]|\(..|.)|\\[(]..|\\\[[^\]]*\]"
                      r"|\\[&|^:%c]|\\n(?:\[[^\]]*\]|\(..|.)")
_CHARS = {"\\-": "-", "\\e": "\\", "\\ ": " ", "\\~": " ", "\\(aq": "'", "\\(lq": '"', "\\(rq": '"',
          "\\(em": "--", "\\(en": "-", "\\(bu": "*", "\\[aq]": "'", "\\(cq": "'", "\\(oq": "'"}


@dataclass(frozen=True)
class Case:
    group: str  # "en prose", "en technical+code", "en dialogue", or "<lang> man" / "<lang> messages"
    lang: str  # "en" or the directory's language ("de", "pt_BR", "zh_CN" ...)
    text: str


def language_cases(per_group: int = 300, seed: int = 0, langs: tuple[str, ...] | None = None) -> list[Case]:
    """Up to ``per_group`` records of each group, drawn with ``seed``."""
    rng = random.Random(seed)
    groups: dict[str, list[Case]] = {}
    for record in _jsonl(SAMPLE / "corpus.jsonl.gz"):
        group = {"sotu": "en prose", "python-docs": "en technical+code"}.get(record["source"])
        if group and len(record["text"]) >= MIN_CHARS:
            groups.setdefault(group, []).append(Case(group, "en", record["text"]))
    turns = [t for r in _jsonl(SAMPLE / "pairs.jsonl.gz") if r["source"] == "chatterbot"
             for t in (r["prompt"], r["response"])]
    groups["en dialogue"] = [Case("en dialogue", "en", t) for t in _joined(turns, "\n")]
    english_pages = sorted(p for d in ("man1", "man5", "man8") for p in (MAN / d).glob("*.gz"))
    rng.shuffle(english_pages)
    groups["en technical+code"] += [Case("en technical+code", "en", s) for s in _man_sections(english_pages[:120])]
    for lang in langs or _languages():
        pages = sorted((MAN / lang).glob("man*/*.gz"))
        groups[f"{lang} man"] = [Case(f"{lang} man", lang, s) for s in _man_sections(pages, translated=True)]
        messages = [m for mo in sorted((LOCALE / lang / "LC_MESSAGES").glob("*.mo")) for m in _mo_strings(mo)]
        groups[f"{lang} messages"] = [Case(f"{lang} messages", lang, t) for t in _joined(messages, " ")]
    cases = []
    for group in sorted(groups):
        found = groups[group]
        cases += rng.sample(found, min(per_group, len(found)))
    return cases


def _languages() -> list[str]:
    """Languages with translated manual pages here (``de``, ``fr`` ... ``zh_TW``)."""
    return sorted(d.name for d in MAN.iterdir() if d.is_dir() and not d.name.startswith("man")
                  and any(d.glob("man*/*.gz")))


def _jsonl(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        yield from (json.loads(line) for line in fh if line.strip())


def _joined(texts: list[str], sep: str) -> Iterator[str]:
    """Consecutive texts joined into records of at least ``RECORD_CHARS``."""
    buf: list[str] = []
    for text in texts:
        buf.append(text.strip())
        if sum(map(len, buf)) >= RECORD_CHARS:
            yield sep.join(buf)
            buf = []


def _man_sections(pages: list[Path], translated: bool = False) -> Iterator[str]:
    """Each ``.SH`` section of each page as plain text, if at least ``MIN_CHARS`` long; with ``translated``,
    only sections with at most a tenth of their 4-word sequences found in the English original page."""
    for page in pages:
        english: set[tuple[str, ...]] = set()
        if translated:
            originals = sorted(MAN.glob(f"man*/{page.name}")) or sorted(MAN.glob(f"man*/{page.name.split('.')[0]}.*"))
            english = {g for original in originals[:1] for s in _page_sections(original) for g in _grams(s)}
        for text in _page_sections(page):
            grams = _grams(text)
            if len(text) >= MIN_CHARS and sum(g in english for g in grams) * 10 <= len(grams):
                yield text


def _grams(text: str) -> list[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return list(zip(words, words[1:], words[2:], words[3:], strict=False))


def _page_sections(page: Path) -> Iterator[str]:
    try:
        source = gzip.open(page, "rt", encoding="utf-8", errors="replace").read()
    except (OSError, EOFError):
        return
    sections: list[list[str]] = [[]]
    for line in _roff_text(source):
        if line.startswith("\0"):
            sections.append([line[1:]])
        else:
            sections[-1].append(line)
    for section in sections[1:]:
        yield re.sub(r"\n{3,}", "\n\n", "\n".join(section)).strip()


def _roff_text(source: str) -> Iterator[str]:
    """Text lines of a roff page; a section heading comes as ``"\\0" + heading``."""
    in_macro = False
    for line in source.split("\n"):
        if in_macro:
            in_macro = line.strip() != ".."
            continue
        if line.startswith((".", "'")):
            request, _, args = line[1:].strip().partition(" ")
            if request in ("de", "de1", "ig"):
                in_macro = True
            if request in _TEXT_MACROS and args:
                args = args.split('"')[1] if request == "IP" and args.startswith('"') else args  # IP "tag" indent
                text = _unescape(args.replace('"', ""))
                yield "\0" + text if request == "SH" else text
            elif request in ("PP", "LP", "P", "sp", "TP"):
                yield ""
            continue
        yield _unescape(line)


def _unescape(line: str) -> str:
    line = line.split('\\"', 1)[0]
    for escape, char in _CHARS.items():
        line = line.replace(escape, char)
    return _ESCAPES.sub("", line).replace("\\", "")


def _mo_strings(path: Path) -> Iterator[str]:
    """The translated strings (msgstr) of a GNU gettext ``.mo`` catalogue that differ from their msgid, the
    header entry left out (the format: a table of (length, offset) for the msgids, then one for the msgstrs)."""
    data = path.read_bytes()
    if len(data) < 28:
        return
    order = "<" if struct.unpack("<I", data[:4])[0] == 0x950412DE else ">"
    _, count, ids, strs = struct.unpack(order + "4I", data[4:20])

    def entry(table: int, i: int) -> str:
        length, offset = struct.unpack(order + "2I", data[table + 8 * i: table + 8 * i + 8])
        return data[offset:offset + length].decode("utf-8", errors="replace").split("\0")[0]

    for i in range(count):
        msgid, text = entry(ids, i), entry(strs, i)
        if msgid and text and text != msgid:
            yield " ".join(text.split())
