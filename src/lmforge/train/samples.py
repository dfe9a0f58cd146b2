"""Sample generations at the end of a training stage: greedy answers to fixed prompts, as an MLflow table.

    rows = generate_samples(model, tokenizer, ["The harbor was"], max_new_tokens=24)            # continuation
    rows = generate_samples(model, tokenizer, ["What is json?"], max_new_tokens=32, chat=True)  # chat template
    log_samples(logger, rows, "samples/pretrain.json", step=300)

The table (columns ``step``, ``prompt``, ``completion``) lies beside the run's metrics; a resumed run appends
its rows to the same file, so one table shows how the answers changed with more steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch.loggers import MLFlowLogger
from torch import nn


@torch.no_grad()
def generate_samples(model: nn.Module, tokenizer: Any, prompts: list[str], max_new_tokens: int,
                     chat: bool = False) -> list[dict[str, str]]:
    """``[{"prompt", "completion"}]``: greedy ``generate`` per prompt, stopping at eos; ``chat`` applies the
    tokenizer's chat template with the generation prompt (what vLLM's chat endpoint sends)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for prompt in prompts:
        if chat:
            encoded = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                    add_generation_prompt=True, tokenize=True)
            ids = list(encoded["input_ids"] if isinstance(encoded, Mapping) else encoded)
        else:
            ids = tokenizer(prompt)["input_ids"]
        input_ids = torch.tensor([ids], device=device)  # (1, T)
        out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                             max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id, tokenizer=tokenizer)  # (1, T + new)
        rows.append({"prompt": prompt, "completion": tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)})
    model.train(was_training)
    return rows


def log_samples(logger: MLFlowLogger, rows: list[dict[str, str]], artifact_file: str, step: int) -> None:
    """Append ``rows`` (with the step that made them) to the run's MLflow table ``artifact_file``."""
    if not rows:
        return
    table = {"step": [step] * len(rows), "prompt": [r["prompt"] for r in rows],
             "completion": [r["completion"] for r in rows]}
    logger.experiment.log_table(logger.run_id, data=table, artifact_file=artifact_file)
