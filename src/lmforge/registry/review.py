"""What a reviewer reads before promoting a model: sample generations, a compliance report, a model card.

All three are computed from the exported model directory, never typed in: the samples are greedy chat
completions of ``registry.sample_prompts``, and the compliance report runs the serving policy over them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class ComplianceReport:
    policy_version: str
    responses: int
    acted_on: int  # responses where any rule redacted, blocked or flagged
    blocked: int
    actions_by_rule: dict[str, int]

    @property
    def violation_rate(self) -> float:
        return self.acted_on / self.responses if self.responses else 0.0


def generate(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int = 64) -> list[str]:
    """Greedy chat completions, one per prompt (the same template vLLM's chat endpoint applies)."""
    outputs = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt",
            return_dict=True,
        )["input_ids"]  # (1, T)
        with torch.no_grad():
            out = model.generate(
                ids, max_new_tokens=max_new_tokens, do_sample=False,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                tokenizer=tokenizer,  # the version's stop strings (generation_config.json) need it
            )  # (1, T + new)
        outputs.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    return outputs


def sample_generations(model_dir: Path, prompts: list[str], max_new_tokens: int = 64) -> list[dict[str, str]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    completions = generate(model, tokenizer, prompts, max_new_tokens)
    return [{"prompt": p, "completion": c} for p, c in zip(prompts, completions, strict=True)]


def compliance_report(completions: list[str], policy_path: Path) -> ComplianceReport:
    """Run the serving policy over each completion and count what it had to do."""
    from lmforge.compliance.filter import apply_policy
    from lmforge.compliance.policy import load_policy

    policy = load_policy(policy_path)
    by_rule: dict[str, int] = {}
    acted = blocked = 0
    for text in completions:
        result = apply_policy(text, policy)
        acted += bool(result.verdicts)
        blocked += bool(result.blocked)
        for verdict in result.verdicts:
            by_rule[verdict.rule] = by_rule.get(verdict.rule, 0) + 1
    return ComplianceReport(str(policy.version), len(completions), acted, blocked, by_rule)


def model_card(
    name: str, role: str, metrics: dict[str, float], lineage: dict[str, str],
    samples: list[dict[str, str]], report: ComplianceReport, model_meta: dict[str, Any],
    generation: dict[str, Any] | None = None,
) -> str:
    """A markdown model card: intended use, data, training, evaluation, generation defaults, compliance, limits."""
    generation_rows = "\n".join(f"| {k} | `{json.dumps(v)}` |" for k, v in (generation or {}).items()) or "| (none) | |"
    metric_rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items()))
    lineage_rows = "\n".join(f"| {k} | `{v}` |" for k, v in sorted(lineage.items()))
    sample_rows = "\n".join(
        f"| {s['prompt']} | {s['completion'][:160].replace('|', '/').replace(chr(10), ' ')} |" for s in samples
    )
    rules = ", ".join(f"{k}: {v}" for k, v in sorted(report.actions_by_rule.items())) or "none"
    return f"""# Model card: {name} ({role})

## Intended use
A small decoder-only language model made by lmforge for evaluating the pipeline and, at larger profiles, for
narrow in-domain assistance behind the lmforge gateway. Not for open-ended advice, facts that matter, or use
without the output filter.

## Architecture
```json
{json.dumps(model_meta, indent=2, sort_keys=True, default=str)}
```

## Data and lineage
| what | value |
|---|---|
{lineage_rows}

## Evaluation
| metric | value |
|---|---|
{metric_rows}

## Generation defaults
The version's `generation_config.json`, vLLM's defaults when it serves this version; a request may override
each (max_tokens up to the gateway's limit).

| setting | value |
|---|---|
{generation_rows}

## Sample generations (greedy, fixed prompts)
| prompt | completion |
|---|---|
{sample_rows}

## Compliance
Policy version {report.policy_version}: the filter acted on {report.acted_on} of {report.responses} responses
(rate {report.violation_rate:.2f}), blocked {report.blocked}. Actions by rule: {rules}.

## Review dossier
In the source run's Artifacts, folder `review/`: `loss.png` and `perplexity.png` (the training run's curves),
`data_validation/` (the Great Expectations result of the training data, `data_docs/index.html` its report),
`samples.json`, `compliance_report.json`, `dossier.json` (gates, metrics, lineage). `lmforge history {name}`
lists every alias move.

## Limits
Trained on a small public-domain and permissively licensed corpus; it repeats and invents. Every output must
pass the gateway's compliance filter.
"""
