"""``lmforge filter``: run the compliance policy over JSONL on stdin, whole or in streamed chunks.

    echo '{"text": "mail bob@example.com"}' | lmforge filter --stream-chunks 3
    {"text": "mail <EMAIL>", "actions": [{"rule": "pii", "category": "pii.EMAIL", ...}], "blocked": false}

Returns 0 when every line was read, 1 when the policy is malformed or a line is not ``{"text": str}``
(that line gets ``{"error": ...}`` and the rest still run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from lmforge.compliance.filter import FilterResult, apply_policy
from lmforge.compliance.policy import Policy, PolicyError, load_policy
from lmforge.compliance.streaming import StreamFilter
from lmforge.compliance.verdict import ContentBlocked


def run_filter_cli(policy_path: Path, stream_chunks: int | None, stdin: TextIO, stdout: TextIO) -> int:
    try:
        policy = load_policy(policy_path)
    except PolicyError as err:
        print(json.dumps({"error": str(err)}), file=stdout)
        return 1
    if stream_chunks is not None and stream_chunks < 1:
        print(json.dumps({"error": "--stream-chunks must be at least 1"}), file=stdout)
        return 1
    code = 0
    for number, line in enumerate(stdin, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            text = record["text"]
            if not isinstance(text, str):
                raise TypeError("'text' is not a string")
        except (ValueError, KeyError, TypeError) as err:
            print(json.dumps({"error": f"line {number}: expected {{\"text\": str}} ({err})"}), file=stdout)
            code = 1
            continue
        result = filter_streamed(text, policy, stream_chunks) if stream_chunks else apply_policy(text, policy)
        actions = [{"rule": v.rule, "category": v.category, "action": v.action,
                    "span": list(v.span) if v.span else None} for v in result.verdicts]
        print(json.dumps({"text": result.text, "actions": actions, "blocked": result.blocked}), file=stdout)
    return code


def filter_streamed(text: str, policy: Policy, chunk_chars: int) -> FilterResult:
    """Feed ``text`` through a StreamFilter in ``chunk_chars`` pieces, reported like apply_policy."""
    sf = StreamFilter(policy)
    out: list[str] = []
    try:
        for i in range(0, len(text), chunk_chars):
            out.append(sf.feed(text[i:i + chunk_chars]))
        out.append(sf.finish())
    except ContentBlocked as blocked:
        return FilterResult("", [*sf.verdicts, blocked.verdict], True)
    return FilterResult("".join(out), sf.verdicts, False)
