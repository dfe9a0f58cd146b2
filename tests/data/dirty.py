"""A dirty 50-record corpus with planted defects and 10 pairs, built in code (no files shipped)."""

from __future__ import annotations

import json
import random
from pathlib import Path

_ADJ = "quiet busy ancient modern bright dark narrow wide gentle rough".split()
_NOUN = ("harbor river market village council engine garden letter bridge school road tower forest meadow "
         "station library").split()
_VERB = "crossed watched opened followed carried painted measured repaired visited described".split()


def english_doc(rng: random.Random, sentences: int = 14) -> str:
    """Random English-like prose: stop words at a natural rate, almost no shared 5-word shingles."""
    out = []
    for _ in range(sentences):
        a, b = rng.sample(_NOUN, 2)
        out.append(f"The {rng.choice(_ADJ)} {a} {rng.choice(_VERB)} the {rng.choice(_ADJ)} {b} and then it "
                   f"was {rng.choice(_ADJ)} for {rng.randint(2, 99)} days.")
    return " ".join(out)


# What the dirty corpus plants, and the rule each planted record must end up under.
PLANTED = {"exact_dup": 3, "near_dup": 3, "low_alpha": 3, "repetitive_lines": 1, "repetitive_ngrams": 1,
           "not_english": 2, "empty": 2, "too_short": 1}
PII_DOCS = 4


def dirty_corpus(seed: int = 0) -> list[dict]:
    """50 prose records: 34 good (4 carrying PII), 16 planted defects (``PLANTED``)."""
    rng = random.Random(seed)
    good = [{"id": f"good-{i}", "text": english_doc(rng), "source": "fixture", "license": "CC0"}
            for i in range(30)]
    pii = ["Write to jane.doe@example.com or call (202) 555-0143.", "Card 4111 1111 1111 1111 was used.",
           "The server at 10.20.30.40 answered.", "Her SSN 536-22-1234 was on file."]
    for i, line in enumerate(pii):
        good.append({"id": f"pii-{i}", "text": english_doc(rng) + " " + line, "source": "fixture"})
    planted = []
    for i in range(3):  # same text once normalised: case, spacing, a zero-width space
        text = "  " + good[i]["text"].upper().replace(" ", "  \u200b", 1)
        planted.append({"id": f"exact-{i}", "text": text})
    for i in range(3):  # one word changed in a ~170-word document: Jaccard ~0.93
        words = good[10 + i]["text"].split()
        words[40] = "zeppelin"
        planted.append({"id": f"near-{i}", "text": " ".join(words)})
    for i in range(3):
        planted.append({"id": f"table-{i}", "text": " | ".join(str(n * (i + 7)) for n in range(80))})
    planted.append({"id": "lines", "text": "\n".join(["Click here to subscribe to our newsletter."] * 12)})
    planted.append({"id": "ngrams", "text": "buy now and save big " * 30})
    planted += [{"id": f"german-{i}", "text": "Der schnelle braune Fuchs springt über den faulen Hund, "
                 "während die Katze im Garten schläft und der Vogel singt. " * 3} for i in range(2)]
    planted += [{"id": "empty-0", "text": ""}, {"id": "empty-1", "text": " \u200b\x00\n\t \ufeff "}]
    planted.append({"id": "short", "text": "A short note about the weather."})
    records = good + planted
    assert len(records) == 50
    return records


def dirty_pairs() -> list[dict]:
    pairs = [{"id": f"p-{i}", "prompt": f"What is item number {i} in the {n}?",
              "response": f"It is the {n} entry listed as item {i}, a {a} one."}
             for i, (n, a) in enumerate(zip(_NOUN[:7], _ADJ[:7], strict=True))]
    pairs.append({"id": "p-dup", "prompt": pairs[0]["prompt"], "response": pairs[0]["response"]})
    pairs.append({"id": "p-empty", "prompt": "  \x00", "response": "Something."})
    pairs.append({"id": "p-pii", "prompt": "Who do I email?", "response": "Email bob@example.org today."})
    return pairs


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
