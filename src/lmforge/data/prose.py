"""Split a record's text into prose and code, so the quality filters judge the prose and keep the code.

    prose_part(text)     # the lines of ``text`` that are prose, joined; the whole text if too little is prose
    language_part(text)  # what to identify the language on: the prose, or None for code with too little prose

Technical English (documentation, FAQs, docstrings) mixes sentences with code, and a test of letters, repeated
n-grams or language run over the code says nothing about the sentences. Code is recognised by the markup such
text already uses:

* fenced blocks (lines between ````` or ``~~~`` fences, Markdown);
* reST literal blocks: the block indented under a paragraph that ends in ``::`` or under a code directive
  (``.. code-block::``, ``.. doctest::`` ...);
* interactive sessions: a paragraph that starts with a ``>>>`` or ``$`` prompt, its output included;
* any other paragraph (indented or not) whose lines mostly read as code: a statement keyword first
  (``def``, ``import``, ``return`` ...), an assignment, a call, a line ending in ``;``, ``{`` or ``}``, a
  command line with three or more options (``cmd --a=X [--b] -c``), or a row of a grid table (``+---+``, ``| |``).

Everything else is prose: inline code inside a sentence (``json.dumps(obj)``) stays in its sentence. reST
markup at the start of a prose line (``.. note::``, ``:param x:``) is removed from it, its text kept.
"""

from __future__ import annotations

import functools
import re

# Below this many prose characters a record is judged whole: a sentence or two says too little about it.
MIN_PROSE_CHARS = 100
MAX_CODE_LINE = 160  # longer lines are taken for prose unless they are command lines

_FENCE = re.compile(r" *(```|~~~)")
_DIRECTIVE = re.compile(r" *\.\. (code-block|code|sourcecode|doctest|testcode|testoutput|highlight|"
                        r"literalinclude|productionlist)::")
_PROMPT = re.compile(r" *(>>> |\$ |In \[\d+\]: )")
_CODE_LINE = re.compile(
    r" *(?:(?:def|class|import|from|return|raise|yield|assert|elif|except|async|await|lambda|var|let|const|"
    r"function|public|private|static|void|int|char|struct|typedef|#include|#define)\b"
    r"|(?:if|for|while|with|try|else|finally)\b.*:$"
    r"|[#@}{)\]]|//|/\*|\*/|\.\.\. "
    r"|[\w.\[\]\"']+ *(?:[-+*/%|&^]|\*\*|//)?= *\S"  # an assignment: x = 1, d["k"] += 2
    r"|[\w.]+\(.*\)$"  # a bare call: print(x)
    r"|.*[;{}]$)")
_TABLE_ROW = re.compile(r" *(?:\+[-=+]+\+|\|.*\|) *$")  # a grid table's border or row, however wide
_OPTION = re.compile(r"[\[(|]*--?[A-Za-z][\w-]*(?:[=\[].*)?")  # a command-line option: -x, --name=X, [--name
_PLACEHOLDER = re.compile(r"[\[(|]*[A-Z][A-Z0-9_]*[\])|.,]*|[\[\](){}|.:,]+")  # FILE, [ARG], ..., |
_REST_MARKUP = re.compile(r"( *)(?:\.\. [\w:-]+::|:[\w .-]+:(?= |$))")


def prose_part(text: str) -> str:
    """The prose lines of ``text`` (blank lines between paragraphs kept), or ``text`` itself when the prose
    is shorter than ``MIN_PROSE_CHARS``: a record that is nearly all code is judged as a whole."""
    prose, _ = split_code(text)
    return prose if len(prose) >= MIN_PROSE_CHARS or len(prose) == len(text) else text


def language_part(text: str) -> str | None:
    """The text whose language says what language ``text`` is in: its prose, ``text`` itself if it has no
    code, or None when it is code with too little prose (< ``MIN_PROSE_CHARS``) to tell: a command synopsis or
    a listing is in no natural language."""
    prose, code = split_code(text)
    if len(prose) >= MIN_PROSE_CHARS or not code.strip():
        return prose if len(prose) >= MIN_PROSE_CHARS else text
    return None


@functools.lru_cache(maxsize=4)  # every filter of a record asks in turn for the same text's prose
def split_code(text: str) -> tuple[str, str]:
    """(prose, code) of ``text``: each line goes to one of them (blank lines to the prose)."""
    if "\n" not in text:  # one line: a paragraph of prose, or of code
        return ("", text) if _looks_like_code([text]) else (text, "")
    prose: list[str] = []
    code: list[str] = []
    lines = text.split("\n")
    base = 0  # indentation of the last prose line: a block indented deeper belongs to it
    literal = False  # the last prose line introduced a literal block ("::" or a code directive)
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            prose.append("")
            i += 1
            continue
        if _FENCE.match(line):
            end = next((j for j in range(i + 1, len(lines)) if _FENCE.match(lines[j])), len(lines) - 1)
            code += lines[i:end + 1]
            i = end + 1
            continue
        indent = len(line) - len(line.lstrip(" "))
        starts_paragraph = i == 0 or not lines[i - 1].strip()
        if starts_paragraph and indent > base and literal:  # a literal block: all of it deeper than base
            end = i
            while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
                end += 1
            code += lines[i:end]
            i, literal = end, False
            continue
        if starts_paragraph:
            end = next((j for j in range(i, len(lines)) if not lines[j].strip()), len(lines))
            paragraph = lines[i:end]
            if _PROMPT.match(line) or _looks_like_code(paragraph):
                code += paragraph
                i = end
                continue
        prose.append(_REST_MARKUP.sub(r"\1", line, count=1) if line.lstrip().startswith((".. ", ":")) else line)
        base = indent
        literal = line.rstrip().endswith("::") or bool(_DIRECTIVE.match(line))
        i += 1
    return "\n".join(prose).strip("\n"), "\n".join(code)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_code_line(line: str) -> bool:
    """A statement, table row or the like (lines of code are short), or a command line: three or more
    options, and options and placeholders (``FILE``, ``[ARG]``) are half its words or more."""
    if line.count("-") >= 3:  # every option has a dash: most lines are done with this one C-speed count
        tokens = line.split()
        options = sum(bool(_OPTION.fullmatch(t)) for t in tokens)
    else:
        tokens, options = [], 0
    if options >= 3 and 2 * (options + sum(bool(_PLACEHOLDER.fullmatch(t)) for t in tokens)) >= len(tokens):
        return True
    return len(line) <= MAX_CODE_LINE and bool(_CODE_LINE.match(line)) or bool(_TABLE_ROW.match(line))


def _looks_like_code(paragraph: list[str]) -> bool:
    """Half or more of the paragraph's lines read as code (a lone line must, and must not end a sentence)."""
    hits = sum(map(_is_code_line, paragraph))
    if len(paragraph) == 1:
        return hits == 1 and not paragraph[0].rstrip().endswith((".", "?", "!"))
    return hits * 2 >= len(paragraph)
