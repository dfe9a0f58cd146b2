"""Run the eval tasks of ``configs/eval/`` with lm-evaluation-harness, in-process or against a served model.

    result = run_harness(Target.local(Path("runs/tiny/models/teacher")), cfg)     # lm-eval's ``hf`` model
    result = run_harness(Target.served("http://127.0.0.1:8000", "lmforge-tiny-student", key, tokenizer_dir), cfg)

In-process, all three tasks run (QA, instructions, held-out perplexity). Served, the chat endpoint of the
gateway answers (``lmforge.eval.served``, an lm-eval model backend), so the compliance filter is part of what
is scored; perplexity needs prompt log-probs, which a chat API does not return, so it is measured in-process
only. In-process the chat template is applied by lm-eval; served, by the server.
Whether an answer ended (EOS) is read from its length: fewer tokens than ``eval.max_new_tokens``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.config import LMForgeConfig
from lmforge.eval.evalset import HELDOUT_FILE, IFEVAL_FILE, QA_FILE
from lmforge.eval.metrics import degeneracy

TASK_FILES = {"lmforge_qa": ("lmforge_qa.yaml", QA_FILE), "lmforge_ifeval": ("lmforge_ifeval.yaml", IFEVAL_FILE),
              "lmforge_heldout_ppl": ("lmforge_heldout_ppl.yaml", HELDOUT_FILE)}
GENERATION_TASKS = ("lmforge_qa", "lmforge_ifeval")


@dataclass(frozen=True)
class Target:
    """What answers: a model directory loaded in-process, or a model served behind an OpenAI chat API."""

    model_dir: Path | None = None  # also the tokenizer that counts answer tokens
    base_url: str | None = None
    served_name: str | None = None
    api_key: str | None = None

    @classmethod
    def local(cls, model_dir: Path) -> Target:
        return cls(model_dir=Path(model_dir))

    @classmethod
    def served(cls, base_url: str, served_name: str, api_key: str | None, tokenizer_dir: Path) -> Target:
        return cls(model_dir=Path(tokenizer_dir), base_url=base_url.rstrip("/"), served_name=served_name,
                   api_key=api_key)

    def describe(self) -> str:
        return f"{self.served_name} at {self.base_url}" if self.base_url else str(self.model_dir)


@dataclass(frozen=True)
class HarnessResult:
    scores: dict[str, float]
    answers: list[dict[str, Any]]  # task, id, prompt, answer, reference (QA), per-item metrics
    lm_eval_version: str
    tasks: list[str] = field(default_factory=list)


def run_harness(target: Target, cfg: LMForgeConfig, tasks_dir: Path | None = None) -> HarnessResult:
    """Score ``target`` on the eval set under ``cfg.paths.eval_set`` with the lm-eval tasks of ``tasks_dir``."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    section, eval_dir = cfg.eval, cfg.paths.eval_set
    tasks_dir = tasks_dir or cfg.root / "configs" / "eval"
    names = [n for n in TASK_FILES if target.base_url is None or n in GENERATION_TASKS]
    names = [n for n in names if _has_items(eval_dir / TASK_FILES[n][1])]
    configs = [task_config(tasks_dir / TASK_FILES[n][0], eval_dir / TASK_FILES[n][1], section.max_new_tokens)
               for n in names]
    _quiet_datasets()
    out = lm_eval.simple_evaluate(
        model=_model_name(target), model_args=_model_args(target, cfg), tasks=configs,
        batch_size=section.batch_size if target.base_url is None else 1,
        apply_chat_template=target.base_url is None,
        task_manager=TaskManager(include_defaults=False), log_samples=True, bootstrap_iters=0,
        random_seed=cfg.data.seed, numpy_random_seed=cfg.data.seed, torch_random_seed=cfg.data.seed,
    )
    scores = {f"{task}/{metric.split(',')[0]}": float(value) for task, figures in out["results"].items()
              for metric, value in figures.items() if "," in metric and isinstance(value, int | float)
              and "_stderr" not in metric}
    answers = _answers(out["samples"])
    count_tokens = _token_counter(target.model_dir)
    qa = [a for a in answers if a["task"] == "lmforge_qa"]
    for a in answers:
        a["tokens"] = count_tokens(a["answer"])
        a["reached_eos"] = a["tokens"] < section.max_new_tokens
    figures = degeneracy([a["answer"] for a in qa], [a["reached_eos"] for a in qa])
    scores.update({f"degeneracy/{k}": v for k, v in figures.items()})
    scores["score"] = scores.get("lmforge_qa/rougeL", 0.0)
    return HarnessResult(scores, answers, lm_eval.__version__, names)


def task_config(yaml_path: Path, data_file: Path, max_new_tokens: int) -> dict[str, Any]:
    """A task of ``configs/eval/`` as lm-eval reads it (``!function`` resolved), on this profile's data file.

    lm-eval 0.4.13 has no public loader for one YAML file with ``!function`` tags; its own is the private
    ``lm_eval.tasks._yaml_loader.load_yaml``, used here only (tests/eval pins that it still loads ours)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    config = load_yaml(yaml_path)
    config["dataset_kwargs"] = {"data_files": {"test": str(data_file)}}
    if "generation_kwargs" in config:
        # max_new_tokens too: lm-eval's hf model passes only max_length (prompt + max_gen_toks) to generate, and
        # a model's generation_config.json max_new_tokens (the version's serving default) would override it.
        config["generation_kwargs"] = {**config["generation_kwargs"], "max_gen_toks": max_new_tokens,
                                       "max_new_tokens": max_new_tokens}
    return config


def _model_name(target: Target) -> str:
    if target.base_url is None:
        return "hf"
    import lmforge.eval.served  # noqa: F401 (registers the lmforge-gateway model with lm-eval)

    return "lmforge-gateway"


def _model_args(target: Target, cfg: LMForgeConfig) -> dict[str, Any]:
    if target.base_url is None:
        return {"pretrained": str(target.model_dir), "device": "cpu", "dtype": "float32"}
    return {"base_url": target.base_url, "model": target.served_name, "api_key": target.api_key,
            "max_gen_toks": cfg.eval.max_new_tokens}


def _answers(samples: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for task, items in samples.items():
        if task not in GENERATION_TASKS:
            continue
        for item in items:
            doc = item["doc"]
            row = {"task": task, "id": doc["id"], "prompt": doc["prompt"], "answer": item["filtered_resps"][0],
                   "reference": doc.get("response", "")}
            row.update({k: item[k] for k in ("rougeL", "token_f1", "prompt_level_strict_acc") if k in item})
            rows.append(row)
    return rows


def _token_counter(tokenizer_dir: Path | None):
    if tokenizer_dir is None:
        return lambda text: len(text.split())
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def _quiet_datasets() -> None:
    """No per-file progress bars from datasets' json builder (lm-eval's own request bars stay)."""
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    logging.getLogger("lm_eval").setLevel(logging.WARNING)


def _has_items(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0
