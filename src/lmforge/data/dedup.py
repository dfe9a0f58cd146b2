"""Deduplication filters: exact (hash of the normalised text) and near-duplicate (MinHash LSH).

Both keep the first record they see and quarantine later copies (``exact_dup``, ``near_dup``). Their indexes
are the only memory the cleaning pipeline holds that grows with the corpus: 16 bytes per record for exact,
``8 * perm`` bytes per record (the signature, kept to confirm LSH candidates) for near.
"""

from __future__ import annotations

import hashlib
import operator
import re

import numpy as np
from datasketch import MinHash, MinHashLSH

from lmforge.data.pipeline import Filter
from lmforge.data.records import Record, text_fields

_WORD = re.compile(r"\w+")
_DIGEST = operator.methodcaller("digest")


def content_hash(record: Record) -> bytes:
    """Digest of the text fields, case- and whitespace-insensitive."""
    text = "\x00".join(" ".join(record[f].lower().split()) for f in text_fields(record))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class ExactDedup(Filter):
    name = "exact_dedup"

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[bytes] = set()

    def filter(self, record: Record) -> tuple[bool, str]:
        digest = content_hash(record)
        if digest in self._seen:
            return False, "exact_dup"
        self._seen.add(digest)
        return True, ""


def shingles(text: str, size: int) -> set[bytes]:
    """Word ``size``-grams of the lower-cased text; a text shorter than that is one shingle."""
    tokens = _WORD.findall(text.lower())
    if len(tokens) < size:
        return {" ".join(tokens).encode()}
    # Each gram is a tuple from zipping shifted copies, joined and encoded by C calls through ``map``.
    grams = zip(*(tokens[i:] for i in range(size)), strict=False)  # shorter copies end it at the last whole one
    return set(map(str.encode, map(" ".join, grams)))


def shingle_hashes(text: str, size: int) -> np.ndarray:
    """datasketch's default hash of each of ``shingles(text, size)``, without a Python-level loop.

    ``sha1_hash32`` is the first 4 bytes of the SHA-1 digest read as a little-endian uint32: the digests are
    made by C calls through ``map``, joined, and read by numpy, 20 bytes (five uint32) per shingle.
    """
    digests = b"".join(map(_DIGEST, map(hashlib.sha1, shingles(text, size))))
    return np.frombuffer(digests, dtype="<u4").reshape(-1, 5)[:, 0]  # (n_shingles,)


class MinHashDedup(Filter):
    """Near-duplicates by MinHash LSH with ``bands`` x ``rows`` = ``perm``, confirmed against ``threshold``.

    LSH proposes candidates whose signatures agree on a whole band; a candidate counts as a duplicate only
    if the estimated Jaccard similarity (share of equal signature slots) reaches ``threshold`` less two
    standard errors of that estimate (``sqrt(t (1 - t) / perm)``: 0.07 at t=0.8, perm=128). Confirming at
    ``threshold`` itself would pass only about half the pairs whose true similarity is exactly ``threshold``;
    with the margin recall there follows the LSH curve ``1 - (1 - t^r)^b`` (0.95 for b=16, r=8), while pairs
    at 0.5 stay ~8 standard errors below it (``benchmarks/bench_data.py`` measures both).
    """

    name = "minhash_dedup"

    def __init__(self, perm: int, bands: int, threshold: float, shingle_size: int, seed: int = 1) -> None:
        super().__init__()
        if perm % bands:
            raise ValueError(f"minhash_perm={perm} is not a multiple of minhash_bands={bands}")
        self.perm, self.bands, self.rows = perm, bands, perm // bands
        self.threshold, self.shingle_size, self.seed = threshold, shingle_size, seed
        self.confirm_at = threshold - 2 * (threshold * (1 - threshold) / perm) ** 0.5
        self._lsh = MinHashLSH(num_perm=perm, params=(bands, self.rows))
        self._template = MinHash(num_perm=perm, seed=seed)  # permutations are built once, then shared
        self._signatures: dict[str, np.ndarray] = {}
        self.candidates = 0

    def filter(self, record: Record) -> tuple[bool, str]:
        # The shingles arrive hashed (``shingle_hashes``), so the hash function only hands each value on.
        minhash = MinHash(num_perm=self.perm, seed=self.seed, hashfunc=int,
                          permutations=self._template.permutations, scheme=self._template.scheme)
        text = " ".join(record[f] for f in text_fields(record))
        minhash.update_batch(shingle_hashes(text, self.shingle_size).tolist())
        for key in self._lsh.query(minhash):
            self.candidates += 1
            if np.mean(self._signatures[key] == minhash.hashvalues) >= self.confirm_at:
                return False, "near_dup"
        key = f"{len(self._signatures)}"
        self._lsh.insert(key, minhash)
        self._signatures[key] = minhash.hashvalues.copy()
        return True, ""

    def stats(self) -> dict[str, object]:
        return {**super().stats(), "perm": self.perm, "bands": self.bands, "rows": self.rows,
                "threshold": self.threshold, "confirm_at": round(self.confirm_at, 4), "shingle_size": self.shingle_size,
                "lsh_candidates": self.candidates}
