"""Write a large prose JSONL (default ~100 MB) for memory and throughput runs, from the shipped sample.

    python benchmarks/make_big_corpus.py /tmp/big/corpus.jsonl --mb 100
    lmforge data --step ingest --input /tmp/big/corpus.jsonl --out /tmp/big/work

Each output record is one sample document with about ``--swap`` of its words replaced by words drawn from the
whole sample (so stop-word rates stay English-like), under a unique id. With 5-word shingles and a swap rate
of 0.2 two copies of a document share only ~(1 - 0.2)^5 ≈ 1/3 of their shingles, well under the
near-duplicate threshold, so dedup keeps nearly all of it. Streams its output: memory stays at the sample's.
Never write the output inside the repository.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "corpus.jsonl.gz"


def make_big_corpus(out: Path, megabytes: float, swap: float = 0.2, seed: int = 0) -> tuple[int, int]:
    """Write ``out`` until it holds ``megabytes`` MB; return (records, bytes)."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh if line.strip()]
    vocab = [w for d in docs[:200] for w in d["text"].split()]  # word frequencies of real prose
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = records = 0
    with open(out, "w", encoding="utf-8") as dst:
        copy = 0
        while written < target:
            for doc in docs:
                words = [rng.choice(vocab) if rng.random() < swap else w for w in doc["text"].split(" ")]
                line = json.dumps({"id": f"{doc['id']}-c{copy}", "text": " ".join(words),
                                   "source": doc.get("source", "sample"), "license": doc.get("license", "")},
                                  ensure_ascii=False) + "\n"
                dst.write(line)
                written += len(line.encode("utf-8"))
                records += 1
                if written >= target:
                    break
            copy += 1
    return records, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="output JSONL (outside the repository, e.g. /tmp/big/corpus.jsonl)")
    parser.add_argument("--mb", type=float, default=100.0, help="size to write, in MB (10^6 bytes)")
    parser.add_argument("--swap", type=float, default=0.2, help="share of words replaced per copy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if ROOT in args.out.resolve().parents:
        parser.error(f"{args.out} is inside the repository; write it under /tmp")
    records, size = make_big_corpus(args.out, args.mb, args.swap, args.seed)
    print(f"wrote {records} records, {size / 1e6:.1f} MB to {args.out}")


if __name__ == "__main__":
    main()
