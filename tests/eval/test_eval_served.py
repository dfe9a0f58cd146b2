"""``lmforge eval --gateway``: lm-eval's ``local-chat-completions`` scores a model as served (real vLLM behind
the gateway, compliance filter included), offline, and its greedy answers equal the in-process ones."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lmforge.config import LMForgeConfig
from lmforge.eval.stage import run_eval
from lmforge.serve.stack import start_stack, stop_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KEY = "lmf-eval-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_served_model_scores_like_the_local_one(eval_cfg: LMForgeConfig, repeating_model_dir: Path) -> None:
    cfg = eval_cfg.model_copy(update={"serve": eval_cfg.serve.model_copy(update={
        "vllm_port": _free_port(), "gateway_port": _free_port(), "startup_timeout_s": 900.0})})
    local = run_eval(cfg, str(repeating_model_dir), log=False)
    info = start_stack(cfg, repeating_model_dir, "repeats", "1", [KEY])
    try:
        served = run_eval(cfg, str(repeating_model_dir), gateway=info.gateway_url, api_key=KEY, log=False)
    finally:
        stop_stack(cfg)
    assert not served.passed and any("repeat themselves" in r for r in served.reasons), served.reasons
    assert "lmforge_heldout_ppl/word_perplexity" not in served.scores  # a chat API has no prompt log-probs
    mine = {(a["task"], a["id"]): a["answer"] for a in local.answers}
    theirs = {(a["task"], a["id"]): a["answer"] for a in served.answers}
    assert mine == theirs
