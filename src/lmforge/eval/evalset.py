"""The held-out eval set, made from the shipped data and checked against every training set.

    summary = build_eval_set(cfg)     # writes runs/<profile>/eval/ (qa, ifeval, heldout JSONL + manifest)

Items come only from the data stage's validation split (``records.val_ids``: instruction pairs in
``shards/sft_val.jsonl``, prose documents of ``clean/corpus.jsonl`` whose id is held out), which no training
stage learns from. Each candidate is then checked for word n-gram overlap (``eval.decontam_ngram``) with every
training set: the SFT pairs of ``shards/sft_train.jsonl`` and the pretraining documents. Overlapping items are
dropped and counted in ``manifest.json``, per training set.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lmforge.artifacts import atomic_dir, require_complete, write_json_atomic
from lmforge.config import LMForgeConfig
from lmforge.data.records import JsonlWriter, read_jsonl, split_draw, val_ids
from lmforge.eval.instructions import attach_instruction, plan_instruction
from lmforge.eval.metrics import ngrams, normalize_answer

QA_FILE, IFEVAL_FILE, HELDOUT_FILE = "qa.jsonl", "ifeval.jsonl", "heldout.jsonl"


@dataclass(frozen=True)
class EvalSetSummary:
    directory: str
    qa_items: int
    ifeval_items: int
    heldout_docs: int
    candidates: int
    contaminated: dict[str, int]  # training set -> eval candidates dropped for sharing an n-gram with it
    ngram: int


def build_eval_set(cfg: LMForgeConfig) -> EvalSetSummary:
    """Pick held-out pairs and documents, drop those that overlap training text, write ``cfg.paths.eval_set``."""
    section, shards, clean = cfg.eval, cfg.paths.shards, cfg.paths.clean
    require_complete(shards, "packed shards")
    require_complete(clean, "clean data")
    pairs = sorted(read_jsonl(shards / "sft_val.jsonl"), key=lambda r: split_draw(r["id"], cfg.data.seed))
    held_docs = val_ids(clean / "corpus.jsonl", cfg.data.seed, cfg.data.val_fraction)
    docs = [{"id": r["id"], "text": r["text"][:section.ppl_chars]}
            for r in read_jsonl(clean / "corpus.jsonl") if r["id"] in held_docs][:section.ppl_docs]
    n = section.decontam_ngram
    candidates = {f"pair:{r['id']}": f"{r['prompt']} {r['response']}" for r in pairs}
    candidates.update({f"doc:{d['id']}": d["text"] for d in docs})
    training = {
        "sft_train": (f"{r['prompt']} {r['response']}" for r in read_jsonl(shards / "sft_train.jsonl")),
        "pretrain_corpus": (r["text"] for r in read_jsonl(clean / "corpus.jsonl") if r["id"] not in held_docs),
    }
    hits = overlapping(candidates, training, n)
    dropped = set().union(*hits.values())
    clean_pairs = [r for r in pairs if f"pair:{r['id']}" not in dropped]
    qa = clean_pairs[:section.qa_items]
    # Instruction items take pairs the QA task did not use, then (a small validation split) the QA prompts again:
    # held out either way, and the instruction makes it another task.
    instructed = (clean_pairs[section.qa_items:] + qa)[:section.ifeval_items]
    heldout = [d for d in docs if f"doc:{d['id']}" not in dropped]
    if not qa:
        raise ValueError(f"no held-out instruction pair left for the eval set ({len(pairs)} in "
                         f"{shards / 'sft_val.jsonl'}, {len(dropped)} overlapped training data)")

    summary = EvalSetSummary(str(cfg.paths.eval_set), len(qa), len(instructed), len(heldout), len(candidates),
                             {name: len(ids) for name, ids in hits.items()}, n)
    with atomic_dir(cfg.paths.eval_set, {"stage": "eval_set"}) as tmp:
        with JsonlWriter(tmp / QA_FILE) as out:
            for r in qa:
                out.write({"id": r["id"], "prompt": r["prompt"], "response": r["response"]})
        with JsonlWriter(tmp / IFEVAL_FILE) as out:
            for index, r in enumerate(instructed):
                instruction_id, kwargs = plan_instruction(index, r["prompt"], r["response"])
                out.write({"id": r["id"], "prompt": attach_instruction(r["prompt"], instruction_id, kwargs),
                           "instruction_id_list": [instruction_id], "kwargs": [kwargs]})
        with JsonlWriter(tmp / HELDOUT_FILE) as out:
            for d in heldout:
                out.write(d)
        write_json_atomic(tmp / "manifest.json", {**asdict(summary), "dropped": sorted(dropped),
                                                  "sources": {"pairs": str(shards / "sft_val.jsonl"),
                                                              "prose": str(clean / "corpus.jsonl")}})
    return summary


def word_ngrams(text: str, n: int) -> Iterator[int]:
    """Hashes of the normalised word n-grams of ``text`` (hashes keep a large training set's check small)."""
    return (hash(g) for g in ngrams(normalize_answer(text), n))


def overlapping(candidates: dict[str, str], training: dict[str, Iterable[str]], n: int) -> dict[str, set[str]]:
    """For each training set, the candidate keys that share at least one word ``n``-gram with it.

    Only the candidates' n-grams are held in memory; the training texts stream past once."""
    owners: dict[int, set[str]] = {}
    for key, text in candidates.items():
        for gram in word_ngrams(text, n):
            owners.setdefault(gram, set()).add(key)
    hits: dict[str, set[str]] = {}
    for name, texts in training.items():
        found: set[str] = set()
        for text in texts:
            for gram in word_ngrams(text, n):
                found |= owners.get(gram, set())
        hits[name] = found
    return hits


def read_manifest(eval_dir: Path) -> dict[str, Any]:
    import json

    require_complete(eval_dir, "eval set")
    return json.loads((eval_dir / "manifest.json").read_text())
