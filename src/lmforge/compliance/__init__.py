"""Output compliance: a versioned policy (PII, banned terms, patterns, output-handling hazards)
applied to whole responses (``apply_policy``) and to streams (``StreamFilter``); every check returns one
``Verdict``."""

from lmforge.compliance.filter import FilterResult, apply_policy
from lmforge.compliance.policy import Policy, PolicyError, load_policy, parse_policy
from lmforge.compliance.streaming import StreamFilter
from lmforge.compliance.verdict import ContentBlocked, Verdict

__all__ = ["ContentBlocked", "FilterResult", "Policy", "PolicyError", "StreamFilter", "Verdict",
           "apply_policy", "load_policy", "parse_policy"]
