"""Code-aware judging: prose split from code, the English test on prose, code-only records kept."""

from __future__ import annotations

from lmforge.data.filters import English, RepeatedLines, TopNgramShare
from lmforge.data.prose import language_part, split_code

PROSE = ("The json module encodes Python objects as JSON text and decodes them again. It accepts dictionaries, "
         "lists, strings and numbers, and you can teach it other types with a default function.")
GERMAN = ("Das Modul json wandelt Python-Objekte in JSON-Text um und liest ihn wieder ein. Es nimmt Wörterbücher, "
          "Listen, Zeichenketten und Zahlen, und andere Typen lernt es über eine eigene Funktion.")
CODE = "import json\nprint(json.dumps({'a': 1}))\nvalue = json.loads(text)\nfor key in value:\n    print(key)"


def test_split_code_recognises_fences_literal_blocks_sessions_and_command_lines() -> None:
    fenced = f"{PROSE}\n\n```python\n{CODE}\n```"
    rest = f"{PROSE} For example::\n\n    {CODE.replace(chr(10), chr(10) + '    ')}\n\nThat is all."
    session = f"{PROSE}\n\n>>> import json\n>>> json.dumps([1, 2])\n'[1, 2]'"
    synopsis = f"{PROSE}\n\ngcloud compute images update NAME [--family=FAMILY] [--labels=[KEY=VALUE,...]] --async"
    for text in (fenced, rest, session, synopsis):
        prose, code = split_code(text)
        assert prose.startswith(PROSE) and "json.dumps" not in prose.replace(PROSE, "") and code.strip()
    assert split_code(rest)[0].endswith("That is all.")
    table = "+-----+-----+\n| a | b |\n+=====+=====+"
    assert split_code(f"{PROSE}\n\n{table}")[1] == table
    assert split_code(PROSE) == (PROSE, "")  # a sentence that mentions json.dumps() stays prose


def test_language_part_is_the_prose_or_none_for_code_with_little_prose() -> None:
    assert language_part(f"{PROSE}\n\n```\n{CODE}\n```") == PROSE
    assert language_part(f"Example:\n\n```\n{CODE}\n```") is None
    assert language_part("Short.") == "Short."  # no code at all: the text itself


def test_english_test_judges_the_prose_and_keeps_the_code() -> None:
    english = English(0.5)
    heavy = f"{PROSE}\n\n```python\n{CODE * 6}\n```"  # more code than prose
    assert english.filter({"text": heavy}) == (True, "")
    assert english.filter({"text": f"{GERMAN}\n\n```python\n{CODE}\n```"}) == (False, "not_english")
    assert english.filter({"text": f"Beispiel:\n\n```\n{CODE}\n```"}) == (True, "")  # code only: kept, counted
    assert english.code_only == 1
    assert english.filter({"text": "Der Hund schläft im Garten neben dem Haus"}) == (False, "not_english")


def test_repetition_filters_ignore_code_and_layout() -> None:
    doc = PROSE + "\n\n```\n" + "print(x)\n" * 20 + "```\n\n*\n\n*\n\n*\n\n" + PROSE.replace("json", "csv")
    assert RepeatedLines(0.3).filter({"text": doc}) == (True, "")
    assert TopNgramShare(0.2).filter({"text": doc + "\n\n" + "    x = 1\n" * 50}) == (True, "")
    assert TopNgramShare(0.2).filter({"text": "buy it now " * 20}) == (False, "repetitive_ngrams")
