"""Shared cases of the eval tests: reference questions and answers, and a data-stage output to cut an eval
set from (one held-out pair deliberately repeats a training answer)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from lmforge.artifacts import atomic_dir

QUESTIONS = [
    ("What does the json module do?", "It encodes and decodes JSON documents."),
    ("Define the noun harbor.", "A harbor is a sheltered place where ships stay."),
    ("How do I read a file in Python?", "Open it with open and call read on the file object."),
    ("What is a list comprehension?", "A short way to build a list from an iterable."),
    ("Write one sentence about the sea.", "The sea was calm under the morning sun."),
    ("What does the os module do?", "It gives access to the operating system, such as files and paths."),
    ("Define the verb sail.", "To travel on water in a ship or boat."),
    ("What is a tuple?", "An immutable sequence of values."),
    ("What is recursion?", "A function that calls itself on a smaller problem."),
    ("What does print do?", "It writes text to standard output."),
]
CONTAMINATED = ("What is a dictionary in Python?",
                "A dictionary maps keys to values and looks them up by key in constant time on average.")
WORDS = ("harbor ship tide morning town gull storm lamp letter keeper winter wreck rope sail anchor pier "
         "fish net boat dock wave shore cliff bell").split()


def prose(seed: int) -> str:
    """A document of its own: no 8-gram shared with another seed's (with overwhelming odds)."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(120)) + "."


def write_data_stage(work: Path) -> None:
    """``shards/sft_{train,val}.jsonl`` and ``clean/corpus.jsonl`` as the data stage leaves them."""
    val = [{"id": f"v{i}", "prompt": q, "response": a} for i, (q, a) in enumerate(QUESTIONS)]
    val.append({"id": "leak", "prompt": CONTAMINATED[0], "response": CONTAMINATED[1]})
    train = [{"id": "t0", "prompt": "Tell me about dictionaries.", "response": CONTAMINATED[1]},
             {"id": "t1", "prompt": "Name a fruit.", "response": "An apple."}]
    with atomic_dir(work / "shards", {"stage": "pack"}) as tmp:
        (tmp / "sft_val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val))
        (tmp / "sft_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    docs = [{"id": f"d{i}", "text": prose(i), "source": "test", "license": "CC0"} for i in range(6)]
    with atomic_dir(work / "clean", {"stage": "clean"}) as tmp:
        (tmp / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in docs))
